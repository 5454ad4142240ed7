//! Which connection serves which client: registrations (TM/RM, version, application), the
//! resource index used to route phase-2 requests (spec §11.6), and per-connection outboxes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use ferrata_proto::{BranchType, ClientVersion, CodecContext, Dialect, Frame, Message, MsgType};
use tokio::sync::mpsc::UnboundedSender;

pub type ConnId = u64;

/// A frame to write on a connection; encoded by the connection's writer task.
#[derive(Debug)]
pub enum Outbound {
    Message {
        msg_type: MsgType,
        request_id: i32,
        codec: u8,
        compressor: u8,
        message: Message,
        ctx: CodecContext,
    },
    Raw(Frame),
    Close,
}

/// A cheap handle to a connection's outbox.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    pub peer: SocketAddr,
    tx: UnboundedSender<Outbound>,
}

impl ConnHandle {
    pub fn new(id: ConnId, peer: SocketAddr, tx: UnboundedSender<Outbound>) -> ConnHandle {
        ConnHandle { id, peer, tx }
    }

    /// Queues a frame; false when the connection is gone.
    pub fn send(&self, outbound: Outbound) -> bool {
        self.tx.send(outbound).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[derive(Debug)]
struct ConnEntry {
    handle: ConnHandle,
    application_id: String,
    ctx: CodecContext,
    resources: HashSet<String>,
}

#[derive(Debug, Default)]
struct Inner {
    conns: HashMap<ConnId, ConnEntry>,
    by_resource: HashMap<String, Vec<ConnId>>,
}

/// Registered connections, shared by connection tasks and the phase-2 sender.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

/// Splits `applicationId:ip:port` (the application id may itself contain `:`).
fn split_client_id(client_id: &str) -> Option<(&str, &str, u16)> {
    let (rest, port) = client_id.rsplit_once(':')?;
    let (application_id, ip) = rest.rsplit_once(':')?;
    Some((application_id, ip, port.parse().ok()?))
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing routing, so keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records (or updates) a connection's registration and the resources it serves.
    pub fn register(
        &self,
        handle: &ConnHandle,
        application_id: &str,
        ctx: CodecContext,
        resources: impl IntoIterator<Item = String>,
    ) {
        let mut inner = self.lock();
        let entry = inner.conns.entry(handle.id).or_insert_with(|| ConnEntry {
            handle: handle.clone(),
            application_id: application_id.to_owned(),
            ctx,
            resources: HashSet::new(),
        });
        entry.ctx = ctx;
        let added: Vec<String> = resources
            .into_iter()
            .filter(|r| entry.resources.insert(r.clone()))
            .collect();
        for resource in added {
            inner
                .by_resource
                .entry(resource)
                .or_default()
                .push(handle.id);
        }
    }

    pub fn unregister_resources(&self, id: ConnId, resources: &[String]) {
        let mut inner = self.lock();
        if let Some(entry) = inner.conns.get_mut(&id) {
            for resource in resources {
                entry.resources.remove(resource);
            }
        }
        for resource in resources {
            if let Some(ids) = inner.by_resource.get_mut(resource) {
                ids.retain(|c| *c != id);
            }
        }
    }

    pub fn remove(&self, id: ConnId) {
        let mut inner = self.lock();
        if let Some(entry) = inner.conns.remove(&id) {
            for resource in entry.resources {
                if let Some(ids) = inner.by_resource.get_mut(&resource) {
                    ids.retain(|c| *c != id);
                    if ids.is_empty() {
                        inner.by_resource.remove(&resource);
                    }
                }
            }
        }
    }

    /// The connection to deliver a phase-2 request on: the registering connection, else the
    /// same application on the same IP, else the same application anywhere, else (AT only)
    /// any connection serving the resource.
    pub fn pick(
        &self,
        resource_id: &str,
        client_id: &str,
        branch_type: BranchType,
    ) -> Option<(ConnHandle, CodecContext)> {
        let inner = self.lock();
        let ids = inner.by_resource.get(resource_id)?;
        // Parsed once: comparing addresses, not their text, keeps this scan (run for every
        // phase-2 request, under the registry lock) free of allocations.
        let wanted = split_client_id(client_id)
            .map(|(app, ip, port)| (app, ip.parse::<IpAddr>().ok(), port));
        let mut best: Option<(u8, &ConnEntry)> = None;
        let live = ids
            .iter()
            .filter_map(|id| inner.conns.get(id))
            .filter(|entry| !entry.handle.is_closed());
        for entry in live {
            let rank = match wanted {
                Some((app, ip, port)) if entry.application_id == app => {
                    let same_ip = ip == Some(entry.handle.peer.ip());
                    if same_ip && entry.handle.peer.port() == port {
                        0
                    } else if same_ip {
                        1
                    } else {
                        2
                    }
                }
                _ if branch_type == BranchType::At => 3,
                _ => continue,
            };
            // Strictly better only: among equals the first registered wins.
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, entry));
                if rank == 0 {
                    break;
                }
            }
        }
        best.map(|(_, entry)| (entry.handle.clone(), entry.ctx))
    }

    /// One live non-Go connection per resource, for undo-log cleanup requests.
    pub fn undo_log_targets(&self) -> Vec<(String, ConnHandle, CodecContext)> {
        let inner = self.lock();
        inner
            .by_resource
            .iter()
            .filter_map(|(resource, ids)| {
                ids.iter()
                    .filter_map(|id| inner.conns.get(id))
                    .find(|e| {
                        e.ctx.dialect == Dialect::Java
                            && e.ctx.client_version >= ClientVersion::V0_7_1
                    })
                    .map(|e| (resource.clone(), e.handle.clone(), e.ctx))
            })
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(
        id: ConnId,
        peer: &str,
    ) -> (ConnHandle, tokio::sync::mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (ConnHandle::new(id, peer.parse().expect("addr"), tx), rx)
    }

    #[test]
    fn picks_exact_then_same_ip_then_same_app_then_any_for_at() {
        let registry = Registry::default();
        let ctx = CodecContext::default();
        let (exact, _r1) = handle(1, "10.0.0.1:5000");
        let (same_ip, _r2) = handle(2, "10.0.0.1:5001");
        let (other_ip, _r3) = handle(3, "10.0.0.2:5000");
        let (other_app, _r4) = handle(4, "10.0.0.3:5000");
        for (h, app) in [
            (&exact, "a"),
            (&same_ip, "a"),
            (&other_ip, "a"),
            (&other_app, "b"),
        ] {
            registry.register(h, app, ctx, ["db".to_owned()]);
        }
        let pick = |client: &str, t| registry.pick("db", client, t).map(|(h, _)| h.id);
        assert_eq!(pick("a:10.0.0.1:5000", BranchType::Tcc), Some(1));
        registry.remove(1);
        assert_eq!(pick("a:10.0.0.1:5000", BranchType::Tcc), Some(2));
        registry.remove(2);
        assert_eq!(pick("a:10.0.0.1:5000", BranchType::Tcc), Some(3));
        registry.remove(3);
        assert_eq!(pick("a:10.0.0.1:5000", BranchType::Tcc), None);
        assert_eq!(pick("a:10.0.0.1:5000", BranchType::At), Some(4));
        assert_eq!(
            registry
                .pick("other", "a:10.0.0.1:5000", BranchType::At)
                .map(|(h, _)| h.id),
            None
        );
    }

    #[test]
    fn equally_good_connections_are_picked_in_registration_order() {
        let registry = Registry::default();
        let ctx = CodecContext::default();
        let (first, _r1) = handle(1, "10.0.0.1:5001");
        let (second, _r2) = handle(2, "10.0.0.1:5002");
        let (exact, _r3) = handle(3, "10.0.0.1:5003");
        for h in [&first, &second, &exact] {
            registry.register(h, "a", ctx, ["db".to_owned()]);
        }
        let pick = |client: &str| {
            registry
                .pick("db", client, BranchType::Tcc)
                .map(|(h, _)| h.id)
        };
        // Same IP, no exact port: the earliest registration.
        assert_eq!(pick("a:10.0.0.1:6000"), Some(1));
        // The exact connection wins even when registered last.
        assert_eq!(pick("a:10.0.0.1:5003"), Some(3));
        // Another IP of the same application still gets an answer (rank 2).
        assert_eq!(pick("a:10.9.9.9:5003"), Some(1));
        assert_eq!(pick("b:10.0.0.1:5003"), None);
    }
}
