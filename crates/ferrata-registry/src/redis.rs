//! `redis`: a TC is the key `registry.redis.<cluster>_<ip>:<port>` (value: the process name,
//! `pid@host`) with an expiry (seata-server: 5 s, renewed every 2 s). Registration and
//! deregistration are announced on the channel `registry.redis.<cluster>` as
//! `<ip>:<port>-register` and `<ip>:<port>-unregister`. A client scans for
//! `registry.redis.<cluster>_*`, takes the address after the `_`, and follows the channel —
//! Seata's `RedisRegistryServiceImpl` (1.x and 2.x alike).
//!
//! One addition: a TC whose key expired (it crashed) announces nothing, and Seata's Java client
//! only forgets a TC it is connected to when the channel says so (its periodic scan refreshes
//! the list but not the addresses it balances over). So every registered TC, when renewing,
//! also looks at its cluster's keys and announces `<ip>:<port>-unregister` for each TC whose key
//! disappeared since the last look — the message seata-server sends on a graceful stop.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::{BoxFuture, Instance, RedisConfig, Registry, RegistryError, normalize};

/// Seata's `registry.redis.` key prefix.
pub const KEY_PREFIX: &str = "registry.redis.";

/// The channel and key stem of `cluster`: `registry.redis.<cluster>`.
pub fn channel(cluster: &str) -> String {
    format!("{KEY_PREFIX}{cluster}")
}

/// The key of `instance`: `registry.redis.<cluster>_<ip>:<port>`.
pub fn key(instance: &Instance) -> String {
    format!("{}_{}", channel(&instance.cluster), instance.address)
}

/// The SCAN pattern of `cluster`'s keys, glob characters of the name escaped.
pub fn scan_pattern(cluster: &str) -> String {
    let mut pattern = String::new();
    for c in channel(cluster).chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("_*");
    pattern
}

/// The message announcing a registration (`register`) or a deregistration (`unregister`).
pub fn announcement(instance: &Instance, registered: bool) -> String {
    let event = if registered { "register" } else { "unregister" };
    format!("{}-{event}", instance.address)
}

/// Upper bound on SCAN rounds of one lookup.
const MAX_SCAN_ROUNDS: usize = 100_000;

/// A [`Registry`] in Redis.
#[derive(Debug)]
pub struct RedisRegistry {
    client: redis::Client,
    config: RedisConfig,
    endpoint: String,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Instances whose registration was announced on the channel.
    announced: std::sync::Mutex<HashSet<Instance>>,
    /// Per cluster, the addresses listed at the last renewal (to announce the ones that expire).
    seen: std::sync::Mutex<HashMap<String, BTreeSet<String>>>,
}

impl RedisRegistry {
    pub fn new(config: RedisConfig) -> Result<RedisRegistry, RegistryError> {
        let client =
            redis::Client::open(config.url.as_str()).map_err(|error| RegistryError::Config {
                registry: "redis",
                message: format!("{}: {error}", crate::config::redact_url(&config.url)),
            })?;
        if config.ttl < Duration::from_millis(1) || config.refresh >= config.ttl {
            return Err(RegistryError::Config {
                registry: "redis",
                message: format!(
                    "the key must be renewed (every {:?}) before it expires (after {:?})",
                    config.refresh, config.ttl
                ),
            });
        }
        Ok(RedisRegistry {
            client,
            endpoint: crate::config::redact_url(&config.url),
            config,
            connection: tokio::sync::Mutex::new(None),
            announced: std::sync::Mutex::new(HashSet::new()),
            seen: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unavailable {
            registry: "redis",
            endpoint: self.endpoint.clone(),
            message: error.to_string(),
        }
    }

    /// The shared connection, opened on first use and after a failure.
    async fn connection(&self) -> Result<MultiplexedConnection, RegistryError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let timeout = Some(self.config.request_timeout);
        let settings = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
            .map_err(|error| self.unavailable(error))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `op` on the connection; a failed connection is dropped, so the next call reconnects.
    async fn with_connection<T, F, Fut>(&self, op: F) -> Result<T, RegistryError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match op(connection).await {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()
                    || error.is_unrecoverable_error()
                {
                    *self.connection.lock().await = None;
                }
                Err(self.unavailable(error))
            }
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl RedisRegistry {
    /// Announces `<ip>:<port>-unregister` for every TC of `instance`'s cluster whose key
    /// disappeared since the last call (expired: that TC stopped renewing it).
    async fn announce_expired(&self, instance: &Instance) -> Result<(), RegistryError> {
        let listed: BTreeSet<String> = self.lookup(&instance.cluster).await?.into_iter().collect();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.cluster.clone(), listed.clone())
            .unwrap_or_default();
        let gone: Vec<Instance> = previous
            .difference(&listed)
            .filter(|address| **address != instance.address)
            .map(|address| Instance {
                cluster: instance.cluster.clone(),
                address: address.clone(),
            })
            .collect();
        for departed in gone {
            tracing::info!(instance = %departed, "its key expired; announcing that it left");
            self.with_connection(|mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(channel(&departed.cluster))
                    .arg(announcement(&departed, false))
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        }
        Ok(())
    }
}

impl Registry for RedisRegistry {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn register<'a>(&'a self, instance: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let (key, ttl) = (key(instance), self.ttl_ms());
            let announce = !self
                .announced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(instance);
            let value = crate::process_name();
            self.with_connection(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl)
                    .ignore();
                if announce {
                    pipe.publish(channel(&instance.cluster), announcement(instance, true))
                        .ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await?;
            if announce {
                self.announced
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(instance.clone());
            }
            // The key is renewed; failing to announce others' expiry does not change that.
            if let Err(error) = self.announce_expired(instance).await {
                tracing::debug!(%error, "looking for expired TCs failed");
            }
            Ok(())
        })
    }

    fn deregister<'a>(
        &'a self,
        instance: &'a Instance,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            self.with_connection(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.del(key(instance)).ignore();
                pipe.publish(channel(&instance.cluster), announcement(instance, false))
                    .ignore();
                pipe.query_async::<()>(&mut c).await
            })
            .await?;
            self.announced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(instance);
            Ok(())
        })
    }

    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let stem = format!("{}_", channel(cluster));
            let pattern = scan_pattern(cluster);
            let keys = self
                .with_connection(|mut c| async move {
                    let mut keys = Vec::new();
                    let mut cursor: u64 = 0;
                    for _ in 0..MAX_SCAN_ROUNDS {
                        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut c)
                            .await?;
                        keys.extend(batch);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                    Ok(keys)
                })
                .await?;
            Ok(normalize(
                keys.into_iter()
                    .filter_map(|k| k.strip_prefix(&stem).map(str::to_owned)),
            ))
        })
    }

    fn refresh_interval(&self) -> Duration {
        self.config.refresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_channel_and_messages_follow_seatas_layout() {
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        assert_eq!(key(&instance), "registry.redis.default_127.0.0.1:8091");
        assert_eq!(channel("default"), "registry.redis.default");
        assert_eq!(announcement(&instance, true), "127.0.0.1:8091-register");
        assert_eq!(announcement(&instance, false), "127.0.0.1:8091-unregister");
        assert_eq!(scan_pattern("default"), "registry.redis.default_*");
        assert_eq!(scan_pattern("a*b"), "registry.redis.a\\*b_*");
    }

    #[test]
    fn renewal_must_come_before_expiry() {
        let config = RedisConfig {
            ttl: Duration::from_secs(2),
            refresh: Duration::from_secs(2),
            ..RedisConfig::default()
        };
        assert!(RedisRegistry::new(config).is_err());
        assert!(RedisRegistry::new(RedisConfig::default()).is_ok());
    }
}
