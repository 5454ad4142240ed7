//! Seata's protocol enumerations with explicit code tables, and the per-client-version
//! mapping of the codes whose meaning drifted between releases (spec §9).

use crate::version::ClientVersion;

/// Generates a `u8`-coded enum with an explicit code table, `code()` and `from_code()`.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The numeric code written on the wire and in storage.
            pub const fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            /// The variant for a numeric code, or `None` for a code this enum does not know.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

code_enum!(
    /// Branch transaction mode (spec §9.1), encoded by ordinal.
    BranchType { At = 0, Tcc = 1, Saga = 2, Xa = 3, SagaAnnotation = 4 }
);

impl BranchType {
    /// The name Seata stores in `branch_table.branch_type`.
    pub const fn name(self) -> &'static str {
        match self {
            BranchType::At => "AT",
            BranchType::Tcc => "TCC",
            BranchType::Saga => "SAGA",
            BranchType::Xa => "XA",
            BranchType::SagaAnnotation => "SAGA_ANNOTATION",
        }
    }
}

code_enum!(
    /// Branch status (spec §9.2).
    BranchStatus {
        Unknown = 0,
        Registered = 1,
        PhaseOneDone = 2,
        PhaseOneFailed = 3,
        PhaseOneTimeout = 4,
        PhaseTwoCommitted = 5,
        PhaseTwoCommitFailedRetryable = 6,
        PhaseTwoCommitFailedUnretryable = 7,
        PhaseTwoRollbacked = 8,
        PhaseTwoRollbackFailedRetryable = 9,
        PhaseTwoRollbackFailedUnretryable = 10,
        PhaseTwoCommitFailedXaerNotaRetryable = 11,
        PhaseTwoRollbackFailedXaerNotaRetryable = 12,
        PhaseOneRdonly = 13,
        StopRetry = 14,
    }
);

code_enum!(
    /// Global transaction status (spec §9.3, semantics §1.3).
    GlobalStatus {
        UnKnown = 0,
        Begin = 1,
        Committing = 2,
        CommitRetrying = 3,
        Rollbacking = 4,
        RollbackRetrying = 5,
        TimeoutRollbacking = 6,
        TimeoutRollbackRetrying = 7,
        AsyncCommitting = 8,
        Committed = 9,
        CommitFailed = 10,
        Rollbacked = 11,
        RollbackFailed = 12,
        TimeoutRollbacked = 13,
        TimeoutRollbackFailed = 14,
        Finished = 15,
        CommitRetryTimeout = 16,
        RollbackRetryTimeout = 17,
        Deleting = 18,
        StopCommitOrCommitRetry = 19,
        StopRollbackOrRollbackRetry = 20,
    }
);

impl GlobalStatus {
    /// The name of Seata's Java enum constant (`TimeoutRollbacking`), which the TC sends as
    /// the application data of a Saga engine's phase-2 request (semantics §6.4).
    pub const fn java_name(self) -> &'static str {
        match self {
            GlobalStatus::UnKnown => "UnKnown",
            GlobalStatus::Begin => "Begin",
            GlobalStatus::Committing => "Committing",
            GlobalStatus::CommitRetrying => "CommitRetrying",
            GlobalStatus::Rollbacking => "Rollbacking",
            GlobalStatus::RollbackRetrying => "RollbackRetrying",
            GlobalStatus::TimeoutRollbacking => "TimeoutRollbacking",
            GlobalStatus::TimeoutRollbackRetrying => "TimeoutRollbackRetrying",
            GlobalStatus::AsyncCommitting => "AsyncCommitting",
            GlobalStatus::Committed => "Committed",
            GlobalStatus::CommitFailed => "CommitFailed",
            GlobalStatus::Rollbacked => "Rollbacked",
            GlobalStatus::RollbackFailed => "RollbackFailed",
            GlobalStatus::TimeoutRollbacked => "TimeoutRollbacked",
            GlobalStatus::TimeoutRollbackFailed => "TimeoutRollbackFailed",
            GlobalStatus::Finished => "Finished",
            GlobalStatus::CommitRetryTimeout => "CommitRetryTimeout",
            GlobalStatus::RollbackRetryTimeout => "RollbackRetryTimeout",
            GlobalStatus::Deleting => "Deleting",
            GlobalStatus::StopCommitOrCommitRetry => "StopCommitOrCommitRetry",
            GlobalStatus::StopRollbackOrRollbackRetry => "StopRollbackOrRollbackRetry",
        }
    }

    /// The status a client of `version` can decode: Java decodes by array index and throws on
    /// codes its enum lacks, so newer codes are mapped to their closest older meaning.
    pub fn for_client(self, version: ClientVersion) -> GlobalStatus {
        let mut status = self;
        if version < ClientVersion::V2_4_0 {
            status = match status {
                GlobalStatus::Deleting => GlobalStatus::Finished,
                GlobalStatus::StopCommitOrCommitRetry => GlobalStatus::CommitRetrying,
                GlobalStatus::StopRollbackOrRollbackRetry => GlobalStatus::RollbackRetrying,
                other => other,
            };
        }
        if version < ClientVersion::V1_5_0 {
            status = match status {
                GlobalStatus::CommitRetryTimeout => GlobalStatus::CommitFailed,
                GlobalStatus::RollbackRetryTimeout => GlobalStatus::RollbackFailed,
                other => other,
            };
        }
        status
    }

    /// A final status: the transaction will not change any more.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            GlobalStatus::Committed
                | GlobalStatus::CommitFailed
                | GlobalStatus::Rollbacked
                | GlobalStatus::RollbackFailed
                | GlobalStatus::TimeoutRollbacked
                | GlobalStatus::TimeoutRollbackFailed
                | GlobalStatus::Finished
                | GlobalStatus::CommitRetryTimeout
                | GlobalStatus::RollbackRetryTimeout
        )
    }

    /// Phase-2 commit is under way: the commit is decided, branches are still being committed.
    pub const fn is_committing(self) -> bool {
        matches!(
            self,
            GlobalStatus::Committing | GlobalStatus::CommitRetrying | GlobalStatus::AsyncCommitting
        )
    }

    /// Phase-2 rollback is under way, on the TM's request or after a timeout.
    pub const fn is_rollbacking(self) -> bool {
        matches!(
            self,
            GlobalStatus::Rollbacking
                | GlobalStatus::RollbackRetrying
                | GlobalStatus::TimeoutRollbacking
                | GlobalStatus::TimeoutRollbackRetrying
        )
    }

    /// A status of the timeout-rollback path (Seata's `TimeoutRollback*`), in progress or ended.
    pub const fn is_timeout_rollback(self) -> bool {
        matches!(
            self,
            GlobalStatus::TimeoutRollbacking
                | GlobalStatus::TimeoutRollbackRetrying
                | GlobalStatus::TimeoutRollbacked
                | GlobalStatus::TimeoutRollbackFailed
        )
    }

    /// The commit went through: committed, or decided and being committed. What a TM may treat
    /// as a successful commit answer.
    pub const fn is_commit_decided(self) -> bool {
        matches!(self, GlobalStatus::Committed) || self.is_committing()
    }

    /// The rollback went through: rolled back, or decided and being rolled back. What a TM may
    /// treat as a successful rollback answer.
    pub const fn is_rollback_decided(self) -> bool {
        matches!(
            self,
            GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked
        ) || self.is_rollbacking()
    }
}

code_enum!(
    /// Result of a request (spec §9.4).
    ResultCode { Failed = 0, Success = 1 }
);

/// Why a transaction request failed. Internal meaning only: the wire ordinal depends on the
/// client version (spec §9.5) and is produced by [`TransactionExceptionCode::wire_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionExceptionCode {
    Unknown,
    BeginFailed,
    LockKeyConflict,
    Io,
    BranchRollbackFailedRetriable,
    BranchRollbackFailedUnretriable,
    BranchRegisterFailed,
    BranchReportFailed,
    LockableCheckFailed,
    BranchTransactionNotExist,
    GlobalTransactionNotExist,
    GlobalTransactionNotActive,
    GlobalTransactionStatusInvalid,
    FailedToSendBranchCommitRequest,
    FailedToSendBranchRollbackRequest,
    FailedToAddBranch,
    FailedLockGlobalTransaction,
    FailedWriteSession,
    FailedStore,
    NotRaftLeader,
    LockKeyConflictFailFast,
    TransactionTimeout,
    CommitHeuristic,
    Broken,
}

impl TransactionExceptionCode {
    /// Codes 0..=18 are the same in every client generation.
    const STABLE: [TransactionExceptionCode; 19] = [
        Self::Unknown,
        Self::BeginFailed,
        Self::LockKeyConflict,
        Self::Io,
        Self::BranchRollbackFailedRetriable,
        Self::BranchRollbackFailedUnretriable,
        Self::BranchRegisterFailed,
        Self::BranchReportFailed,
        Self::LockableCheckFailed,
        Self::BranchTransactionNotExist,
        Self::GlobalTransactionNotExist,
        Self::GlobalTransactionNotActive,
        Self::GlobalTransactionStatusInvalid,
        Self::FailedToSendBranchCommitRequest,
        Self::FailedToSendBranchRollbackRequest,
        Self::FailedToAddBranch,
        Self::FailedLockGlobalTransaction,
        Self::FailedWriteSession,
        Self::FailedStore,
    ];

    /// The ordinal a client of `version` decodes as this code. Codes the client's enum lacks
    /// are replaced by the nearest meaning it has (fail-fast becomes a plain lock conflict,
    /// the rest become Unknown) because Java throws on an out-of-range ordinal.
    pub fn wire_code(self, version: ClientVersion) -> u8 {
        if let Some(stable) = Self::STABLE.iter().position(|c| *c == self) {
            return stable as u8;
        }
        let generation = version.exception_code_generation();
        let code = match (generation, self) {
            (ExceptionCodeGeneration::V2, Self::NotRaftLeader) => Some(19),
            (ExceptionCodeGeneration::V2, Self::LockKeyConflictFailFast) => Some(20),
            (ExceptionCodeGeneration::V2, Self::TransactionTimeout) => Some(21),
            (ExceptionCodeGeneration::V2, Self::CommitHeuristic) => Some(22),
            (ExceptionCodeGeneration::V2, Self::Broken) => Some(23),
            (
                ExceptionCodeGeneration::V1_7 | ExceptionCodeGeneration::V1_5,
                Self::LockKeyConflictFailFast,
            ) => Some(19),
            (ExceptionCodeGeneration::V1_7, Self::TransactionTimeout) => Some(20),
            (ExceptionCodeGeneration::V1_7, Self::CommitHeuristic) => Some(21),
            (ExceptionCodeGeneration::V1_7, Self::Broken) => Some(22),
            _ => None,
        };
        match code {
            Some(code) => code,
            None if self == Self::LockKeyConflictFailFast => 2,
            None => 0,
        }
    }

    /// Decodes an ordinal sent by a client of `version`; unknown ordinals become `Unknown`.
    pub fn from_wire(code: u8, version: ClientVersion) -> TransactionExceptionCode {
        if let Some(stable) = Self::STABLE.get(code as usize) {
            return *stable;
        }
        match (version.exception_code_generation(), code) {
            (ExceptionCodeGeneration::V2, 19) => Self::NotRaftLeader,
            (ExceptionCodeGeneration::V2, 20) => Self::LockKeyConflictFailFast,
            (ExceptionCodeGeneration::V2, 21) => Self::TransactionTimeout,
            (ExceptionCodeGeneration::V2, 22) => Self::CommitHeuristic,
            (ExceptionCodeGeneration::V2, 23) => Self::Broken,
            (ExceptionCodeGeneration::V1_7 | ExceptionCodeGeneration::V1_5, 19) => {
                Self::LockKeyConflictFailFast
            }
            (ExceptionCodeGeneration::V1_7, 20) => Self::TransactionTimeout,
            (ExceptionCodeGeneration::V1_7, 21) => Self::CommitHeuristic,
            (ExceptionCodeGeneration::V1_7, 22) => Self::Broken,
            _ => Self::Unknown,
        }
    }
}

/// The four layouts of TransactionExceptionCode ordinals above 18 (spec §9.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionCodeGeneration {
    /// Clients before 1.5.0: only 0..=18.
    V1_4,
    /// 1.5.x and 1.6.x: 19 = LockKeyConflictFailFast.
    V1_5,
    /// 1.7.x and 1.8.x: 19..=22.
    V1_7,
    /// 2.0.0 and later: NotRaftLeader inserted at 19, the rest shifted up to 23.
    V2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for s in GlobalStatus::ALL {
            assert_eq!(GlobalStatus::from_code(s.code()), Some(*s));
        }
        for s in BranchStatus::ALL {
            assert_eq!(BranchStatus::from_code(s.code()), Some(*s));
        }
        assert_eq!(GlobalStatus::from_code(21), None);
        assert_eq!(BranchType::from_code(5), None);
    }

    #[test]
    fn status_classes_are_consistent() {
        for s in GlobalStatus::ALL.iter().copied() {
            // In progress and final exclude each other; so do the two phase-2 directions.
            assert!(
                !(s.is_final() && (s.is_committing() || s.is_rollbacking())),
                "{s:?}"
            );
            assert!(!(s.is_commit_decided() && s.is_rollback_decided()), "{s:?}");
            assert!(!s.is_committing() || s.is_commit_decided(), "{s:?}");
            assert!(!s.is_rollbacking() || s.is_rollback_decided(), "{s:?}");
        }
        let committing: Vec<_> = GlobalStatus::ALL
            .iter()
            .filter(|s| s.is_committing())
            .collect();
        assert_eq!(
            committing,
            [
                &GlobalStatus::Committing,
                &GlobalStatus::CommitRetrying,
                &GlobalStatus::AsyncCommitting
            ]
        );
        assert!(GlobalStatus::TimeoutRollbackFailed.is_timeout_rollback());
        assert!(!GlobalStatus::TimeoutRollbackFailed.is_rollbacking());
        assert!(GlobalStatus::TimeoutRollbacked.is_rollback_decided());
        assert!(!GlobalStatus::Finished.is_commit_decided());
        assert!(!GlobalStatus::Begin.is_rollback_decided());
    }

    #[test]
    fn fail_fast_ordinal_follows_client_generation() {
        let v = |s: &str| ClientVersion::parse(s).expect("valid version");
        use TransactionExceptionCode::*;
        assert_eq!(LockKeyConflictFailFast.wire_code(v("1.4.2")), 2);
        assert_eq!(LockKeyConflictFailFast.wire_code(v("1.5.2")), 19);
        assert_eq!(LockKeyConflictFailFast.wire_code(v("1.8.0")), 19);
        assert_eq!(LockKeyConflictFailFast.wire_code(v("2.6.0")), 20);
        assert_eq!(TransactionTimeout.wire_code(v("1.8.0")), 20);
        assert_eq!(TransactionTimeout.wire_code(v("2.0.0")), 21);
        assert_eq!(TransactionTimeout.wire_code(v("1.6.1")), 0);
        assert_eq!(NotRaftLeader.wire_code(v("1.8.0")), 0);
        assert_eq!(LockKeyConflict.wire_code(v("0.9.0")), 2);
        for generation in ["1.4.0", "1.5.0", "1.7.0", "2.1.0"] {
            for code in 0..=23u8 {
                let decoded = TransactionExceptionCode::from_wire(code, v(generation));
                if decoded != Unknown {
                    assert_eq!(
                        decoded.wire_code(v(generation)),
                        code,
                        "{generation} {code}"
                    );
                }
            }
        }
    }

    #[test]
    fn global_status_is_clamped_for_old_clients() {
        let v = |s: &str| ClientVersion::parse(s).expect("valid version");
        assert_eq!(
            GlobalStatus::CommitRetryTimeout.for_client(v("1.4.2")),
            GlobalStatus::CommitFailed
        );
        assert_eq!(
            GlobalStatus::CommitRetryTimeout.for_client(v("1.5.0")),
            GlobalStatus::CommitRetryTimeout
        );
        assert_eq!(
            GlobalStatus::Deleting.for_client(v("2.3.0")),
            GlobalStatus::Finished
        );
        assert_eq!(
            GlobalStatus::Deleting.for_client(v("2.4.0")),
            GlobalStatus::Deleting
        );
    }

    #[test]
    fn java_names_are_the_variant_names() {
        // Seata's Java constants and these variants are spelled alike (`UnKnown` included).
        for status in GlobalStatus::ALL {
            assert_eq!(status.java_name(), format!("{status:?}"));
        }
    }
}
