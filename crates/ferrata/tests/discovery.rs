//! Discovery of TCs through registries, against real ferrata-server processes registered in
//! the etcd, Redis and ZooKeeper of scripts/services: a client configured with registries and no
//! address list finds the cluster's TCs, carries on through another TC when one is killed,
//! drops the dead one once the registries stop listing it, and connects to a TC that joins.

mod support;

use std::time::Duration;

use ferrata::registry::{Discovery, EtcdConfig, RedisConfig, ZookeeperConfig};
use ferrata::{Client, ClientConfig, GlobalStatus, RegistryConfig};
use ferrata_testkit::{TcProcess, service_url};
use support::{eventually, server_binary};

/// A cluster name of this test run alone.
fn cluster(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

fn etcd() -> RegistryConfig {
    RegistryConfig::Etcd(EtcdConfig {
        endpoints: vec![service_url("FERRATA_ETCD_URL")],
        ..EtcdConfig::default()
    })
}

fn redis() -> RegistryConfig {
    RegistryConfig::Redis(RedisConfig {
        url: service_url("FERRATA_REDIS_URL"),
        ..RedisConfig::default()
    })
}

fn zookeeper() -> RegistryConfig {
    RegistryConfig::Zookeeper(ZookeeperConfig {
        servers: service_url("FERRATA_ZOOKEEPER_ADDR"),
        ..ZookeeperConfig::default()
    })
}

/// A server of `cluster` registered in all three registries with short lifetimes.
fn start_server(cluster: &str) -> TcProcess {
    let toml = format!(
        "[registry]\ncluster = \"{cluster}\"\n\
         [registry.etcd3]\nendpoints = \"{}\"\nttl = \"2s\"\n\
         [registry.redis]\nurl = \"{}\"\nttl = \"1s\"\nrefresh = \"300ms\"\n\
         [registry.zk]\nservers = \"{}\"\nsession_timeout = \"1s\"\n",
        service_url("FERRATA_ETCD_URL"),
        service_url("FERRATA_REDIS_URL"),
        service_url("FERRATA_ZOOKEEPER_ADDR"),
    );
    TcProcess::start_in_temp_dir_with_config(&server_binary(), &toml).expect("server starts")
}

fn client_config(app: &str, cluster: &str, registries: Vec<RegistryConfig>) -> ClientConfig {
    let mut builder = ClientConfig::builder(app)
        .vgroup_mapping("default_tx_group", cluster)
        .registry_refresh(Duration::from_millis(200))
        .tm_request_timeout(Duration::from_secs(5))
        .rm_request_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .reconnect_backoff_initial(Duration::from_millis(50))
        .reconnect_backoff_max(Duration::from_millis(500))
        .commit_retry_count(1)
        .retry_interval(Duration::from_millis(50));
    for registry in registries {
        builder = builder.registry(registry);
    }
    builder.build().expect("valid config")
}

/// Begins and commits one transaction; its XID on success.
async fn begin_commit(client: &Client) -> Result<String, ferrata::Error> {
    let tx = client.begin(Duration::from_secs(30), "discovery").await?;
    let xid = tx.xid().to_owned();
    let status = tx.commit().await?;
    assert!(
        matches!(status, GlobalStatus::Committed | GlobalStatus::Finished),
        "{xid}: {status:?}"
    );
    Ok(xid)
}

/// The TC address an XID names.
fn tc_of(xid: &str) -> &str {
    xid.rsplit_once(':').map_or("", |(addr, _)| addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_registry_alone_leads_to_the_cluster() {
    let cluster = cluster("alone");
    let server = start_server(&cluster);
    let address = server.addr().to_string();
    for registry in [etcd(), redis(), zookeeper()] {
        let kind = registry.kind();
        let config = client_config(&format!("alone-{kind}"), &cluster, vec![registry]);
        let listed = || async {
            Discovery::connect(&config.registries)
                .expect("registry")
                .lookup(&cluster)
                .await
                .is_ok_and(|l| l == [address.clone()])
        };
        assert!(
            eventually(Duration::from_secs(15), listed).await,
            "{kind} never listed the server"
        );
        let client = Client::connect(config)
            .await
            .expect("connects through the registry");
        let xid = begin_commit(&client).await.expect("begin and commit");
        assert_eq!(tc_of(&xid), address, "{kind}");
        client.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tc_is_replaced_by_another_of_the_cluster() {
    let cluster = cluster("failover");
    let mut first = start_server(&cluster);
    let second = start_server(&cluster);
    let (first_addr, second_addr) = (first.addr().to_string(), second.addr().to_string());
    let config = client_config("failover", &cluster, vec![etcd(), redis(), zookeeper()]);
    let mut both = vec![first_addr.clone(), second_addr.clone()];
    both.sort();
    let discovery = Discovery::connect(&config.registries).expect("registries");
    let listed = || async { discovery.lookup(&cluster).await.is_ok_and(|l| l == both) };
    assert!(
        eventually(Duration::from_secs(15), listed).await,
        "both servers never listed"
    );
    let client = Client::connect(config).await.expect("connects");
    // Both TCs connected (TM and RM each).
    let connected = || async { client.transport_stats().connections_established >= 4 };
    assert!(
        eventually(Duration::from_secs(15), connected).await,
        "{:?}",
        client.transport_stats()
    );
    for _ in 0..4 {
        begin_commit(&client)
            .await
            .expect("begin and commit with both up");
    }

    first.kill();
    // Transactions go on through the second TC: a request caught by the kill may fail, the
    // next ones succeed, and every success names the survivor.
    let mut successes = 0;
    for _ in 0..200 {
        match begin_commit(&client).await {
            Ok(xid) => {
                assert_eq!(tc_of(&xid), second_addr);
                successes += 1;
                if successes == 10 {
                    break;
                }
            }
            Err(error) => {
                assert_eq!(
                    successes, 0,
                    "failed after succeeding through the survivor: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(successes, 10, "did not carry on through {second_addr}");

    // Once its entries expired, the dead TC is dropped; a TC that joins is connected and used.
    let only_second = || async {
        discovery
            .lookup(&cluster)
            .await
            .is_ok_and(|l| l == [second_addr.clone()])
    };
    assert!(
        eventually(Duration::from_secs(30), only_second).await,
        "dead TC still listed"
    );
    let before = client.transport_stats().connections_established;
    let third = start_server(&cluster);
    let joined = || async { client.transport_stats().connections_established >= before + 2 };
    assert!(
        eventually(Duration::from_secs(30), joined).await,
        "the new TC was never connected"
    );
    drop(second);
    let mut on_third = 0;
    for _ in 0..200 {
        match begin_commit(&client).await {
            Ok(xid) => {
                assert_eq!(tc_of(&xid), third.addr().to_string());
                on_third += 1;
                if on_third == 3 {
                    break;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(on_third, 3, "did not carry on through the TC that joined");
    client.shutdown();
}
