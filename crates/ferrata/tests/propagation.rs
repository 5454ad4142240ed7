//! XID propagation end to end: reqwest middleware → axum behind `XidLayer`, and a tonic client
//! interceptor → tonic server behind `XidLayer`; plus a full TM → HTTP → RM flow on the real TC.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut};
use ferrata::context::{current_branch_type, current_xid, with_branch_type, with_xid};
use ferrata::integrations::reqwest::XidPropagation;
use ferrata::integrations::tonic::XidInterceptor;
use ferrata::integrations::tower::XidLayer;
use ferrata::{BranchRegistration, BranchType, Client, TransactionOptions};
use support::{Recorder, Server, config, eventually};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

async fn axum_server(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn http_client() -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XidPropagation)
        .build()
}

#[tokio::test]
async fn reqwest_to_axum_carries_the_xid() {
    let router = axum::Router::new()
        .route(
            "/xid",
            axum::routing::get(|| async {
                let branch = current_branch_type().map_or("-", |b| b.name());
                format!(
                    "{}|{branch}",
                    current_xid().unwrap_or_else(|| "none".into())
                )
            }),
        )
        .layer(XidLayer::new());
    let base = axum_server(router).await;
    let http = http_client();
    let get = || async {
        http.get(format!("{base}/xid"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    };
    assert_eq!(get().await, "none|-");
    assert_eq!(
        with_xid("127.0.0.1:8091:42", get()).await,
        "127.0.0.1:8091:42|-"
    );
    assert_eq!(
        with_xid(
            "127.0.0.1:8091:43",
            with_branch_type(BranchType::Tcc, get())
        )
        .await,
        "127.0.0.1:8091:43|TCC"
    );
    // Java clients send the header as TX_XID; a blank one binds nothing.
    let raw = reqwest::Client::new();
    let body = raw
        .get(format!("{base}/xid"))
        .header("TX_XID", "10.0.0.1:8091:7")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "10.0.0.1:8091:7|-");
    let body = raw
        .get(format!("{base}/xid"))
        .header("TX_XID", "   ")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "none|-");
}

#[tokio::test]
async fn a_participant_service_joins_over_http_and_is_committed() {
    let server = Server::start().expect("server");
    // The participant service: registers a TCC branch for every call, under the inbound XID.
    let participant = Client::connect(config("http-participant", &[server.address()]))
        .await
        .expect("participant connects");
    let recorder = Recorder::default();
    participant
        .register_resource("http-reserve", recorder.clone())
        .await
        .expect("register");
    let p = participant.clone();
    let router = axum::Router::new()
        .route(
            "/reserve",
            axum::routing::post(move || {
                let p = p.clone();
                async move {
                    let Some(xid) = current_xid() else {
                        return (axum::http::StatusCode::BAD_REQUEST, "no xid".to_owned());
                    };
                    match p
                        .branch_register(
                            BranchRegistration::new(&xid, BranchType::Tcc, "http-reserve")
                                .application_data("{}"),
                        )
                        .await
                    {
                        Ok(id) => (axum::http::StatusCode::OK, id.to_string()),
                        Err(e) => (axum::http::StatusCode::CONFLICT, e.to_string()),
                    }
                }
            }),
        )
        .layer(XidLayer::new());
    let base = axum_server(router).await;

    let launcher = Client::connect(config("http-launcher", &[server.address()]))
        .await
        .expect("launcher connects");
    let http = http_client();
    let (h, b) = (http.clone(), base.clone());
    let commit_xid = launcher
        .in_global_transaction(TransactionOptions::new("purchase"), |tx| async move {
            let response = h.post(format!("{b}/reserve")).send().await?;
            assert!(
                response.status().is_success(),
                "{:?}",
                response.text().await
            );
            Ok::<_, reqwest_middleware::Error>(tx.xid)
        })
        .await
        .expect("committed");
    let rollback_xid = {
        let mut seen = None;
        let result: Result<(), _> = launcher
            .in_global_transaction(TransactionOptions::new("purchase-fails"), |tx| {
                seen = Some(tx.xid.clone());
                let http = http.clone();
                let base = base.clone();
                async move {
                    let response = http
                        .post(format!("{base}/reserve"))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    assert!(response.status().is_success());
                    Err("payment declined".to_owned())
                }
            })
            .await;
        assert!(result.is_err());
        seen.expect("xid")
    };
    let r = recorder.clone();
    let (c, rb) = (commit_xid.clone(), rollback_xid.clone());
    assert!(
        eventually(Duration::from_secs(20), || {
            let r = r.clone();
            let (c, rb) = (c.clone(), rb.clone());
            async move { r.outcome(&c) == Some(true) && r.outcome(&rb) == Some(false) }
        })
        .await,
        "{:?}",
        recorder.calls()
    );
}

/// A gRPC codec for UTF-8 strings, so the test needs no protobuf code generation.
#[derive(Debug, Clone, Copy, Default)]
struct StringCodec;

impl Codec for StringCodec {
    type Encode = String;
    type Decode = String;
    type Encoder = StringCodec;
    type Decoder = StringCodec;

    fn encoder(&mut self) -> StringCodec {
        StringCodec
    }

    fn decoder(&mut self) -> StringCodec {
        StringCodec
    }
}

impl Encoder for StringCodec {
    type Item = String;
    type Error = Status;

    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for StringCodec {
    type Item = String;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// `/test.Xid/Echo` answers with the XID bound while it runs.
#[derive(Debug, Clone, Copy)]
struct EchoXid;

impl tonic::server::NamedService for EchoXid {
    const NAME: &'static str = "test.Xid";
}

struct EchoHandler;

impl tonic::server::UnaryService<String> for EchoHandler {
    type Response = String;
    type Future = std::future::Ready<Result<Response<String>, Status>>;

    fn call(&mut self, _request: Request<String>) -> Self::Future {
        std::future::ready(Ok(Response::new(
            current_xid().unwrap_or_else(|| "none".into()),
        )))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for EchoXid {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(StringCodec);
            Ok(grpc.unary(EchoHandler, request).await)
        })
    }
}

#[tokio::test]
async fn tonic_interceptor_to_tonic_server_carries_the_xid() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .layer(XidLayer::new())
            .add_service(EchoXid)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(InterceptedService::new(channel, XidInterceptor));
    let mut echo = async || {
        grpc.ready().await.expect("ready");
        grpc.unary(
            Request::new(String::new()),
            http::uri::PathAndQuery::from_static("/test.Xid/Echo"),
            StringCodec,
        )
        .await
        .expect("call")
        .into_inner()
    };
    assert_eq!(echo().await, "none");
    assert_eq!(
        with_xid("127.0.0.1:8091:99", echo()).await,
        "127.0.0.1:8091:99"
    );
}
