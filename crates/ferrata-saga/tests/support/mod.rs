//! Shared by the engine suites: the real ferrata-server (short retries), SDK clients, the two
//! real databases, the machines of `tests/machines`, and the services they call, which write
//! what they did to an in-memory ledger.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata::{Client, ClientConfig};
use ferrata_saga::engine::{SagaEngine, ServiceError};
use ferrata_testkit::{TcProcess, database_url};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(60);

/// ferrata-server with phase-2 retries at most 500 ms apart, so the TC's Saga recovery comes
/// soon after a timeout.
pub fn server() -> TcProcess {
    TcProcess::start_with_short_retries()
}

pub async fn client(addr: &str, app: &str) -> Client {
    let config = ClientConfig::builder(app)
        .tc_addresses([addr.to_owned()])
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client config");
    Client::connect(config)
        .await
        .expect("connect to ferrata-server")
}

pub fn mysql_url() -> String {
    database_url("FERRATA_MYSQL_URL")
}

pub fn postgres_url() -> String {
    database_url("FERRATA_POSTGRES_URL")
}

/// A table prefix no other test or process uses.
pub fn prefix(test: &str, db: &str) -> String {
    format!("sg_{db}_{test}_{}_", std::process::id())
}

/// The machine files every engine suite registers.
pub const MACHINES: [&str; 8] = [
    include_str!("../machines/purchase.json"),
    include_str!("../machines/retry.json"),
    include_str!("../machines/sub_machine_child.json"),
    include_str!("../machines/sub_machine_parent.json"),
    include_str!("../machines/loop.json"),
    include_str!("../machines/script.json"),
    include_str!("../machines/forward.json"),
    include_str!("../machines/designer.json"),
];

/// What the services did, in order, as `action:businessKey[:detail]`.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<String>>>,
    /// Calls per (service, business key), for services that fail a number of times.
    calls: Arc<Mutex<HashMap<String, u64>>>,
}

impl Ledger {
    pub fn push(&self, entry: String) {
        self.entries.lock().unwrap().push(entry);
    }

    /// Every entry, in order.
    pub fn all(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }

    /// The entries for one business key, without the key.
    pub fn of(&self, key: &str) -> Vec<String> {
        let needle = format!(":{key}");
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains(&needle))
            .map(|e| e.replacen(&needle, "", 1))
            .collect()
    }

    fn count(&self, what: &str) -> u64 {
        let mut calls = self.calls.lock().unwrap();
        let n = calls.entry(what.to_owned()).or_default();
        *n += 1;
        *n
    }
}

fn text(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Registers the services the machines call. `balance_fails_first` makes `balanceAction.reduce`
/// fail with an error once per business key (for forward recovery).
pub fn register_services(engine: &SagaEngine, ledger: &Ledger, balance_fails_first: bool) {
    let l = ledger.clone();
    engine.register_service("inventoryAction", "reduce", move |args| {
        let l = l.clone();
        async move {
            let count = args.get(1).and_then(Value::as_i64).unwrap_or(0);
            l.push(format!("reduce-inventory:{}", text(&args, 0)));
            Ok(json!(count >= 0))
        }
    });
    let l = ledger.clone();
    engine.register_service("inventoryAction", "compensateReduce", move |args| {
        let l = l.clone();
        async move {
            l.push(format!("compensate-inventory:{}", text(&args, 0)));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("balanceAction", "reduce", move |args| {
        let l = l.clone();
        async move {
            let key = text(&args, 0);
            let throw = args
                .get(2)
                .and_then(|o| o.get("throwException"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if throw {
                l.push(format!("reduce-balance-failed:{key}"));
                return Err(ServiceError::new(
                    "java.lang.RuntimeException",
                    "mock failure",
                ));
            }
            if balance_fails_first && l.count(&format!("balance:{key}")) == 1 {
                l.push(format!("reduce-balance-unknown:{key}"));
                return Err(ServiceError::new(
                    "java.net.SocketTimeoutException",
                    "read timed out",
                ));
            }
            l.push(format!("reduce-balance:{key}"));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("balanceAction", "compensateReduce", move |args| {
        let l = l.clone();
        async move {
            l.push(format!("compensate-balance:{}", text(&args, 0)));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("flakyAction", "call", move |args| {
        let l = l.clone();
        async move {
            let key = text(&args, 0);
            let fail_times = args.get(1).and_then(Value::as_u64).unwrap_or(0);
            let n = l.count(&format!("flaky:{key}"));
            if n <= fail_times {
                l.push(format!("flaky-failed:{key}"));
                return Err(ServiceError::new(
                    "java.lang.IllegalStateException",
                    "not yet",
                ));
            }
            l.push(format!("flaky:{key}"));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("flakyAction", "compensate", move |args| {
        let l = l.clone();
        async move {
            l.push(format!("compensate-flaky:{}", text(&args, 0)));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("itemAction", "process", move |args| {
        let l = l.clone();
        async move {
            let item = text(&args, 1);
            if item == "boom" {
                l.push(format!("process-failed:{}:{item}", text(&args, 0)));
                return Err(ServiceError::new(
                    "java.lang.IllegalArgumentException",
                    "boom",
                ));
            }
            l.push(format!(
                "process:{}:{item}:{}",
                text(&args, 0),
                text(&args, 2)
            ));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("itemAction", "notify", move |args| {
        let l = l.clone();
        async move {
            l.push(format!("notify:{}:{}", text(&args, 0), text(&args, 1)));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("itemAction", "compensateProcess", move |args| {
        let l = l.clone();
        async move {
            l.push(format!(
                "compensate-process:{}:{}",
                text(&args, 0),
                text(&args, 1)
            ));
            Ok(json!(true))
        }
    });
    let l = ledger.clone();
    engine.register_service("reviewAction", "review", move |args| {
        let l = l.clone();
        async move {
            l.push(format!("review:{}:{}", text(&args, 0), text(&args, 1)));
            Ok(json!(true))
        }
    });
}

/// Parameters as a JSON object map.
pub fn params(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("params must be an object"),
    }
}

/// A plain HTTP/1.1 GET on loopback: the status line and the whole response text.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    let status = response.lines().next().unwrap_or_default().to_owned();
    (status, response)
}
