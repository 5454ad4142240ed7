//! Waiting for global locks held by other transactions: Seata's retry controller
//! (`client.rm.lock.retryInterval` 10 ms, `retryTimes` 30) and the flags a branch registration
//! carries in its application data (semantics 2.5).

use std::time::Duration;

/// How a branch retries a lock conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRetryPolicy {
    /// Pause between attempts (`client.rm.lock.retryInterval`).
    pub interval: Duration,
    /// Attempts after the first (`client.rm.lock.retryTimes`).
    pub retries: u32,
    /// On a conflict of a statement run outside an application-begun local transaction,
    /// roll the local transaction back (releasing its row locks) and run the statement again
    /// (`client.rm.lock.retryPolicyBranchRollbackOnConflict`); otherwise only the
    /// registration is repeated, with the row locks held.
    pub rollback_on_conflict: bool,
}

impl Default for LockRetryPolicy {
    fn default() -> Self {
        LockRetryPolicy {
            interval: Duration::from_millis(10),
            retries: 30,
            rollback_on_conflict: true,
        }
    }
}

/// A conflict the TC reported when registering a branch or querying a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Another transaction holds a row: waiting may help.
    Held,
    /// The holder is rolling back while this local transaction holds database rows it needs:
    /// waiting would only time out (LockKeyConflictFailFast).
    FailFast,
}

/// The global locks were not obtained within the policy's attempts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("global lock wait timeout after {attempts} attempts")]
pub struct LockWaitTimeout {
    pub attempts: u32,
}

/// Counts the attempts of one statement or commit.
#[derive(Debug)]
pub struct LockRetry {
    policy: LockRetryPolicy,
    attempts: u32,
}

impl LockRetry {
    pub fn new(policy: LockRetryPolicy) -> LockRetry {
        LockRetry {
            policy,
            attempts: 1,
        }
    }

    /// Attempts made so far (the first one included).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a failed attempt: waits before the next one, or says that there is none.
    /// `locks_released` is true when this side rolled its local transaction back first, so
    /// a fail-fast conflict becomes an ordinary one (nothing of ours blocks the holder now).
    pub async fn wait_after(
        &mut self,
        conflict: Conflict,
        locks_released: bool,
    ) -> Result<(), LockWaitTimeout> {
        let fail_fast = conflict == Conflict::FailFast && !locks_released;
        if fail_fast || self.attempts > self.policy.retries {
            return Err(LockWaitTimeout {
                attempts: self.attempts,
            });
        }
        self.attempts += 1;
        tokio::time::sleep(self.policy.interval).await;
        Ok(())
    }
}

/// The JSON a Java RM sends as a branch registration's application data: `autoCommit:false`
/// when the application began the local transaction, `skipCheckLock` on the attempts of an
/// optimistic registration; `None` when there is nothing to say.
pub fn registration_application_data(
    application_began: bool,
    skip_check_lock: Option<bool>,
) -> Option<String> {
    let mut flags = serde_json::Map::new();
    if application_began {
        flags.insert("autoCommit".to_owned(), false.into());
    }
    if let Some(skip) = skip_check_lock {
        flags.insert("skipCheckLock".to_owned(), skip.into());
    }
    (!flags.is_empty()).then(|| serde_json::Value::Object(flags).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retries: u32) -> LockRetryPolicy {
        LockRetryPolicy {
            interval: Duration::from_millis(1),
            retries,
            rollback_on_conflict: true,
        }
    }

    #[tokio::test]
    async fn a_conflict_is_retried_the_configured_number_of_times() {
        let mut retry = LockRetry::new(policy(2));
        assert!(retry.wait_after(Conflict::Held, false).await.is_ok());
        assert!(retry.wait_after(Conflict::Held, false).await.is_ok());
        assert_eq!(
            retry.wait_after(Conflict::Held, false).await,
            Err(LockWaitTimeout { attempts: 3 })
        );
    }

    #[tokio::test]
    async fn fail_fast_stops_at_once_unless_our_locks_were_released() {
        let mut retry = LockRetry::new(policy(30));
        assert!(retry.wait_after(Conflict::FailFast, true).await.is_ok());
        assert_eq!(
            retry.wait_after(Conflict::FailFast, false).await,
            Err(LockWaitTimeout { attempts: 2 })
        );
    }

    #[test]
    fn application_data_carries_only_what_applies() {
        assert_eq!(registration_application_data(false, None), None);
        assert_eq!(
            registration_application_data(true, None).as_deref(),
            Some(r#"{"autoCommit":false}"#)
        );
        let both: serde_json::Value =
            serde_json::from_str(&registration_application_data(true, Some(true)).unwrap())
                .unwrap();
        assert_eq!(
            both,
            serde_json::json!({"autoCommit": false, "skipCheckLock": true})
        );
    }
}
