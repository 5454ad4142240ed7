//! `nacos`: a TC is an ephemeral instance (`ip`, `port`) of the service `seata-server` in the
//! group `DEFAULT_GROUP` and the cluster `<cluster>` (Seata's `registry.nacos.application`,
//! `group` and `cluster`), kept healthy by heartbeats; a client asks for the healthy instances
//! of that service in its cluster — Seata's `NacosRegistryServiceImpl`.
//!
//! Spoken over Nacos's open API v1 (HTTP, which Nacos 1.x and 2.x serve and which the
//! nacos-client 1.4 bundled with seata-all uses): `POST /v1/ns/instance` (register),
//! `PUT /v1/ns/instance/beat` (heartbeat; code 20404 = unknown, register again),
//! `DELETE /v1/ns/instance`, `GET /v1/ns/instance/list`, and `POST /v1/auth/login` for a token
//! when a username is configured. **Not verified against a Nacos server** (none can be installed
//! here): the requests follow the documented API and are unit-tested as built.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{Attempt, Servers, unreachable};
use crate::{BoxFuture, Instance, NacosConfig, Registry, RegistryError, normalize};

/// The HTTP method of a [`NacosRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// One open-API call: method, path below the context path, and its parameters (sent in the
/// query string, as Nacos's own clients do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NacosRequest {
    pub method: Method,
    pub path: &'static str,
    pub params: Vec<(&'static str, String)>,
}

/// Nacos's answer code for a heartbeat of an instance it does not know.
pub const BEAT_UNKNOWN_INSTANCE: i64 = 20404;

/// Builds the open-API requests for one configuration.
#[derive(Debug, Clone)]
pub struct Requests {
    config: NacosConfig,
}

impl Requests {
    pub fn new(config: NacosConfig) -> Requests {
        Requests { config }
    }

    /// `group@@service`, the name Nacos stores a grouped service under.
    pub fn grouped_service(&self) -> String {
        format!("{}@@{}", self.config.group, self.config.application)
    }

    fn common(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("serviceName", self.grouped_service()),
            ("groupName", self.config.group.clone()),
        ];
        if !self.config.namespace.is_empty() {
            params.push(("namespaceId", self.config.namespace.clone()));
        }
        params
    }

    fn instance_params(&self, instance: &Instance) -> Vec<(&'static str, String)> {
        let mut params = self.common();
        params.extend([
            ("ip", instance.host().to_owned()),
            ("port", instance.port().to_string()),
            ("clusterName", instance.cluster.clone()),
            ("ephemeral", "true".to_owned()),
        ]);
        params
    }

    /// `POST /v1/ns/instance`: an enabled, healthy, ephemeral instance of weight 1.
    pub fn register(&self, instance: &Instance) -> NacosRequest {
        let mut params = self.instance_params(instance);
        params.extend([
            ("weight", "1.0".to_owned()),
            ("enabled", "true".to_owned()),
            ("healthy", "true".to_owned()),
        ]);
        NacosRequest {
            method: Method::Post,
            path: "/v1/ns/instance",
            params,
        }
    }

    /// `PUT /v1/ns/instance/beat` with the beat description Nacos's clients send.
    pub fn beat(&self, instance: &Instance) -> NacosRequest {
        let beat = json!({
            "serviceName": self.grouped_service(),
            "cluster": instance.cluster,
            "ip": instance.host(),
            "port": instance.port(),
            "weight": 1.0,
            "ephemeral": true,
            "metadata": {},
        });
        let mut params = self.common();
        params.extend([("ephemeral", "true".to_owned()), ("beat", beat.to_string())]);
        NacosRequest {
            method: Method::Put,
            path: "/v1/ns/instance/beat",
            params,
        }
    }

    /// `DELETE /v1/ns/instance`.
    pub fn deregister(&self, instance: &Instance) -> NacosRequest {
        NacosRequest {
            method: Method::Delete,
            path: "/v1/ns/instance",
            params: self.instance_params(instance),
        }
    }

    /// `GET /v1/ns/instance/list` for the healthy instances of `cluster`.
    pub fn list(&self, cluster: &str) -> NacosRequest {
        let mut params = self.common();
        params.extend([
            ("clusters", cluster.to_owned()),
            ("healthyOnly", "true".to_owned()),
        ]);
        NacosRequest {
            method: Method::Get,
            path: "/v1/ns/instance/list",
            params,
        }
    }
}

/// The addresses of an instance list answer: enabled, healthy instances only.
pub fn parse_list(answer: &Value) -> Vec<String> {
    let hosts = answer
        .get("hosts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    normalize(hosts.iter().filter_map(|host| {
        let flag = |name: &str| host.get(name).and_then(Value::as_bool).unwrap_or(true);
        if !flag("enabled") || !flag("healthy") {
            return None;
        }
        let ip = host.get("ip").and_then(Value::as_str)?;
        let port = host.get("port").and_then(Value::as_u64)?;
        Some(format!("{ip}:{port}"))
    }))
}

/// A [`Registry`] in Nacos.
#[derive(Debug)]
pub struct NacosRegistry {
    config: NacosConfig,
    requests: Requests,
    servers: Servers,
    /// Instances Nacos acknowledged; they are renewed by heartbeats.
    registered: std::sync::Mutex<HashSet<Instance>>,
    /// The access token of a login, and when to log in again.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl NacosRegistry {
    pub fn new(config: NacosConfig) -> Result<NacosRegistry, RegistryError> {
        let context = format!("/{}", config.context_path.trim_matches('/'));
        let context = if context == "/" {
            String::new()
        } else {
            context
        };
        let servers = Servers::new(
            "nacos",
            &config.server_addr,
            &context,
            config.request_timeout,
        )?;
        if config.username.is_some() != config.password.is_some() {
            return Err(RegistryError::Config {
                registry: "nacos",
                message: "set both username and password, or neither".to_owned(),
            });
        }
        Ok(NacosRegistry {
            requests: Requests::new(config.clone()),
            config,
            servers,
            registered: std::sync::Mutex::new(HashSet::new()),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The access token to send, logging in when a username is configured and the last token
    /// is (nearly) expired.
    async fn access_token(&self) -> Result<Option<String>, RegistryError> {
        let (Some(user), Some(password)) = (&self.config.username, &self.config.password) else {
            return Ok(None);
        };
        let mut token = self.token.lock().await;
        if let Some((value, renew_at)) = token.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(Some(value.clone()));
        }
        let form = vec![("username", user.clone()), ("password", password.0.clone())];
        let answer = self
            .servers
            .call(|base| {
                let (client, form) = (self.servers.client.clone(), form.clone());
                async move {
                    match client
                        .post(format!("{base}/v1/auth/login"))
                        .form(&form)
                        .send()
                        .await
                    {
                        Ok(answer) => read(answer).await,
                        Err(error) => unreachable(&error),
                    }
                }
            })
            .await?;
        let answer: Value = serde_json::from_str(&answer).map_err(|_| {
            self.servers
                .protocol(format!("login answer is not JSON: {answer:.200}"))
        })?;
        let value = answer
            .get("accessToken")
            .and_then(Value::as_str)
            .ok_or_else(|| self.servers.protocol("login answer without accessToken"))?
            .to_owned();
        let ttl = answer
            .get("tokenTtl")
            .and_then(Value::as_u64)
            .unwrap_or(18_000);
        // Log in again after 90 % of the token's life.
        let renew_at = Instant::now() + Duration::from_secs(ttl) * 9 / 10;
        *token = Some((value.clone(), renew_at));
        Ok(Some(value))
    }

    /// Sends `request` and returns the body of a 2xx answer.
    async fn send(&self, request: NacosRequest) -> Result<String, RegistryError> {
        let mut params = request.params;
        if let Some(token) = self.access_token().await? {
            params.push(("accessToken", token));
        }
        self.servers
            .call(|base| {
                let client = self.servers.client.clone();
                let url = format!("{base}{}", request.path);
                let params = params.clone();
                async move {
                    let builder = match request.method {
                        Method::Get => client.get(url),
                        Method::Post => client.post(url),
                        Method::Put => client.put(url),
                        Method::Delete => client.delete(url),
                    };
                    match builder.query(&params).send().await {
                        Ok(answer) => read(answer).await,
                        Err(error) => unreachable(&error),
                    }
                }
            })
            .await
    }
}

/// The body of a 2xx answer, or an error with the status and body.
async fn read(answer: reqwest::Response) -> Attempt<String> {
    let status = answer.status();
    match answer.text().await {
        Ok(text) if status.is_success() => Attempt::Done(Ok(text)),
        Ok(text) => Attempt::Done(Err(RegistryError::Protocol {
            registry: "nacos",
            message: format!("HTTP {status}: {text:.300}"),
        })),
        Err(error) => unreachable(&error),
    }
}

impl Registry for NacosRegistry {
    fn kind(&self) -> &'static str {
        "nacos"
    }

    fn register<'a>(&'a self, instance: &'a Instance) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let known = self
                .registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(instance);
            if known {
                let answer = self.send(self.requests.beat(instance)).await?;
                let code = serde_json::from_str::<Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("code").and_then(Value::as_i64));
                if code != Some(BEAT_UNKNOWN_INSTANCE) {
                    return Ok(());
                }
                tracing::info!(%instance, "Nacos forgot this instance; registering it again");
            }
            self.send(self.requests.register(instance)).await?;
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
            self.send(self.requests.deregister(instance)).await?;
            self.registered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(instance);
            Ok(())
        })
    }

    fn lookup<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let answer = self.send(self.requests.list(cluster)).await?;
            let value: Value = serde_json::from_str(&answer).map_err(|_| {
                self.servers
                    .protocol(format!("instance list is not JSON: {answer:.200}"))
            })?;
            Ok(parse_list(&value))
        })
    }

    fn refresh_interval(&self) -> Duration {
        self.config.heartbeat.max(Duration::from_millis(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param<'r>(request: &'r NacosRequest, name: &str) -> Option<&'r str> {
        request
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn register_names_service_group_cluster_and_address() {
        let requests = Requests::new(NacosConfig::default());
        let instance = Instance::new("east", "10.0.0.5:8091").expect("valid");
        let request = requests.register(&instance);
        assert_eq!(
            (request.method, request.path),
            (Method::Post, "/v1/ns/instance")
        );
        assert_eq!(
            param(&request, "serviceName"),
            Some("DEFAULT_GROUP@@seata-server")
        );
        assert_eq!(param(&request, "groupName"), Some("DEFAULT_GROUP"));
        assert_eq!(param(&request, "ip"), Some("10.0.0.5"));
        assert_eq!(param(&request, "port"), Some("8091"));
        assert_eq!(param(&request, "clusterName"), Some("east"));
        assert_eq!(param(&request, "ephemeral"), Some("true"));
        assert_eq!(param(&request, "namespaceId"), None);
        let deregister = requests.deregister(&instance);
        assert_eq!(
            (deregister.method, param(&deregister, "clusterName")),
            (Method::Delete, Some("east"))
        );
    }

    #[test]
    fn beat_and_list_carry_namespace_and_cluster() {
        let requests = Requests::new(NacosConfig {
            namespace: "dev".into(),
            group: "SEATA_GROUP".into(),
            ..NacosConfig::default()
        });
        let instance = Instance::new("default", "127.0.0.1:8091").expect("valid");
        let beat = requests.beat(&instance);
        assert_eq!(
            (beat.method, beat.path),
            (Method::Put, "/v1/ns/instance/beat")
        );
        assert_eq!(param(&beat, "namespaceId"), Some("dev"));
        let body: Value =
            serde_json::from_str(param(&beat, "beat").expect("beat")).expect("JSON beat");
        assert_eq!(body["serviceName"], "SEATA_GROUP@@seata-server");
        assert_eq!(body["cluster"], "default");
        assert_eq!(
            (body["ip"].as_str(), body["port"].as_u64()),
            (Some("127.0.0.1"), Some(8091))
        );
        let list = requests.list("default");
        assert_eq!(
            (list.method, list.path),
            (Method::Get, "/v1/ns/instance/list")
        );
        assert_eq!(param(&list, "clusters"), Some("default"));
        assert_eq!(param(&list, "healthyOnly"), Some("true"));
    }

    #[test]
    fn lists_keep_enabled_healthy_instances() {
        let answer = json!({
            "name": "DEFAULT_GROUP@@seata-server",
            "hosts": [
                {"ip": "10.0.0.2", "port": 8091, "healthy": true, "enabled": true},
                {"ip": "10.0.0.1", "port": 8091, "healthy": true},
                {"ip": "10.0.0.3", "port": 8091, "healthy": false, "enabled": true},
                {"ip": "10.0.0.4", "port": 8091, "healthy": true, "enabled": false},
                {"port": 8091}
            ]
        });
        assert_eq!(parse_list(&answer), ["10.0.0.1:8091", "10.0.0.2:8091"]);
        assert!(parse_list(&json!({})).is_empty());
    }

    #[test]
    fn context_path_and_credentials_are_checked() {
        let half = NacosConfig {
            username: Some("nacos".into()),
            ..NacosConfig::default()
        };
        assert!(NacosRegistry::new(half).is_err());
        assert!(NacosRegistry::new(NacosConfig::default()).is_ok());
    }
}
