//! Each backend against its real service (scripts/services): what a TC registers is found by a
//! lookup, under exactly the key, path or channel Seata's Java client reads; a deregistered TC is
//! gone at once; a TC that stops renewing is gone after its time to live.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ferrata_registry::{
    EtcdConfig, Instance, RedisConfig, Registrar, Registry, RegistryConfig, ZookeeperConfig,
};
use ferrata_testkit::{eventually, service_url};

/// A cluster name no other test (or earlier run) uses.
fn unique_cluster(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn etcd_config(ttl: Duration) -> EtcdConfig {
    EtcdConfig {
        endpoints: vec![service_url("FERRATA_ETCD_URL")],
        ttl,
        ..EtcdConfig::default()
    }
}

fn redis_config(ttl: Duration, refresh: Duration) -> RedisConfig {
    RedisConfig {
        url: service_url("FERRATA_REDIS_URL"),
        ttl,
        refresh,
        ..RedisConfig::default()
    }
}

fn zookeeper_config() -> ZookeeperConfig {
    ZookeeperConfig {
        servers: service_url("FERRATA_ZOOKEEPER_ADDR"),
        session_timeout: Duration::from_secs(2),
        ..ZookeeperConfig::default()
    }
}

/// Registers three instances (two in one cluster, one in a cluster whose name extends the
/// first), checks the lookups, deregisters them one by one.
async fn register_lookup_deregister(registry: Arc<dyn Registry>) -> anyhow::Result<()> {
    let cluster = unique_cluster(registry.kind());
    let longer = format!("{cluster}x");
    let a = Instance::new(&cluster, "127.0.0.1:18091")?;
    let b = Instance::new(&cluster, "127.0.0.1:18092")?;
    let c = Instance::new(&longer, "127.0.0.1:18093")?;
    for instance in [&a, &b, &c, &a] {
        registry.register(instance).await?;
    }
    assert_eq!(
        registry.lookup(&cluster).await?,
        ["127.0.0.1:18091", "127.0.0.1:18092"]
    );
    assert_eq!(registry.lookup(&longer).await?, ["127.0.0.1:18093"]);
    assert!(registry.lookup(&unique_cluster("none")).await?.is_empty());
    registry.deregister(&a).await?;
    assert_eq!(registry.lookup(&cluster).await?, ["127.0.0.1:18092"]);
    registry.deregister(&b).await?;
    registry.deregister(&c).await?;
    assert!(registry.lookup(&cluster).await?.is_empty());
    assert!(registry.lookup(&longer).await?.is_empty());
    // Deregistering what is not registered is not an error.
    registry.deregister(&a).await?;
    Ok(())
}

/// A registrar renews the entry; once dropped (as in a crash), the entry expires.
async fn expires_without_renewal(registry: Arc<dyn Registry>, ttl: Duration) -> anyhow::Result<()> {
    let cluster = unique_cluster(registry.kind());
    let instance = Instance::new(&cluster, "127.0.0.1:18094")?;
    let registrar = Registrar::start(vec![registry.clone()], instance.clone());
    let listed = || async {
        registry
            .lookup(&cluster)
            .await
            .is_ok_and(|l| l == ["127.0.0.1:18094"])
    };
    assert!(
        eventually(Duration::from_secs(10), listed).await,
        "never listed"
    );
    // Renewed past its first time to live: still there.
    tokio::time::sleep(ttl * 2).await;
    assert!(listed().await, "expired although renewed");
    drop(registrar);
    let gone = || async { registry.lookup(&cluster).await.is_ok_and(|l| l.is_empty()) };
    assert!(
        eventually(ttl * 4 + Duration::from_secs(5), gone).await,
        "still listed long after its TTL of {ttl:?}"
    );
    Ok(())
}

async fn etcd_get(endpoint: &str, key: &str) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({ "key": BASE64.encode(key) }).to_string();
    let answer = reqwest::Client::new()
        .post(format!("{endpoint}/v3/kv/range"))
        .body(body)
        .send()
        .await?
        .text()
        .await?;
    Ok(serde_json::from_str(&answer)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_entries_are_seatas_keys_on_a_lease() -> anyhow::Result<()> {
    let registry = RegistryConfig::Etcd(etcd_config(Duration::from_secs(10))).connect()?;
    register_lookup_deregister(registry.clone()).await?;
    let cluster = unique_cluster("etcd-layout");
    let instance = Instance::new(&cluster, "127.0.0.1:18095")?;
    registry.register(&instance).await?;
    let endpoint = service_url("FERRATA_ETCD_URL");
    let key = format!("registry-seata-{cluster}-127.0.0.1:18095");
    let answer = etcd_get(&endpoint, &key).await?;
    let kv = &answer["kvs"][0];
    let value = BASE64.decode(kv["value"].as_str().context("value")?)?;
    assert_eq!(value, b"127.0.0.1:18095");
    let lease: i64 = kv["lease"].as_str().context("lease")?.parse()?;
    assert_ne!(lease, 0, "the key must hang on a lease: {answer}");
    registry.deregister(&instance).await?;
    assert!(etcd_get(&endpoint, &key).await?.get("kvs").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_entry_expires_with_its_lease() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(2);
    expires_without_renewal(RegistryConfig::Etcd(etcd_config(ttl)).connect()?, ttl).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_are_seatas_keys_with_expiry_and_announcements() -> anyhow::Result<()> {
    use futures_util::StreamExt;

    let config = redis_config(Duration::from_secs(5), Duration::from_secs(2));
    let registry = RegistryConfig::Redis(config.clone()).connect()?;
    register_lookup_deregister(registry.clone()).await?;
    let cluster = unique_cluster("redis-layout");
    let instance = Instance::new(&cluster, "127.0.0.1:18096")?;
    let client = redis::Client::open(config.url.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub
        .subscribe(format!("registry.redis.{cluster}"))
        .await?;
    registry.register(&instance).await?;
    registry.register(&instance).await?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let key = format!("registry.redis.{cluster}_127.0.0.1:18096");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await?;
    assert!((1..=5_000).contains(&ttl_ms), "PTTL {ttl_ms}");
    registry.deregister(&instance).await?;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut connection)
        .await?;
    assert_eq!(exists, 0);
    // One announcement per registration (not per renewal), then the deregistration.
    let mut messages = pubsub.on_message();
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .context("no announcement")?
            .context("channel closed")?;
        payloads.push(message.get_payload::<String>()?);
    }
    assert_eq!(
        payloads,
        ["127.0.0.1:18096-register", "127.0.0.1:18096-unregister"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entry_expires_without_renewal() -> anyhow::Result<()> {
    let ttl = Duration::from_secs(1);
    let config = redis_config(ttl, Duration::from_millis(300));
    expires_without_renewal(RegistryConfig::Redis(config).connect()?, ttl).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_entries_are_seatas_ephemeral_nodes() -> anyhow::Result<()> {
    let config = zookeeper_config();
    let registry = RegistryConfig::Zookeeper(config.clone()).connect()?;
    register_lookup_deregister(registry.clone()).await?;
    let cluster = unique_cluster("zk-layout");
    let instance = Instance::new(&cluster, "127.0.0.1:18097")?;
    registry.register(&instance).await?;
    let observer = zookeeper_client::Client::connect(&config.servers).await?;
    let path = format!("/registry/zk/{cluster}/127.0.0.1:18097");
    let (data, stat) = observer.get_data(&path).await?;
    assert_eq!(data, b"true");
    assert_ne!(stat.ephemeral_owner, 0, "the node must be ephemeral");
    registry.deregister(&instance).await?;
    assert!(observer.check_stat(&path).await?.is_none());
    // A new session registers again after a deregistration closed the old one.
    registry.register(&instance).await?;
    assert!(observer.check_stat(&path).await?.is_some());
    registry.deregister(&instance).await?;
    Ok(())
}

/// A TC whose key expires is announced as gone by the TCs still renewing theirs, in the message
/// a graceful stop sends (Seata's Java client forgets a TC only on that message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_announces_the_tcs_whose_keys_expired() -> anyhow::Result<()> {
    use futures_util::StreamExt;

    let ttl = Duration::from_secs(1);
    let config = redis_config(ttl, Duration::from_millis(300));
    let cluster = unique_cluster("redis-expiry");
    let client = redis::Client::open(config.url.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub
        .subscribe(format!("registry.redis.{cluster}"))
        .await?;
    let survivor = Registrar::start(
        vec![RegistryConfig::Redis(config.clone()).connect()?],
        Instance::new(&cluster, "127.0.0.1:18098")?,
    );
    let crashed = Registrar::start(
        vec![RegistryConfig::Redis(config.clone()).connect()?],
        Instance::new(&cluster, "127.0.0.1:18099")?,
    );
    let registry = RegistryConfig::Redis(config).connect()?;
    let both = || async {
        registry
            .lookup(&cluster)
            .await
            .is_ok_and(|l| l == ["127.0.0.1:18098", "127.0.0.1:18099"])
    };
    assert!(
        eventually(Duration::from_secs(10), both).await,
        "never both listed"
    );
    drop(crashed);
    let mut messages = pubsub.on_message();
    let mut payloads = Vec::new();
    for _ in 0..20 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .context("no announcement")?
            .context("channel closed")?;
        let payload: String = message.get_payload()?;
        payloads.push(payload.clone());
        if payload == "127.0.0.1:18099-unregister" {
            break;
        }
    }
    assert!(
        payloads.iter().any(|p| p == "127.0.0.1:18099-unregister"),
        "{payloads:?}"
    );
    assert!(
        !payloads.iter().any(|p| p == "127.0.0.1:18098-unregister"),
        "{payloads:?}"
    );
    drop(survivor);
    Ok(())
}
