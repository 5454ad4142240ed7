//! Layering, duration syntax, validation messages and `--print-config` output of [`Config`].
//! Every test runs in a figment `Jail`: its own working directory and environment variables.

// figment::Jail fixes its closures' error type (figment::Error, which is large).
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

fn with_file(path: &str) -> Cli {
    Cli {
        config: Some(PathBuf::from(path)),
        ..Cli::default()
    }
}

fn load_error(cli: &Cli) -> String {
    Config::load(cli).expect_err("invalid").to_string()
}

#[track_caller]
fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
}

/// The error of loading a file holding `text`.
fn file_error(jail: &mut Jail, text: &str) -> figment::Result<String> {
    jail.create_file("invalid.toml", text)?;
    Ok(load_error(&with_file("invalid.toml")))
}

/// A figment jail without the shell's environment: what scripts/test exports (such as
/// `FERRATA_ADMIN__LISTEN`) must not change what these tests load.
fn hermetic(test: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    Jail::expect_with(|jail| {
        jail.clear_env();
        test(jail)
    })
}

#[test]
fn flags_beat_environment_which_beats_file_which_beats_defaults() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[server]\nworker_id = 3\nlisten = \"127.0.0.1:9000\"\n\
             [store]\ndata_dir = \"/file\"\n\
             [limits]\nmax_sessions = 10\nmax_connections = 20\n",
        )?;
        jail.set_env("FERRATA_LIMITS__MAX_CONNECTIONS", "30");
        jail.set_env("FERRATA_STORE__DATA_DIR", "/env");
        // The short variable of earlier versions ranks below the nested one...
        jail.set_env("FERRATA_DATA_DIR", "/short");
        // ...and above the file.
        jail.set_env("FERRATA_WORKER_ID", "5");
        // FERRATA_* variables that are no configuration keys are left alone.
        jail.set_env("FERRATA_LOG", "debug");
        jail.set_env("FERRATA_BIN", "/usr/bin/true");
        let cli = Cli {
            data_dir: Some(PathBuf::from("/flag")),
            ..with_file("ferrata.toml")
        };
        let config = Config::load(&cli).expect("valid");
        assert_eq!(config.store.data_dir, PathBuf::from("/flag"));
        assert_eq!(config.limits.max_connections, 30);
        assert_eq!(config.server.worker_id, 5);
        assert_eq!(config.limits.max_sessions, 10);
        assert_eq!(
            config.server.listen,
            SocketAddr::from(([127, 0, 0, 1], 9000))
        );
        assert!(config.store.fsync, "untouched keys keep their default");

        jail.clear_env();
        let config = Config::load(&Cli::default()).expect("defaults");
        assert_eq!(config.limits.max_sessions, Limits::default().max_sessions);
        assert_eq!(config.store.data_dir, PathBuf::from("data"));
        Ok(())
    });
}

#[test]
fn durations_are_human_readable_or_off() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[limits]\nidle_timeout = \"1m 30s\"\nwrite_timeout = \"500ms\"\n\
             [coordinator]\nmax_commit_retry_timeout = \"2h\"\nundo_log_delete_period = \"off\"\n",
        )?;
        jail.set_env("FERRATA_COORDINATOR__RETRY_BACKOFF_MAX", "1day");
        let cli = Cli {
            branch_request_timeout: Some(Duration::from_secs(45)),
            ..with_file("ferrata.toml")
        };
        let config = Config::load(&cli).expect("valid");
        assert_eq!(config.limits.idle_timeout, Duration::from_secs(90));
        assert_eq!(config.limits.write_timeout, Duration::from_millis(500));
        let coordinator = &config.coordinator;
        assert_eq!(
            coordinator.max_commit_retry_timeout,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(coordinator.max_rollback_retry_timeout, None);
        assert_eq!(coordinator.undo_log_delete_period, None);
        assert_eq!(coordinator.retry_backoff_max, Duration::from_secs(86_400));
        assert_eq!(coordinator.branch_request_timeout, Duration::from_secs(45));
        let core = config.coordinator_config("h:1".to_owned());
        assert_eq!(core.max_commit_retry_timeout_ms, Some(7_200_000));
        assert_eq!(core.undo_log_delete_period_ms, None);
        assert_eq!(core.retry_backoff_max_ms, 86_400_000);

        let error = file_error(jail, "[limits]\nidle_timeout = 30\n")?;
        assert_mentions(&error, &["limits.idle_timeout"]);
        let error = file_error(
            jail,
            "[coordinator]\nmax_rollback_retry_timeout = \"5 parsecs\"\n",
        )?;
        assert_mentions(
            &error,
            &[
                "\"5 parsecs\" is not a duration",
                "coordinator.max_rollback_retry_timeout",
            ],
        );
        Ok(())
    });
}

#[test]
fn validate_names_the_key_and_what_it_may_be() {
    let mut config = Config::default();
    config.validate().expect("the defaults are valid");
    config.server.worker_id = 2000;
    assert_eq!(
        config.validate().expect_err("worker id").to_string(),
        "server.worker_id = 2000 is out of range: use 0 to 1023"
    );
    config = Config::default();
    config.limits.max_sessions = 0;
    assert_eq!(
        config.validate().expect_err("no sessions").to_string(),
        "limits.max_sessions = 0 is out of range: use at least 1"
    );
    config = Config::default();
    config.coordinator.retry_backoff_max = Duration::from_millis(500);
    assert_eq!(
        config.validate().expect_err("backoff").to_string(),
        "coordinator.retry_backoff_max = \"500ms\" is out of range: use at least \
         coordinator.retry_backoff_initial (\"1s\")"
    );
    config = Config::default();
    config.coordinator.undo_log_delete_period = Some(Duration::ZERO);
    assert_eq!(
        config.validate().expect_err("zero period").to_string(),
        "coordinator.undo_log_delete_period = \"0s\" is out of range: use at least \"1ms\""
    );
    config = Config::default();
    config.coordinator.begin_rate_limit = Some(BeginRateLimit {
        tokens_per_second: 0,
        max_tokens: 1,
        initial_tokens: 1,
    });
    assert_eq!(
        config.validate().expect_err("no tokens").to_string(),
        "coordinator.begin_rate_limit.tokens_per_second = 0 is out of range: use at least 1"
    );
    config = Config::default();
    config.auth.enabled = true;
    let error = config
        .validate()
        .expect_err("auth without keys")
        .to_string();
    assert!(
        error.starts_with("auth: ") && error.contains("auth.keys"),
        "{error}"
    );
}

#[test]
fn core_defaults_come_from_the_core() {
    let prefix = "10.0.0.5:8091".to_owned();
    assert_eq!(
        Config::default().coordinator_config(prefix.clone()),
        CoordinatorConfig {
            xid_prefix: prefix,
            ..CoordinatorConfig::default()
        }
    );
}

#[test]
fn auth_and_tls_tables() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[auth]\nenabled = true\ntimestamp_window = \"1s\"\n\
             [[auth.keys]]\napplication_id = \"orders\"\naccess_key = \"AK\"\nsecret_key = \"SK\"\n\
             [tls]\nlisten = \"127.0.0.1:8092\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )?;
        let config = Config::load(&with_file("ferrata.toml")).expect("valid");
        assert!(config.auth.enabled);
        assert_eq!(config.auth.timestamp_window, Duration::from_secs(1));
        assert_eq!(config.auth.keys.len(), 1);
        let printed = config.to_toml().expect("toml");
        assert!(
            printed.contains("<redacted>") && !printed.contains("\"SK\""),
            "{printed}"
        );
        let tls = config.tls.expect("tls table");
        assert_eq!(tls.listen, SocketAddr::from(([127, 0, 0, 1], 8092)));
        assert!(tls.client_ca.is_none());
        let defaults = Config::default();
        assert!(!defaults.auth.enabled && defaults.tls.is_none());
        Ok(())
    });
}

#[test]
fn unknown_keys_and_missing_files_are_errors() {
    hermetic(|jail| {
        let error = file_error(jail, "[store]\nfsynk = false\n")?;
        assert_mentions(&error, &["fsynk", "invalid.toml"]);
        let error = load_error(&with_file("missing.toml"));
        assert_mentions(&error, &["cannot read the configuration file missing.toml"]);
        jail.set_env("FERRATA_LIMITS__MAX_SESIONS", "3");
        let error = load_error(&Cli::default());
        assert_mentions(&error, &["max_sesions"]);
        Ok(())
    });
}

#[test]
fn printed_configuration_loads_back_unchanged() {
    hermetic(|jail| {
        let mut config = Config::default();
        config.server.advertise_host = Some("10.0.0.5".to_owned());
        config.coordinator.max_commit_retry_timeout = Some(Duration::from_secs(600));
        config.coordinator.begin_rate_limit = Some(BeginRateLimit {
            tokens_per_second: 10,
            max_tokens: 20,
            initial_tokens: 5,
        });
        let printed = config.to_toml().expect("toml");
        jail.create_file("printed.toml", &printed)?;
        let loaded = Config::load(&with_file("printed.toml")).expect("loads");
        assert_eq!(loaded.to_toml().expect("toml"), printed);
        assert_mentions(
            &printed,
            &[
                "idle_timeout = \"30s\"",
                "max_rollback_retry_timeout = \"off\"",
            ],
        );
        Ok(())
    });
}

#[test]
fn keys_of_earlier_versions_name_their_replacement() {
    hermetic(|jail| {
        let error = file_error(jail, "[limits]\nwrite_timeout_ms = 500\n")?;
        assert_mentions(
            &error,
            &["limits.write_timeout_ms is now limits.write_timeout"],
        );
        let error = file_error(jail, "[recovery]\nretry_backoff_max_ms = 500\n")?;
        assert_mentions(
            &error,
            &["recovery.retry_backoff_max_ms is now coordinator.retry_backoff_max"],
        );
        Ok(())
    });
}

#[test]
fn a_database_store_url_is_checked_and_printed_without_its_password() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[store]\nurl = \"postgres://tc:s3cret@127.0.0.1:5432/seata\"\nschema = \"tc\"\n\
             [server]\nlisten = \"127.0.0.1:8091\"\n",
        )?;
        let config = Config::load(&with_file("ferrata.toml")).expect("valid");
        assert_eq!(config.store.schema.as_deref(), Some("tc"));
        let printed = config.to_toml().expect("toml");
        assert!(
            printed.contains("postgres://tc:<redacted>@127.0.0.1:5432/seata")
                && !printed.contains("s3cret"),
            "{printed}"
        );
        // Every node would name itself 127.0.0.1:8091 in its XIDs.
        let error = file_error(
            jail,
            "[store]\nurl = \"postgres://u@db/seata\"\n[server]\nlisten = \"0.0.0.0:8091\"\n",
        )?;
        assert_mentions(&error, &["server.advertise_host", "store.url"]);
        let error = file_error(jail, "[store]\nurl = \"redis://u:pw@127.0.0.1/0\"\n")?;
        assert_mentions(&error, &["store.url", "postgres://", "u:<redacted>@"]);
        assert!(!error.contains("pw@"), "{error}");
        Ok(())
    });
}

#[test]
fn saga_pictures_must_be_a_plain_http_url() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[admin]\nsaga_pictures = \"https://orders.internal:8443/saga/\"\n",
        )?;
        let config = Config::load(&with_file("ferrata.toml")).expect("valid");
        assert_eq!(
            config.admin.saga_pictures_origin(),
            Some("https://orders.internal:8443")
        );
        // It lands in a content security policy: nothing that could end or extend it.
        for bad in [
            "orders:8080/saga",
            "ftp://orders/saga",
            "http://orders/saga; script-src *",
            "http://orders/saga?x=1",
            "http:///saga",
            "http://orders/sa ga",
        ] {
            let error = file_error(jail, &format!("[admin]\nsaga_pictures = \"{bad}\"\n"))?;
            assert_mentions(&error, &["admin.saga_pictures"]);
        }
        Ok(())
    });
}

#[test]
fn registry_table_names_the_registries_and_is_checked() {
    hermetic(|jail| {
        jail.create_file(
            "ferrata.toml",
            "[registry]\ncluster = \"east\"\n\
             [registry.etcd3]\nendpoints = \"http://127.0.0.1:2379, http://127.0.0.1:2380\"\n\
             [registry.redis]\nurl = \"redis://127.0.0.1:6379/2\"\npassword = \"RS\"\n\
             [registry.zk]\nservers = \"127.0.0.1:2181\"\nsession_timeout = \"4s\"\n",
        )?;
        jail.set_env("FERRATA_REGISTRY__NACOS__SERVER_ADDR", "127.0.0.1:8848");
        let config = Config::load(&with_file("ferrata.toml")).expect("valid");
        let registry = &config.registry;
        assert_eq!(registry.cluster, "east");
        let kinds: Vec<&str> = registry.registries().iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, ["etcd3", "redis", "zk", "nacos"]);
        let etcd = registry.etcd3.as_ref().expect("etcd3");
        assert_eq!(
            etcd.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.1:2380"]
        );
        assert_eq!(etcd.ttl, Duration::from_secs(10));
        let printed = config.to_toml().expect("toml");
        assert_mentions(
            &printed,
            &["[registry.etcd3]", "<redacted>", "session_timeout = \"4s\""],
        );
        assert!(!printed.contains("RS"), "{printed}");
        // No registry: the table is not printed at all.
        assert!(
            !Config::default()
                .to_toml()
                .expect("toml")
                .contains("registry")
        );
        Ok(())
    });
}

#[test]
fn registry_settings_that_cannot_work_are_refused() {
    hermetic(|jail| {
        let error = file_error(jail, "[registry]\ncluster = \"a_b\"\n[registry.redis]\n")?;
        assert_mentions(&error, &["registry.cluster", "'_'"]);
        let error = file_error(jail, "[registry.redis]\nttl = \"2s\"\nrefresh = \"2s\"\n")?;
        assert_mentions(&error, &["registry.redis.refresh", "shorter than"]);
        let error = file_error(jail, "[registry.etcd3]\nttl = \"100ms\"\n")?;
        assert_mentions(&error, &["registry.etcd3.ttl", "at least \"1s\""]);
        let error = file_error(jail, "[registry.etcd3]\nendpoints = \"https://h:2379\"\n")?;
        assert_mentions(&error, &["registry.etcd3", "https"]);
        let error = file_error(jail, "[registry]\naddress = \"nohost\"\n[registry.zk]\n")?;
        assert_mentions(&error, &["registry.address", "host:port"]);
        let error = file_error(jail, "[registry.zk]\nsession_timeuot = \"1s\"\n")?;
        assert_mentions(&error, &["session_timeuot"]);
        // A cluster name alone configures no registry: nothing to check, nothing registered.
        jail.create_file("only_cluster.toml", "[registry]\ncluster = \"a_b\"\n")?;
        let config = Config::load(&with_file("only_cluster.toml")).expect("valid");
        assert!(!config.registry.is_enabled());
        Ok(())
    });
}
