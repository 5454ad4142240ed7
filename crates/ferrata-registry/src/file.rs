//! `file`: a static address list per cluster, Seata's `service.<cluster>.grouplist`. Nothing is
//! registered anywhere: a TC is listed because the clients' configuration lists it.

use std::time::Duration;

use crate::{BoxFuture, FileConfig, Instance, Registry, RegistryError, normalize};

/// A [`Registry`] over a fixed list.
#[derive(Debug, Clone)]
pub struct FileRegistry {
    config: FileConfig,
}

impl FileRegistry {
    pub fn new(config: FileConfig) -> FileRegistry {
        FileRegistry { config }
    }
}

impl Registry for FileRegistry {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn register<'a>(&'a self, _: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async { Ok(()) })
    }

    fn deregister<'a>(&'a self, _: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async { Ok(()) })
    }

    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        let list = self
            .config
            .clusters
            .get(cluster)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(normalize(list)) })
    }

    /// Nothing to renew; the registrar wakes up this rarely.
    fn refresh_interval(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_what_the_configuration_lists() {
        let mut config = FileConfig::default();
        config.clusters.insert(
            "default".to_owned(),
            vec!["127.0.0.1:8092".to_owned(), "127.0.0.1:8091".to_owned()],
        );
        let registry = FileRegistry::new(config);
        let instance = Instance::new("default", "127.0.0.1:9999").expect("valid");
        registry.register(&instance).await.expect("no-op");
        assert_eq!(
            registry.lookup("default").await.expect("lookup"),
            ["127.0.0.1:8091", "127.0.0.1:8092"]
        );
        assert!(registry.lookup("other").await.expect("lookup").is_empty());
        registry.deregister(&instance).await.expect("no-op");
    }
}
