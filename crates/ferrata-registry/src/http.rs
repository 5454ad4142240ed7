//! The HTTP side of the etcd and Nacos backends: one `reqwest` client per registry (plain HTTP,
//! bounded requests) and the rule for several servers — try them in order, remember the one
//! that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::RegistryError;

/// Servers of one registry, the HTTP client, and which server answered last.
#[derive(Debug)]
pub(crate) struct Servers {
    registry: &'static str,
    bases: Vec<String>,
    preferred: AtomicUsize,
    pub(crate) client: reqwest::Client,
}

/// What a request to one server came to.
pub(crate) enum Attempt<T> {
    /// An answer (good or bad): do not try other servers.
    Done(Result<T, RegistryError>),
    /// This server could not be reached: try the next.
    Unreachable(String),
}

impl Servers {
    /// `addresses` are `host:port` or `http://host:port` (a path is kept); `https` is refused,
    /// since the client is built without TLS.
    pub(crate) fn new(
        registry: &'static str,
        addresses: &[String],
        path_prefix: &str,
        timeout: Duration,
    ) -> Result<Servers, RegistryError> {
        let config_error = |message: String| RegistryError::Config { registry, message };
        if addresses.is_empty() {
            return Err(config_error("no server address".to_owned()));
        }
        let mut bases = Vec::new();
        for address in addresses {
            let address = address.trim().trim_end_matches('/');
            let base = if let Some(rest) = address.strip_prefix("http://") {
                format!("http://{rest}")
            } else if address.starts_with("https://") {
                return Err(config_error(format!(
                    "{address}: https is not supported (ferrata-registry is built without TLS)"
                )));
            } else if address.contains("://") {
                return Err(config_error(format!("{address}: not an http:// address")));
            } else {
                format!("http://{address}")
            };
            bases.push(format!("{base}{path_prefix}"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| config_error(format!("HTTP client: {error}")))?;
        Ok(Servers {
            registry,
            bases,
            preferred: AtomicUsize::new(0),
            client,
        })
    }

    /// Runs `request(base_url)` against the preferred server, then the others, until one
    /// answers.
    pub(crate) async fn call<T, F, Fut>(&self, request: F) -> Result<T, RegistryError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Attempt<T>>,
    {
        let n = self.bases.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let index = (start + i) % n;
            match request(self.bases[index].clone()).await {
                Attempt::Done(outcome) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return outcome;
                }
                Attempt::Unreachable(why) => failures.push(format!("{}: {why}", self.bases[index])),
            }
        }
        Err(RegistryError::Unavailable {
            registry: self.registry,
            endpoint: self.bases.join(","),
            message: failures.join("; "),
        })
    }

    pub(crate) fn protocol(&self, message: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry,
            message: message.into(),
        }
    }
}

/// A transport failure (no connection, timeout) means "try another server"; anything else is an
/// answer.
pub(crate) fn unreachable<T>(error: &reqwest::Error) -> Attempt<T> {
    Attempt::Unreachable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_base_urls() {
        let servers = Servers::new(
            "nacos",
            &["127.0.0.1:8848".into(), "http://10.0.0.2:8848/".into()],
            "/nacos",
            Duration::from_secs(1),
        )
        .expect("valid");
        assert_eq!(
            servers.bases,
            ["http://127.0.0.1:8848/nacos", "http://10.0.0.2:8848/nacos"]
        );
        assert!(
            Servers::new("etcd3", &["https://h:1".into()], "", Duration::from_secs(1)).is_err()
        );
        assert!(Servers::new("etcd3", &[], "", Duration::from_secs(1)).is_err());
    }
}
