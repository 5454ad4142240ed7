//! ferrata-server in the registries of `[registry]`, against the real etcd, Redis and
//! ZooKeeper of scripts/services: once it serves, every configured registry lists it (several at
//! once); a graceful stop (SIGTERM) removes it from all of them before the process exits; a
//! killed server (SIGKILL) disappears when its entry's time to live runs out.

use std::path::Path;
use std::time::Duration;

use ferrata_registry::{Discovery, EtcdConfig, RedisConfig, RegistryConfig, ZookeeperConfig};
use ferrata_testkit::{TcProcess, eventually, service_url};

fn server_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrata-server"))
}

/// A cluster name of this test run alone.
fn cluster(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A `[registry]` table naming the three services, with short lifetimes.
fn registry_toml(cluster: &str) -> String {
    format!(
        "[registry]\ncluster = \"{cluster}\"\n\
         [registry.etcd3]\nendpoints = \"{etcd}\"\nttl = \"2s\"\n\
         [registry.redis]\nurl = \"{redis}\"\nttl = \"1s\"\nrefresh = \"300ms\"\n\
         [registry.zk]\nservers = \"{zk}\"\nsession_timeout = \"1s\"\n",
        etcd = service_url("FERRATA_ETCD_URL"),
        redis = service_url("FERRATA_REDIS_URL"),
        zk = service_url("FERRATA_ZOOKEEPER_ADDR"),
    )
}

/// One [`Discovery`] per registry, each reading what Seata's client reads.
fn lookups() -> Vec<(&'static str, Discovery)> {
    let configs = [
        RegistryConfig::Etcd(EtcdConfig {
            endpoints: vec![service_url("FERRATA_ETCD_URL")],
            ..EtcdConfig::default()
        }),
        RegistryConfig::Redis(RedisConfig {
            url: service_url("FERRATA_REDIS_URL"),
            ..RedisConfig::default()
        }),
        RegistryConfig::Zookeeper(ZookeeperConfig {
            servers: service_url("FERRATA_ZOOKEEPER_ADDR"),
            ..ZookeeperConfig::default()
        }),
    ];
    configs
        .iter()
        .map(|config| {
            let discovery =
                Discovery::connect(std::slice::from_ref(config)).expect("registry client");
            (config.kind(), discovery)
        })
        .collect()
}

async fn lists(discovery: &Discovery, cluster: &str, address: &str) -> bool {
    discovery
        .lookup(cluster)
        .await
        .is_ok_and(|list| list.iter().any(|a| a == address))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_everywhere_while_serving_and_gone_after_a_graceful_stop() {
    let cluster = cluster("graceful");
    let mut server =
        TcProcess::start_in_temp_dir_with_config(server_bin(), &registry_toml(&cluster))
            .expect("server starts");
    let address = server.addr().to_string();
    let lookups = lookups();
    for (kind, discovery) in &lookups {
        assert!(
            eventually(Duration::from_secs(15), || lists(
                discovery, &cluster, &address
            ))
            .await,
            "{kind} never listed {address}:\n{}",
            server.log()
        );
    }
    let status = server
        .terminate(Duration::from_secs(15))
        .expect("graceful stop");
    assert!(status.success(), "exit {status}:\n{}", server.log());
    // Removed before the process exited: no waiting for a TTL.
    for (kind, discovery) in &lookups {
        let list = discovery.lookup(&cluster).await.expect("lookup");
        assert!(
            list.is_empty(),
            "{kind} still lists {list:?} after a graceful stop:\n{}",
            server.log()
        );
    }
    let log = server.log();
    assert!(log.contains("deregistered"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_disappears_after_its_time_to_live() {
    let cluster = cluster("killed");
    let mut server =
        TcProcess::start_in_temp_dir_with_config(server_bin(), &registry_toml(&cluster))
            .expect("server starts");
    let address = server.addr().to_string();
    let lookups = lookups();
    for (kind, discovery) in &lookups {
        assert!(
            eventually(Duration::from_secs(15), || lists(
                discovery, &cluster, &address
            ))
            .await,
            "{kind} never listed {address}:\n{}",
            server.log()
        );
    }
    server.kill();
    for (kind, discovery) in &lookups {
        let gone = || async { discovery.lookup(&cluster).await.is_ok_and(|l| l.is_empty()) };
        assert!(
            eventually(Duration::from_secs(30), gone).await,
            "{kind} still lists the killed server long after its time to live"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_of_one_cluster_are_both_listed() {
    let cluster = cluster("pair");
    let toml = registry_toml(&cluster);
    let first = TcProcess::start_in_temp_dir_with_config(server_bin(), &toml).expect("first");
    let second = TcProcess::start_in_temp_dir_with_config(server_bin(), &toml).expect("second");
    let mut expected = vec![first.addr().to_string(), second.addr().to_string()];
    expected.sort();
    for (kind, discovery) in lookups() {
        let both = || async {
            discovery
                .lookup(&cluster)
                .await
                .is_ok_and(|l| l == expected)
        };
        assert!(
            eventually(Duration::from_secs(15), both).await,
            "{kind} does not list both {expected:?}: {:?}",
            discovery.lookup(&cluster).await
        );
    }
}
