//! A recording TCP proxy for capturing real Seata traffic as golden test vectors.
//!
//! ```text
//! cargo run -p ferrata-proto --example capture_proxy -- [--conn-ids] LISTEN UPSTREAM OUTPUT
//! ```
//!
//! Listens on `LISTEN` (e.g. `127.0.0.1:18191`), and for every accepted connection opens one to
//! `UPSTREAM` (e.g. the reference TC on `127.0.0.1:18091`) and forwards bytes both ways
//! unchanged. A copy of each direction's byte stream is run through
//! [`ferrata_proto::decode_frame`]; every whole frame is appended to `OUTPUT` as one line
//!
//! ```text
//! <c2s|s2c> <hex of the full frame, header included>
//! ```
//!
//! With `--conn-ids` each frame line gets a trailing ` #conn=<n>` (connections numbered from 1
//! in accept order), and the opening and closing of connections are logged as `#` comment
//! lines, so that frames of interleaved connections can be told apart.
//!
//! If a direction's stream stops being decodable (bad magic, oversized frame, ...), a comment
//! line says so and that direction is forwarded without further recording. Both addresses must
//! be loopback addresses: this is a test tool, not a network service. It runs until killed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::BytesMut;
use ferrata_proto::{DEFAULT_MAX_FRAME_LEN, decode_frame};

/// Where frame lines go; shared by every pump thread, one whole line per write.
#[derive(Debug, Clone)]
struct Recorder {
    out: Arc<Mutex<File>>,
    conn_ids: bool,
}

impl Recorder {
    fn line(&self, text: &str) {
        let mut out = match self.out.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A failed write loses one line of the capture but must not stop the forwarding.
        if let Err(e) = out.write_all(format!("{text}\n").as_bytes()) {
            eprintln!("capture_proxy: cannot write the capture: {e}");
        }
    }

    fn frame(&self, direction: &str, conn: u64, raw: &[u8]) {
        let mut text = String::with_capacity(raw.len() * 2 + 24);
        text.push_str(direction);
        text.push(' ');
        for b in raw {
            text.push_str(&format!("{b:02x}"));
        }
        if self.conn_ids {
            text.push_str(&format!(" #conn={conn}"));
        }
        self.line(&text);
    }

    fn comment(&self, text: &str) {
        if self.conn_ids {
            self.line(&format!("# {text}"));
        }
    }
}

/// Copies `src` to `dst` until EOF, recording every whole frame seen on the way.
fn pump(mut src: TcpStream, mut dst: TcpStream, direction: &'static str, conn: u64, rec: Recorder) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut pending = BytesMut::new();
    let mut recording = true;
    loop {
        let n = match src.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let Some(data) = chunk.get(..n) else { break };
        // Record before forwarding, so that a request's line always precedes the lines of
        // the answers it causes, whichever pump thread writes them.
        if recording {
            pending.extend_from_slice(data);
        }
        while recording {
            let before = pending.clone();
            match decode_frame(&mut pending, DEFAULT_MAX_FRAME_LEN) {
                Ok(Some(_)) => {
                    let used = before.len() - pending.len();
                    rec.frame(direction, conn, before.get(..used).unwrap_or(&[]));
                }
                Ok(None) => break,
                Err(e) => {
                    // Written even without --conn-ids: a silent gap would be misleading.
                    rec.line(&format!(
                        "# conn={conn} {direction}: stream not decodable ({e}); \
                         forwarding without recording"
                    ));
                    recording = false;
                    pending.clear();
                }
            }
        }
        if dst.write_all(data).is_err() {
            break;
        }
    }
    if !pending.is_empty() && recording {
        rec.comment(&format!(
            "conn={conn} {direction}: {} trailing bytes at EOF",
            pending.len()
        ));
    }
    // Pass the half-close on; the other pump ends when its side closes.
    let _ = dst.shutdown(Shutdown::Write);
    let _ = src.shutdown(Shutdown::Read);
}

fn serve(client: TcpStream, upstream: SocketAddr, conn: u64, rec: Recorder) -> io::Result<()> {
    let peer = client.peer_addr()?;
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    rec.comment(&format!("conn={conn} open from {peer}"));
    let (c_read, s_write) = (client.try_clone()?, server.try_clone()?);
    let up_rec = rec.clone();
    let up = thread::spawn(move || pump(c_read, s_write, "c2s", conn, up_rec));
    pump(server, client, "s2c", conn, rec.clone());
    let _ = up.join();
    rec.comment(&format!("conn={conn} closed"));
    Ok(())
}

fn parse_loopback(what: &str, text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|e| format!("{what} {text:?} is not ip:port: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{what} {addr} is not a loopback address"));
    }
    Ok(addr)
}

fn run(args: &[String]) -> Result<(), String> {
    let conn_ids = args.iter().any(|a| a == "--conn-ids");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [listen, upstream, output] = positional.as_slice() else {
        return Err("usage: capture_proxy [--conn-ids] LISTEN UPSTREAM OUTPUT".to_owned());
    };
    let listen = parse_loopback("listen address", listen)?;
    let upstream = parse_loopback("upstream address", upstream)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(output.as_str())
        .map_err(|e| format!("cannot open {output}: {e}"))?;
    let rec = Recorder {
        out: Arc::new(Mutex::new(file)),
        conn_ids,
    };
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot bind {listen}: {e}"))?;
    eprintln!("capture_proxy: {listen} -> {upstream}, recording to {output}");
    let next_conn = AtomicU64::new(1);
    for client in listener.incoming() {
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                eprintln!("capture_proxy: accept failed: {e}");
                continue;
            }
        };
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let rec = rec.clone();
        thread::spawn(move || {
            if let Err(e) = serve(client, upstream, conn, rec) {
                eprintln!("capture_proxy: connection {conn}: {e}");
            }
        });
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture_proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
