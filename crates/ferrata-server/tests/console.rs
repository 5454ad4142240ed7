//! The web console in a real browser (Debian's Chromium, headless, through chromedriver): an
//! operator signs in, sees the overview, finds a transaction whose rollback failed for good,
//! resolves its branch through the confirmation dialog, and the server really forgot it and
//! freed its row. Also visits the locks and clients pages. With `FERRATA_SCREENSHOTS_DIR` set,
//! a screenshot of each page is written there (docs/console/ holds the committed ones).

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use ferrata_server::admin::operators::hash_token;
use support::{Client, RESOURCE, ServerProcess, dirty_rollback};

const TOKEN: &str = "console-test-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(variable: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{} not found: this test needs a real browser. Install Debian's {package} (apt-get \
         install -y chromium chromium-driver; scripts/test does) or set {variable}",
        path.display()
    );
    path
}

fn start_driver() -> Driver {
    let binary = program(
        "FERRATA_CHROMEDRIVER",
        "/usr/bin/chromedriver",
        "chromium-driver",
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + WAIT;
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn open_browser(driver: &Driver) -> Browser {
    let chromium = program("FERRATA_CHROMIUM", "/usr/bin/chromium", "chromium");
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1360,900", "--lang=en-US"]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object literal")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

async fn screenshot(browser: &Browser, name: &str) {
    let Some(dir) = std::env::var_os("FERRATA_SCREENSHOTS_DIR") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).expect("write screenshot");
}

async fn text_of(browser: &Browser, css: &str) -> String {
    // The overview redraws itself every 2 s: an element found just before may be replaced.
    let deadline = Instant::now() + WAIT;
    loop {
        match find(browser, css).await.text().await {
            Ok(text) => return text,
            Err(error) if is_stale(&error) && Instant::now() < deadline => continue,
            Err(error) => panic!("text of {css}: {error}"),
        }
    }
}

fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    matches!(error, fantoccini::error::CmdError::Standard(e)
        if e.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

/// The element at `css`, waited for; a failure shows what the page holds instead.
async fn find(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(error) => {
            let page = browser.source().await.unwrap_or_default();
            let url = browser
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            panic!("{css} not found ({error}) at {url}; the page holds:\n{page}")
        }
    }
}

/// Waits until the element at `css` shows `expected`.
async fn shows(browser: &Browser, css: &str, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = text_of(browser, css).await;
        if text == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css} shows {text:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(browser: &Browser, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match find(browser, css).await.click().await {
            Ok(()) => return,
            Err(error) if is_stale(&error) && Instant::now() < deadline => continue,
            Err(error) => panic!("click {css}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resolves_a_failed_rollback_in_the_browser() {
    let driver = start_driver();
    let dir = tempfile::tempdir().expect("tempdir");
    let (pictures, picture_requests) = serve_pictures().await;
    let config = format!(
        "[admin]\nsaga_pictures = \"http://{pictures}/saga/\"\n\n\
         [[admin.tokens]]\nname = \"operator\"\nsha256 = \"{}\"\n",
        hash_token(TOKEN)
    );
    let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let server = ServerProcess::start_with_config(dir.path(), listen, &config).expect("server");
    let console = format!("http://{}/console/", server.admin_addr());

    let tm = std::sync::Arc::new(Client::connect(server.addr).await.expect("tm"));
    tm.register_tm("shop").await.expect("tm registers");
    let rm = Client::connect(server.addr).await.expect("rm");
    rm.register_rm("shop", RESOURCE)
        .await
        .expect("rm registers");
    for n in 0..20 {
        let xid = tm.begin(60_000).await.expect("begin");
        rm.register_branch(&xid, &format!("orders:{n}"))
            .await
            .expect("register")
            .expect("free");
        tm.commit(&xid).await.expect("commit");
    }
    // Left open by its TM, holding two rows.
    let open = tm.begin(600_000).await.expect("begin");
    rm.register_branch(&open, "orders:100,101")
        .await
        .expect("register")
        .expect("free");
    let (xid, branch_id, _dirty_rm) = dirty_rollback(&server, &tm, "stock:7").await;

    let browser = open_browser(&driver).await;
    browser.goto(&console).await.expect("open the console");
    let token = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in form");
    screenshot(&browser, "login").await;
    token.send_keys(TOKEN).await.expect("type the token");
    click(&browser, "#login").await;
    shows(&browser, "#who", "signed in as operator").await;
    shows(&browser, "#stat-active", "1").await;
    shows(&browser, "#stat-failed", "1").await;
    // Some load while the overview samples it, so that its charts have something to show.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (tm, stop) = (tm.clone(), stop.clone());
        tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let xid = tm.begin(60_000).await.expect("begin");
                if done % 4 == 3 {
                    tm.rollback(&xid).await.expect("rollback");
                } else {
                    tm.commit(&xid).await.expect("commit");
                }
                done += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done
        })
    };
    // Enough for a few 2-second samples on a fast machine; bounded for a slow one.
    let deadline = Instant::now() + 3 * WAIT;
    while text_of(&browser, "#stat-begun")
        .await
        .parse::<u32>()
        .unwrap_or(0)
        < 700
    {
        assert!(
            Instant::now() < deadline,
            "the overview does not count the load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    screenshot(&browser, "overview").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.await.expect("load") > 0);

    click(&browser, "nav a[data-page=transactions]").await;
    let status = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#status"))
        .await
        .expect("the status filter");
    status
        .select_by_value("RollbackFailed")
        .await
        .expect("choose RollbackFailed");
    click(&browser, "#apply").await;
    shows(&browser, "#tx-total", "1–1 of 1").await;
    screenshot(&browser, "transactions").await;
    shows(&browser, "#tx-rows a.tx-link", &xid).await;
    click(&browser, "#tx-rows a.tx-link").await;
    shows(&browser, "#tx-status", "RollbackFailed").await;
    let timeline = text_of(&browser, "#timeline").await;
    assert!(
        timeline.contains("PhaseTwoRollbackFailedUnretryable"),
        "{timeline}"
    );
    screenshot(&browser, "transaction").await;

    // Resolve the branch: a confirmation first; cancelling changes nothing.
    let resolve = format!("button.resolve[data-branch='{branch_id}']");
    click(&browser, &resolve).await;
    click(&browser, "#confirm-cancel").await;
    shows(&browser, "#tx-status", "RollbackFailed").await;
    click(&browser, &resolve).await;
    screenshot(&browser, "confirm").await;
    click(&browser, "#confirm-ok").await;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#tx-gone"))
        .await
        .expect("the transaction is gone from the page");

    // The server forgot the transaction and freed its row.
    let other = tm.begin(600_000).await.expect("begin");
    assert!(
        rm.lockable(&other, "stock:7").await,
        "the resolved branch's row is free"
    );
    let gone = ferrata_testkit::http(
        server.admin_addr(),
        "GET",
        &format!("/api/v1/transactions/{xid}"),
        Some(TOKEN),
        None,
    )
    .await
    .expect("read");
    assert_eq!(gone.status, 404, "{}", gone.body);
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("ferrata::audit")
            && l.contains("operator=operator")
            && l.contains("resolve-branch")),
        "the action is in the audit log:\n{log}"
    );

    click(&browser, "nav a[data-page=locks]").await;
    shows(&browser, "#lock-total", "2 of 2 rows").await;
    screenshot(&browser, "locks").await;
    click(&browser, "nav a[data-page=clients]").await;
    let clients = text_of(&browser, "#client-rows").await;
    assert!(
        clients.contains("warehouse") && clients.contains("shop"),
        "{clients}"
    );
    screenshot(&browser, "clients").await;

    // A saga's page shows its path, drawn by the engine at admin.saga_pictures (a stand-in
    // here), and the console's content security policy lets the picture load.
    let saga = tm
        .begin_named(600_000, "$Saga_purchase")
        .await
        .expect("begin");
    browser
        .goto(&format!("{console}#/tx/{saga}"))
        .await
        .expect("open the saga");
    let picture = find(&browser, "#saga-picture").await;
    let src = picture.attr("src").await.expect("src").unwrap_or_default();
    assert_eq!(
        src,
        format!(
            "http://{pictures}/saga/instances/{}.svg",
            saga.replace(':', "%3A")
        )
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let width = browser
            .execute(
                "return document.getElementById('saga-picture').naturalWidth",
                vec![],
            )
            .await
            .expect("read the picture's width");
        if width.as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the saga picture did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        picture_requests
            .lock()
            .expect("requests")
            .iter()
            .any(|path| path.starts_with("/saga/instances/")),
        "the browser asked the engine for the picture"
    );
    browser.close().await.expect("close the browser");
}

/// A stand-in for a saga engine's picture server: any GET gets a small SVG; the paths asked
/// for are recorded.
async fn serve_pictures() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if let Some(path) = head.split_whitespace().nth(1) {
                    seen.lock().expect("requests").push(path.to_owned());
                }
                let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="green"/></svg>"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{svg}",
                    svg.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, requests)
}
