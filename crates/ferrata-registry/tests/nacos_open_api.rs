//! The Nacos backend against a stand-in for Nacos's open API v1 on 127.0.0.1 (no Nacos server
//! can be installed here): the requests it sends — methods, paths, query parameters, the access
//! token of a login — and how it reads the answers: a heartbeat answered 20404 registers again,
//! the instance list keeps healthy instances only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ferrata_registry::config::Secret;
use ferrata_registry::{Instance, NacosConfig, RegistryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: String,
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves canned open-API answers; `beat_code` is what heartbeats answer.
async fn stand_in(beat_code: Arc<Mutex<i64>>) -> anyhow::Result<(String, Arc<Mutex<Vec<Seen>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (log, beat_code) = (log.clone(), beat_code.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0_u8; 4096];
                let head_end = loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    if buffer.len() > 1 << 20 {
                        return;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buffer.len() < head_end + length {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buffer[head_end..]).into_owned();
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_owned();
                let target = words.next().unwrap_or("").to_owned();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let query: BTreeMap<String, String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (decode(k), decode(v))
                    })
                    .collect();
                let answer = match path {
                    "/nacos/v1/auth/login" => {
                        r#"{"accessToken":"TOKEN","tokenTtl":18000}"#.to_owned()
                    }
                    "/nacos/v1/ns/instance/beat" => format!(
                        r#"{{"clientBeatInterval":5000,"code":{}}}"#,
                        *beat_code.lock().expect("lock")
                    ),
                    "/nacos/v1/ns/instance/list" => r#"{"hosts":[
                        {"ip":"10.0.0.2","port":8091,"healthy":true,"enabled":true},
                        {"ip":"10.0.0.3","port":8091,"healthy":false,"enabled":true}]}"#
                        .to_owned(),
                    _ => "ok".to_owned(),
                };
                log.lock().expect("lock").push(Seen {
                    method,
                    path: path.to_owned(),
                    query,
                    body,
                });
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((address, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_beats_reregisters_lists_and_deregisters_through_the_open_api()
-> anyhow::Result<()> {
    let beat_code = Arc::new(Mutex::new(10200));
    let (address, seen) = stand_in(beat_code.clone()).await?;
    let registry = RegistryConfig::Nacos(NacosConfig {
        server_addr: vec![address],
        namespace: "dev".into(),
        group: "SEATA_GROUP".into(),
        username: Some("nacos".into()),
        password: Some(Secret("secret".into())),
        ..NacosConfig::default()
    })
    .connect()?;
    let instance = Instance::new("east", "10.0.0.2:8091")?;
    registry.register(&instance).await?; // login, then register
    registry.register(&instance).await?; // heartbeat
    *beat_code.lock().expect("lock") = 20404;
    registry.register(&instance).await?; // heartbeat: unknown -> register again
    assert_eq!(registry.lookup("east").await?, ["10.0.0.2:8091"]);
    registry.deregister(&instance).await?;

    let seen = seen.lock().expect("lock").clone();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/nacos/v1/auth/login"),
            ("POST", "/nacos/v1/ns/instance"),
            ("PUT", "/nacos/v1/ns/instance/beat"),
            ("PUT", "/nacos/v1/ns/instance/beat"),
            ("POST", "/nacos/v1/ns/instance"),
            ("GET", "/nacos/v1/ns/instance/list"),
            ("DELETE", "/nacos/v1/ns/instance"),
        ]
    );
    assert!(seen[0].body.contains("username=nacos") && seen[0].body.contains("password=secret"));
    let register = &seen[1].query;
    for (key, value) in [
        ("serviceName", "SEATA_GROUP@@seata-server"),
        ("groupName", "SEATA_GROUP"),
        ("namespaceId", "dev"),
        ("ip", "10.0.0.2"),
        ("port", "8091"),
        ("clusterName", "east"),
        ("ephemeral", "true"),
        ("accessToken", "TOKEN"),
    ] {
        assert_eq!(
            register.get(key).map(String::as_str),
            Some(value),
            "{key} in {register:?}"
        );
    }
    let beat: serde_json::Value = serde_json::from_str(&seen[2].query["beat"])?;
    assert_eq!(beat["cluster"], "east");
    assert_eq!(beat["port"], 8091);
    let list = &seen[5].query;
    assert_eq!(list.get("clusters").map(String::as_str), Some("east"));
    assert_eq!(list.get("healthyOnly").map(String::as_str), Some("true"));
    assert_eq!(
        seen[6].query.get("clusterName").map(String::as_str),
        Some("east")
    );
    Ok(())
}
