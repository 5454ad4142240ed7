//! Several registries at once: [`Registrar`] keeps one TC registered in each of them (a task per
//! registry renews its entry), [`Discovery`] looks a cluster up in all of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Instance, Registry, RegistryConfig, RegistryError, normalize};

/// Longest wait for one registration attempt, whatever the backend's own bounds.
const ATTEMPT_BOUND: Duration = Duration::from_secs(10);
/// Longest pause between attempts while a registry fails.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Keeps one [`Instance`] registered in several registries until [`Registrar::stop`]. Dropped
/// without `stop`, it stops renewing and the entries expire (as after a crash).
#[derive(Debug)]
pub struct Registrar {
    instance: Instance,
    entries: Vec<(Arc<dyn Registry>, JoinHandle<()>)>,
}

impl Registrar {
    /// Starts one renewal task per registry on the current tokio runtime. Registration failures
    /// are logged and retried (every second at most): the TC works without its registry, and
    /// shows up in it once the registry answers.
    pub fn start(registries: Vec<Arc<dyn Registry>>, instance: Instance) -> Registrar {
        let entries = registries
            .into_iter()
            .map(|registry| {
                let task = tokio::spawn(keep_registered(registry.clone(), instance.clone()));
                (registry, task)
            })
            .collect();
        Registrar { instance, entries }
    }

    /// The instance registered.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Stops renewing and removes the entry from every registry, each within `within`. Returns
    /// the failures (registry type and error); their entries expire on their own.
    pub async fn stop(mut self, within: Duration) -> Vec<(&'static str, RegistryError)> {
        let entries = std::mem::take(&mut self.entries);
        let mut removals = tokio::task::JoinSet::new();
        for (registry, task) in entries {
            task.abort();
            let _ = task.await;
            let instance = self.instance.clone();
            removals.spawn(async move {
                let kind = registry.kind();
                match tokio::time::timeout(within, registry.deregister(&instance)).await {
                    Ok(Ok(())) => {
                        tracing::info!(registry = kind, %instance, "deregistered");
                        None
                    }
                    Ok(Err(error)) => Some((kind, error)),
                    Err(_) => Some((
                        kind,
                        RegistryError::Unavailable {
                            registry: kind,
                            endpoint: String::new(),
                            message: format!("no answer to the deregistration within {within:?}"),
                        },
                    )),
                }
            });
        }
        let mut failures = Vec::new();
        while let Some(joined) = removals.join_next().await {
            if let Ok(Some((kind, error))) = joined {
                tracing::warn!(registry = kind, %error, "deregistration failed; the entry will expire");
                failures.push((kind, error));
            }
        }
        failures
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        for (_, task) in &self.entries {
            task.abort();
        }
    }
}

/// Registers, then renews every `refresh_interval`, forever (until aborted).
async fn keep_registered(registry: Arc<dyn Registry>, instance: Instance) {
    let kind = registry.kind();
    let refresh = registry.refresh_interval();
    let (mut registered, mut failures) = (false, 0_u64);
    loop {
        let outcome = match tokio::time::timeout(ATTEMPT_BOUND, registry.register(&instance)).await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(RegistryError::Unavailable {
                registry: kind,
                endpoint: String::new(),
                message: format!("no answer within {ATTEMPT_BOUND:?}"),
            }),
        };
        let pause = match outcome {
            Ok(()) => {
                if !registered {
                    tracing::info!(registry = kind, %instance, "registered");
                    registered = true;
                } else if failures > 0 {
                    tracing::info!(registry = kind, %instance, failures, "registration renewed again");
                }
                failures = 0;
                refresh
            }
            Err(error) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(registry = kind, %instance, %error, "registration failed; retrying");
                } else {
                    tracing::debug!(registry = kind, %instance, %error, failures, "registration failed again");
                }
                refresh.min(RETRY_AFTER_FAILURE)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Looks clusters up in several registries at once.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    registries: Vec<Arc<dyn Registry>>,
}

impl Discovery {
    pub fn new(registries: Vec<Arc<dyn Registry>>) -> Discovery {
        Discovery { registries }
    }

    /// The registries described by `configs` (nothing is contacted yet).
    pub fn connect(configs: &[RegistryConfig]) -> Result<Discovery, RegistryError> {
        let registries = configs
            .iter()
            .map(RegistryConfig::connect)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Discovery { registries })
    }

    /// True when no registry is configured.
    pub fn is_empty(&self) -> bool {
        self.registries.is_empty()
    }

    /// The registries' types, e.g. `["etcd3", "redis"]`.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.registries.iter().map(|r| r.kind()).collect()
    }

    /// Every address any registry lists for `cluster` (sorted, no duplicates). Registries that
    /// fail are skipped (and logged); fails only when every registry failed.
    pub async fn lookup(&self, cluster: &str) -> Result<Vec<String>, RegistryError> {
        let mut found = Vec::new();
        let mut first_error = None;
        let mut answered = false;
        for registry in &self.registries {
            match registry.lookup(cluster).await {
                Ok(list) => {
                    answered = true;
                    found.extend(list);
                }
                Err(error) => {
                    tracing::debug!(registry = registry.kind(), cluster, %error, "lookup failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if !answered => Err(error),
            _ => Ok(normalize(found)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::BoxFuture;

    /// An in-memory registry that can be told to fail.
    #[derive(Debug, Default)]
    struct Fake {
        entries: Mutex<Vec<Instance>>,
        failing: std::sync::atomic::AtomicBool,
        registrations: std::sync::atomic::AtomicU32,
    }

    impl Fake {
        fn fail(&self) -> Result<(), RegistryError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(RegistryError::Unavailable {
                    registry: "fake",
                    endpoint: "nowhere".into(),
                    message: "down".into(),
                });
            }
            Ok(())
        }
    }

    impl Registry for Fake {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn register<'a>(&'a self, i: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
            Box::pin(async move {
                self.fail()?;
                self.registrations
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut entries = self.entries.lock().expect("lock");
                if !entries.contains(i) {
                    entries.push(i.clone());
                }
                Ok(())
            })
        }
        fn deregister<'a>(&'a self, i: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
            Box::pin(async move {
                self.fail()?;
                self.entries.lock().expect("lock").retain(|e| e != i);
                Ok(())
            })
        }
        fn lookup<'a>(&'a self, c: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
            Box::pin(async move {
                self.fail()?;
                let entries = self.entries.lock().expect("lock");
                Ok(normalize(
                    entries
                        .iter()
                        .filter(|e| e.cluster == c)
                        .map(|e| e.address.clone()),
                ))
            })
        }
        fn refresh_interval(&self) -> Duration {
            Duration::from_millis(10)
        }
    }

    async fn until(mut condition: impl FnMut() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not met within 5 s");
    }

    #[tokio::test]
    async fn registers_everywhere_renews_and_deregisters_on_stop() {
        let (a, b) = (Arc::new(Fake::default()), Arc::new(Fake::default()));
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        let registrar = Registrar::start(vec![a.clone(), b.clone()], instance.clone());
        let discovery = Discovery::new(vec![a.clone(), b.clone()]);
        until(|| a.registrations.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
        until(|| b.registrations.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
        assert_eq!(
            discovery.lookup("default").await.expect("lookup"),
            ["127.0.0.1:8091"]
        );
        assert!(discovery.lookup("other").await.expect("lookup").is_empty());
        let failures = registrar.stop(Duration::from_secs(1)).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert!(
            discovery
                .lookup("default")
                .await
                .expect("lookup")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_failing_registry_is_retried_and_skipped_by_lookups() {
        let (up, down) = (Arc::new(Fake::default()), Arc::new(Fake::default()));
        down.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let instance = Instance::new("east", "10.0.0.1:8091").expect("valid");
        let registrar = Registrar::start(vec![up.clone(), down.clone()], instance.clone());
        until(|| up.registrations.load(std::sync::atomic::Ordering::SeqCst) >= 1).await;
        let discovery = Discovery::new(vec![down.clone(), up.clone()]);
        assert_eq!(
            discovery.lookup("east").await.expect("one answered"),
            ["10.0.0.1:8091"]
        );
        assert!(
            Discovery::new(vec![down.clone()])
                .lookup("east")
                .await
                .is_err()
        );
        // The registry comes back: the next attempt registers there too.
        down.failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        until(|| down.registrations.load(std::sync::atomic::Ordering::SeqCst) >= 1).await;
        down.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let failures = registrar.stop(Duration::from_secs(1)).await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(up.lookup("east").await.expect("lookup").is_empty());
    }

    #[tokio::test]
    async fn dropping_the_registrar_stops_renewing_without_deregistering() {
        let fake = Arc::new(Fake::default());
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        let registrar = Registrar::start(vec![fake.clone()], instance);
        until(|| fake.registrations.load(std::sync::atomic::Ordering::SeqCst) >= 1).await;
        drop(registrar);
        tokio::task::yield_now().await;
        let after_drop = fake.registrations.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            fake.registrations.load(std::sync::atomic::Ordering::SeqCst),
            after_drop
        );
        assert_eq!(
            fake.lookup("default").await.expect("lookup"),
            ["127.0.0.1:8091"]
        );
    }
}
