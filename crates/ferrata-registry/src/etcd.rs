//! `etcd3`: a TC is the key `registry-seata-<cluster>-<ip>:<port>` with the value `<ip>:<port>`,
//! attached to a lease that the TC keeps alive (seata-server: TTL 10 s). A client lists the keys
//! under `registry-seata-<cluster>` and reads the addresses from the values — Seata's
//! `EtcdRegistryServiceImpl` (1.x and 2.x alike).
//!
//! Spoken over etcd's JSON gateway (`POST /v3/kv/put`, `/v3/kv/range`, `/v3/kv/deleterange`,
//! `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/lease/revoke`; etcd ≥ 3.4), so no gRPC code
//! generation is needed: keys and values travel base64-encoded, 64-bit numbers as strings.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::http::{Attempt, Servers, unreachable};
use crate::{BoxFuture, EtcdConfig, Instance, Registry, RegistryError, normalize};

/// The prefix of every TC key (Seata's `REGISTRY_KEY_PREFIX`).
pub const KEY_PREFIX: &str = "registry-seata-";

/// The key of `instance`: `registry-seata-<cluster>-<ip>:<port>`.
pub fn key(instance: &Instance) -> String {
    format!("{KEY_PREFIX}{}-{}", instance.cluster, instance.address)
}

/// The prefix under which the keys of `cluster` lie. Seata's client lists `registry-seata-<cluster>`
/// without the dash, which also matches clusters whose name extends this one; the dash keeps
/// `default` from finding `default2`'s TCs.
pub fn cluster_prefix(cluster: &str) -> String {
    format!("{KEY_PREFIX}{cluster}-")
}

/// The end of the key range holding every key that starts with `prefix` (etcd's `range_end`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range is everything from the key on ("\0").
    vec![0]
}

/// A [`Registry`] in etcd v3.
#[derive(Debug)]
pub struct EtcdRegistry {
    servers: Servers,
    ttl_seconds: i64,
    refresh: Duration,
    /// The lease each registered instance's key hangs on (a TC has one, as in Seata's server).
    leases: tokio::sync::Mutex<HashMap<Instance, i64>>,
}

impl EtcdRegistry {
    pub fn new(config: EtcdConfig) -> Result<EtcdRegistry, RegistryError> {
        let servers = Servers::new("etcd3", &config.endpoints, "", config.request_timeout)?;
        let ttl_seconds = i64::try_from(config.ttl.as_secs_f64().ceil() as u64)
            .unwrap_or(i64::MAX)
            .max(1);
        // Renew three times per lease period, as etcd's own clients do.
        let refresh = (config.ttl / 3).max(Duration::from_millis(200));
        Ok(EtcdRegistry {
            servers,
            ttl_seconds,
            refresh,
            leases: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// POSTs `body` to `path` (e.g. `/v3/kv/put`) and returns the answer's JSON.
    async fn post(&self, path: &str, body: Value) -> Result<Value, RegistryError> {
        let body = body.to_string();
        self.servers
            .call(|base| {
                let (client, body) = (self.servers.client.clone(), body.clone());
                let url = format!("{base}{path}");
                async move {
                    let answer = match client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(answer) => answer,
                        Err(error) => return unreachable(&error),
                    };
                    let status = answer.status();
                    let text = match answer.text().await {
                        Ok(text) => text,
                        Err(error) => return unreachable(&error),
                    };
                    Attempt::Done(parse_answer(path, status.as_u16(), &text))
                }
            })
            .await
    }

    async fn grant(&self) -> Result<i64, RegistryError> {
        let answer = self
            .post(
                "/v3/lease/grant",
                json!({ "TTL": self.ttl_seconds.to_string() }),
            )
            .await?;
        number(&answer, "ID").filter(|id| *id != 0).ok_or_else(|| {
            self.servers
                .protocol(format!("lease grant without an ID: {answer}"))
        })
    }

    /// True while the lease lives (its TTL was renewed), false once etcd forgot it.
    async fn keep_alive(&self, lease: i64) -> Result<bool, RegistryError> {
        let answer = self
            .post("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        let result = answer.get("result").unwrap_or(&answer);
        Ok(number(result, "TTL").is_some_and(|ttl| ttl > 0))
    }

    async fn exists(&self, key: &str) -> Result<bool, RegistryError> {
        let answer = self
            .post(
                "/v3/kv/range",
                json!({ "key": BASE64.encode(key), "count_only": true }),
            )
            .await?;
        Ok(number(&answer, "count").is_some_and(|n| n > 0))
    }

    async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), RegistryError> {
        self.post(
            "/v3/kv/put",
            json!({
                "key": BASE64.encode(key),
                "value": BASE64.encode(value),
                "lease": lease.to_string(),
            }),
        )
        .await
        .map(drop)
    }
}

/// The JSON of a 2xx answer; an error naming etcd's message otherwise.
fn parse_answer(path: &str, status: u16, text: &str) -> Result<Value, RegistryError> {
    let value: Value = serde_json::from_str(text).map_err(|error| RegistryError::Protocol {
        registry: "etcd3",
        message: format!("{path} answered HTTP {status} with no JSON ({error}): {text:.200}"),
    })?;
    if !(200..300).contains(&status) || value.get("error").is_some() {
        let message = value
            .get("message")
            .or_else(|| value.get("error").and_then(|e| e.get("message")))
            .or_else(|| value.get("error"))
            .map_or_else(|| text.to_owned(), |m| m.to_string());
        return Err(RegistryError::Protocol {
            registry: "etcd3",
            message: format!("{path} answered HTTP {status}: {message}"),
        });
    }
    Ok(value)
}

/// A protobuf int64 in JSON: a string of digits (or a plain number); absent = 0 is `None`.
fn number(value: &Value, field: &str) -> Option<i64> {
    match value.get(field)? {
        Value::String(text) => text.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

impl Registry for EtcdRegistry {
    fn kind(&self) -> &'static str {
        "etcd3"
    }

    fn register<'a>(&'a self, instance: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = key(instance);
            let mut leases = self.leases.lock().await;
            if let Some(&id) = leases.get(instance) {
                if self.keep_alive(id).await? {
                    if self.exists(&key).await? {
                        return Ok(());
                    }
                    return self.put(&key, &instance.address, id).await;
                }
                tracing::info!(
                    lease = id,
                    "etcd forgot our lease; registering on a new one"
                );
                leases.remove(instance);
            }
            let id = self.grant().await?;
            self.put(&key, &instance.address, id).await?;
            leases.insert(instance.clone(), id);
            Ok(())
        })
    }

    fn deregister<'a>(
        &'a self,
        instance: &'a Instance,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().await;
            self.post(
                "/v3/kv/deleterange",
                json!({ "key": BASE64.encode(key(instance)) }),
            )
            .await?;
            if let Some(id) = leases.remove(instance)
                && let Err(error) = self
                    .post("/v3/lease/revoke", json!({ "ID": id.to_string() }))
                    .await
            {
                tracing::debug!(%error, lease = id, "revoking the lease failed; it expires");
            }
            Ok(())
        })
    }

    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let prefix = cluster_prefix(cluster);
            let answer = self
                .post(
                    "/v3/kv/range",
                    json!({
                        "key": BASE64.encode(&prefix),
                        "range_end": BASE64.encode(prefix_end(prefix.as_bytes())),
                    }),
                )
                .await?;
            let mut addresses = Vec::new();
            for kv in answer
                .get("kvs")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let value = kv
                    .get("value")
                    .and_then(Value::as_str)
                    .and_then(|v| BASE64.decode(v).ok())
                    .and_then(|v| String::from_utf8(v).ok());
                match value {
                    Some(address) => addresses.push(address),
                    None => tracing::debug!(%kv, "etcd entry without a readable value"),
                }
            }
            Ok(normalize(addresses))
        })
    }

    fn refresh_interval(&self) -> Duration {
        self.refresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_seatas_layout() {
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        assert_eq!(key(&instance), "registry-seata-default-127.0.0.1:8091");
        assert!(key(&instance).starts_with(&cluster_prefix("default")));
        assert!(!"registry-seata-default2-127.0.0.1:8091".starts_with(&cluster_prefix("default")));
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"ab\xff"), b"ac");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    #[test]
    fn answers_are_json_with_int64_strings() {
        let answer =
            parse_answer("/v3/lease/grant", 200, r#"{"ID":"7587868","TTL":"10"}"#).expect("ok");
        assert_eq!(number(&answer, "ID"), Some(7_587_868));
        assert_eq!(number(&answer, "TTL"), Some(10));
        assert_eq!(number(&json!({}), "count"), None);
        let error = parse_answer(
            "/v3/lease/keepalive",
            404,
            r#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#,
        )
        .expect_err("error");
        assert!(error.to_string().contains("lease not found"), "{error}");
        assert!(parse_answer("/v3/kv/put", 200, "<html>").is_err());
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds_and_renews_three_times_per_period() {
        let registry = EtcdRegistry::new(EtcdConfig {
            ttl: Duration::from_millis(2500),
            ..EtcdConfig::default()
        })
        .expect("valid");
        assert_eq!(registry.ttl_seconds, 3);
        assert_eq!(registry.refresh_interval(), Duration::from_millis(2500) / 3);
    }
}
