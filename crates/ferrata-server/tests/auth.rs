//! `[auth]` at the protocol level, with registrations built by hand as the Java and Go clients
//! send them: a signed TM is accepted, Go's unsigned one refused, an unsigned (Java) RM is let in
//! only next to a live signed TM of its application, and requests before an accepted
//! registration close the connection.

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrata_proto::auth::signed_extra_data;
use ferrata_proto::{Message, RegisterRmRequest, RegisterTmRequest};
use ferrata_testkit::TcProcess;
use support::Client;

const APP: &str = "auth-proto";
const GROUP: &str = "default_tx_group";

fn server() -> TcProcess {
    let toml = format!(
        "[auth]\nenabled = true\n[[auth.keys]]\napplication_id = \"{APP}\"\naccess_key = \"AK\"\nsecret_key = \"SK\"\n"
    );
    TcProcess::start_in_temp_dir_with_config(Path::new(env!("CARGO_BIN_EXE_ferrata-server")), &toml)
        .expect("server starts")
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("fits")
}

async fn register_tm(client: &Client, extra_data: String) -> bool {
    let answer = client
        .call(Message::RegisterTm(RegisterTmRequest {
            version: "2.6.0".into(),
            application_id: APP.into(),
            transaction_service_group: GROUP.into(),
            extra_data,
        }))
        .await
        .expect("answered");
    match answer {
        Message::RegisterTmResponse(r) => r.identified,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn register_unsigned_rm(client: &Client) -> bool {
    let answer = client
        .call(Message::RegisterRm(RegisterRmRequest {
            version: "2.6.0".into(),
            application_id: APP.into(),
            transaction_service_group: GROUP.into(),
            extra_data: String::new(),
            resource_ids: "auth-proto-action".into(),
        }))
        .await
        .expect("answered");
    match answer {
        Message::RegisterRmResponse(r) => r.identified,
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn signed_tm_unsigned_rm_and_refusals() {
    let server = server();
    let signed = signed_extra_data("AK", "SK", GROUP, "127.0.0.1", now_ms()).expect("signs");

    // Go's TM (and any unsigned one) is refused, and the connection may not begin.
    let go = Client::connect(server.addr()).await.expect("connect");
    assert!(!register_tm(&go, format!("vgroup={GROUP}\n")).await);
    assert!(
        go.begin(10_000).await.is_err(),
        "closed after a request without registration"
    );

    // An unsigned RM with no signed TM of its application around is refused.
    let early_rm = Client::connect(server.addr()).await.expect("connect");
    assert!(!register_unsigned_rm(&early_rm).await);

    let tm = Client::connect(server.addr()).await.expect("connect");
    assert!(register_tm(&tm, signed.clone()).await, "signed TM accepted");
    let xid = tm
        .begin(10_000)
        .await
        .expect("begin after a signed registration");
    assert!(!xid.is_empty());

    // The same signature again is a replay.
    let replay = Client::connect(server.addr()).await.expect("connect");
    assert!(!register_tm(&replay, signed).await);

    // While the signed TM is connected, an unsigned RM of its application and host gets in.
    let rm = Client::connect(server.addr()).await.expect("connect");
    assert!(register_unsigned_rm(&rm).await);
    drop(tm);
    let refused = support::eventually(Duration::from_secs(10), || async {
        !register_unsigned_rm(&Client::connect(server.addr()).await.expect("connect")).await
    })
    .await;
    assert!(refused, "once the TM is gone, new unsigned RMs are refused");

    let log = server.log();
    for reason in [
        "is not signed",
        "unsigned RM registration",
        "already used (replay)",
        "on a connection that has not registered",
    ] {
        assert!(log.contains(reason), "{reason:?} logged:\n{log}");
    }
    assert!(!log.contains("SK\""), "no secret in the log");
}

#[tokio::test]
async fn auth_off_on_loopback_does_not_warn() {
    let server = TcProcess::start_in_temp_dir_with_config(
        Path::new(env!("CARGO_BIN_EXE_ferrata-server")),
        "",
    )
    .expect("server starts");
    assert!(!server.log().contains("client authentication is off"));
}
