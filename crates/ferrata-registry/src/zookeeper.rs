//! `zk`: a TC is the ephemeral node `/registry/zk/<cluster>/<ip>:<port>` (data `true`), which
//! lives as long as the TC's ZooKeeper session; the parents are persistent. A client lists the
//! children of `/registry/zk/<cluster>` and watches them — Seata's
//! `ZookeeperRegisterServiceImpl` (Curator in 2.x, zkclient in 1.x, same paths).

use std::collections::HashSet;
use std::time::Duration;

use zookeeper_client as zk;

use crate::{BoxFuture, Instance, Registry, RegistryError, ZookeeperConfig, normalize};

/// Seata's root path of the registry.
pub const ROOT: &str = "/registry/zk";

/// `/registry/zk/<cluster>`.
pub fn cluster_path(cluster: &str) -> String {
    format!("{ROOT}/{cluster}")
}

/// `/registry/zk/<cluster>/<ip>:<port>`.
pub fn node_path(instance: &Instance) -> String {
    format!("{}/{}", cluster_path(&instance.cluster), instance.address)
}

/// A [`Registry`] in ZooKeeper.
#[derive(Debug)]
pub struct ZookeeperRegistry {
    config: ZookeeperConfig,
    /// The session, opened on first use and again after it expired.
    client: tokio::sync::Mutex<Option<zk::Client>>,
    /// Instances registered through this session; the last deregistration closes it.
    registered: std::sync::Mutex<HashSet<Instance>>,
}

impl ZookeeperRegistry {
    pub fn new(config: ZookeeperConfig) -> Result<ZookeeperRegistry, RegistryError> {
        if config.servers.trim().is_empty() {
            return Err(RegistryError::Config {
                registry: "zk",
                message: "no server address".to_owned(),
            });
        }
        if config.username.is_some() != config.password.is_some() {
            return Err(RegistryError::Config {
                registry: "zk",
                message: "set both username and password, or neither".to_owned(),
            });
        }
        Ok(ZookeeperRegistry {
            config,
            client: tokio::sync::Mutex::new(None),
            registered: std::sync::Mutex::new(HashSet::new()),
        })
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unavailable {
            registry: "zk",
            endpoint: self.config.servers.clone(),
            message: error.to_string(),
        }
    }

    /// The live session's client, connecting when there is none or the last one ended.
    async fn client(&self) -> Result<zk::Client, RegistryError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        *slot = None;
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.config.session_timeout)
            .with_connection_timeout(self.config.connect_timeout);
        if let (Some(user), Some(password)) = (&self.config.username, &self.config.password) {
            connector = connector.with_auth("digest", format!("{user}:{}", password.0).as_bytes());
        }
        let bound = self.config.session_timeout + self.config.connect_timeout;
        let client =
            match tokio::time::timeout(bound, connector.connect(&self.config.servers)).await {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => return Err(self.unavailable(error)),
                Err(_) => return Err(self.unavailable(format!("no session within {bound:?}"))),
            };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Forgets the session after an error that ended it, so the next call opens a new one.
    async fn forget_if_ended(&self, error: &zk::Error) {
        if matches!(
            error,
            zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
        ) {
            *self.client.lock().await = None;
        }
    }

    /// Creates a persistent node unless it exists.
    async fn ensure_persistent(
        &self,
        client: &zk::Client,
        path: &str,
        data: &[u8],
    ) -> Result<(), zk::Error> {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        match client.create(path, data, &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn try_register(
        &self,
        client: &zk::Client,
        instance: &Instance,
    ) -> Result<(), zk::Error> {
        let path = node_path(instance);
        if let Some(stat) = client.check_stat(&path).await? {
            if stat.ephemeral_owner == client.session_id().0 {
                return Ok(());
            }
            // Left by an earlier session of ours that has not expired yet (or by a TC that
            // used the same address): ours now.
            match client.delete(&path, Some(stat.version)).await {
                Ok(()) | Err(zk::Error::NoNode) | Err(zk::Error::BadVersion) => {}
                Err(error) => return Err(error),
            }
        }
        self.ensure_persistent(client, "/registry", b"").await?;
        self.ensure_persistent(client, ROOT, b"true").await?;
        self.ensure_persistent(client, &cluster_path(&instance.cluster), b"")
            .await?;
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match client.create(&path, b"true", &options).await {
            // Created meanwhile by someone else: looked at again at the next renewal.
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl Registry for ZookeeperRegistry {
    fn kind(&self) -> &'static str {
        "zk"
    }

    fn register<'a>(&'a self, instance: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            if let Err(error) = self.try_register(&client, instance).await {
                self.forget_if_ended(&error).await;
                return Err(self.unavailable(error));
            }
            self.registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(instance.clone());
            Ok(())
        })
    }

    fn deregister<'a>(
        &'a self,
        instance: &'a Instance,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let outcome = match client.delete(&node_path(instance), None).await {
                Ok(()) | Err(zk::Error::NoNode) => Ok(()),
                Err(error) => Err(self.unavailable(error)),
            };
            let last = {
                let mut registered = self.registered.lock().unwrap_or_else(|p| p.into_inner());
                registered.remove(instance);
                registered.is_empty()
            };
            if last {
                // Nothing of ours is left in it: close the session.
                *self.client.lock().await = None;
            }
            drop(client);
            outcome
        })
    }

    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let client = self.client().await?;
            match client.list_children(&cluster_path(cluster)).await {
                Ok(children) => Ok(normalize(children)),
                Err(zk::Error::NoNode) => Ok(Vec::new()),
                Err(error) => {
                    self.forget_if_ended(&error).await;
                    Err(self.unavailable(error))
                }
            }
        })
    }

    /// Checks the node three times per session timeout (the session itself is kept alive by
    /// the client's pings).
    fn refresh_interval(&self) -> Duration {
        (self.config.session_timeout / 3).max(Duration::from_millis(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_seatas_layout() {
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        assert_eq!(node_path(&instance), "/registry/zk/default/127.0.0.1:8091");
        assert_eq!(cluster_path("east"), "/registry/zk/east");
    }

    #[test]
    fn digest_needs_both_halves() {
        let config = ZookeeperConfig {
            username: Some("u".into()),
            ..ZookeeperConfig::default()
        };
        assert!(ZookeeperRegistry::new(config).is_err());
    }
}
