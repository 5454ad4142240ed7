//! Client authentication and TLS against the real ferrata-server: signed registrations are
//! accepted and work end to end, wrong or missing signatures are refused; the SDK over TLS,
//! mutual TLS refusing a client without a certificate, plain and TLS listeners side by side.
//! Certificates are generated for each test (rcgen); everything listens on 127.0.0.1.

mod support;

use std::path::Path;
use std::time::Duration;

use ferrata::tls::TlsOptions;
use ferrata::{BranchRegistration, BranchType, Client, ClientConfig, Error, GlobalStatus};
use ferrata_testkit::TcProcess;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::{Recorder, config, eventually, server_binary};

const APP: &str = "auth-app";
const AK: &str = "AK-auth-app";
const SK: &str = "SK-auth-app-secret";

fn auth_toml() -> String {
    format!(
        "[auth]\nenabled = true\ntimestamp_window = \"1m\"\n\
         [[auth.keys]]\napplication_id = \"{APP}\"\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n"
    )
}

fn start(toml: &str) -> TcProcess {
    TcProcess::start_in_temp_dir_with_config(&server_binary(), toml).expect("server starts")
}

async fn begin_commit(client: &Client) {
    let tx = client
        .begin(Duration::from_secs(30), "auth-tls")
        .await
        .expect("begin");
    assert_eq!(tx.commit().await.expect("commit"), GlobalStatus::Committed);
}

#[tokio::test]
async fn signed_client_registers_begins_and_gets_phase_two() {
    let server = start(&auth_toml());
    let mut cfg = config(APP, &[server.addr().to_string()]);
    cfg.credentials = Some(ferrata::Credentials::new(AK, SK));
    let client = Client::connect(cfg)
        .await
        .expect("signed TM and RM accepted");
    begin_commit(&client).await;

    // The RM connection (signed too) receives phase two.
    let recorder = Recorder::default();
    client
        .register_resource("auth-action", recorder.clone())
        .await
        .expect("resource registered");
    let tx = client
        .begin(Duration::from_secs(30), "auth-branch")
        .await
        .expect("begin");
    client
        .branch_register(
            BranchRegistration::new(tx.xid(), BranchType::Tcc, "auth-action")
                .application_data("{}"),
        )
        .await
        .expect("branch registered");
    let xid = tx.xid().to_owned();
    tx.commit().await.expect("commit");
    let delivered = eventually(Duration::from_secs(20), || {
        let recorder = recorder.clone();
        let xid = xid.clone();
        async move { recorder.outcome(&xid) == Some(true) }
    })
    .await;
    assert!(delivered, "phase-2 commit reached the signed RM");
    client.shutdown();
}

#[tokio::test]
async fn wrong_secret_and_unsigned_clients_are_refused() {
    let server = start(&auth_toml());
    let mut cfg = config(APP, &[server.addr().to_string()]);
    cfg.credentials = Some(ferrata::Credentials::new(AK, "not-the-secret"));
    let error = Client::connect(cfg).await.expect_err("wrong secret");
    assert!(
        matches!(error, Error::RegistrationRejected { .. }),
        "{error:?}"
    );

    let unsigned = config(APP, &[server.addr().to_string()]);
    let error = Client::connect(unsigned).await.expect_err("unsigned");
    assert!(
        matches!(error, Error::RegistrationRejected { .. }),
        "{error:?}"
    );

    let log = server.log();
    assert!(
        log.contains("wrong signature for access key") && log.contains("is not signed"),
        "refusal reasons are logged:\n{log}"
    );
    assert!(!log.contains(SK), "the secret key must never be logged");
    assert!(!log.contains("not-the-secret"));
}

/// A CA, and certificates it issued for the server (127.0.0.1, localhost) and for a client.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let client_cert = CertificateParams::new(vec!["ferrata-client".into()])
            .expect("client params")
            .signed_by(&client_key, &issuer)
            .expect("client certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let write =
            |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).expect("write PEM");
        write("ca.pem", &ca_cert.pem());
        write("server.pem", &server_cert.pem());
        write("server.key", &server_key.serialize_pem());
        Pki {
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn tls_toml(&self, mutual: bool) -> String {
        let mut toml = format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
            self.path("server.pem"),
            self.path("server.key")
        );
        if mutual {
            toml.push_str(&format!("client_ca = \"{}\"\n", self.path("ca.pem")));
        }
        toml
    }

    fn client_options(&self) -> TlsOptions {
        TlsOptions::new(self.ca_pem.as_bytes()).expect("CA")
    }
}

/// The TLS listener's address, from the line the server logs before it is ready.
fn tls_address(server: &TcProcess) -> String {
    let log = server.log();
    log.lines()
        .find_map(|line| line.split("tls_listen=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no tls_listen in the log:\n{log}"))
        .to_owned()
}

fn tls_config(app: &str, address: String, tls: TlsOptions) -> ClientConfig {
    let mut cfg = config(app, &[address]);
    cfg.tls = Some(tls);
    cfg
}

#[tokio::test]
async fn plain_and_tls_listeners_side_by_side() {
    let pki = Pki::new();
    let server = start(&pki.tls_toml(false));
    let tls_addr = tls_address(&server);
    assert_ne!(tls_addr, server.addr().to_string());

    let over_tls = Client::connect(tls_config(
        "tls-app",
        tls_addr.clone(),
        pki.client_options(),
    ))
    .await
    .expect("TLS client connects");
    let plain = Client::connect(config("plain-app", &[server.addr().to_string()]))
        .await
        .expect("plain client connects");
    begin_commit(&over_tls).await;
    begin_commit(&plain).await;

    // The server's certificate names 127.0.0.1 and localhost, not other names.
    let wrong_name = pki.client_options().server_name("tc.example.invalid");
    let mut cfg = tls_config("tls-app", tls_addr, wrong_name);
    cfg.connect_timeout = Duration::from_secs(2);
    let error = Client::connect(cfg).await.expect_err("name mismatch");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    over_tls.shutdown();
    plain.shutdown();
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = start(&format!("{}{}", pki.tls_toml(true), auth_toml()));
    let tls_addr = tls_address(&server);

    let identity = pki
        .client_options()
        .client_identity(
            pki.client_cert_pem.as_bytes(),
            pki.client_key_pem.as_bytes(),
        )
        .expect("client identity");
    let mut cfg = tls_config(APP, tls_addr.clone(), identity);
    cfg.credentials = Some(ferrata::Credentials::new(AK, SK));
    let client = Client::connect(cfg)
        .await
        .expect("certificate and signature accepted");
    begin_commit(&client).await;

    let mut anonymous = tls_config(APP, tls_addr, pki.client_options());
    anonymous.credentials = Some(ferrata::Credentials::new(AK, SK));
    anonymous.connect_timeout = Duration::from_secs(2);
    let error = Client::connect(anonymous)
        .await
        .expect_err("no client certificate");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(
        server.log().contains("TLS handshake failed"),
        "the server logs the refused handshake:\n{}",
        server.log()
    );
    client.shutdown();
}

#[test]
fn tls_options_report_bad_pem() {
    assert!(TlsOptions::new(b"not a certificate").is_err());
    let pki = Pki::new();
    let no_key = pki
        .client_options()
        .client_identity(pki.client_cert_pem.as_bytes(), b"");
    assert!(no_key.is_err());
    let from_files = TlsOptions::from_files(Path::new(&pki.path("ca.pem")), None);
    assert!(from_files.is_ok());
}
