//! Which connection serves which client: registrations (TM/RM, version, application), the
//! resource index used to route phase-2 requests (spec §11.6), and per-connection outboxes,
//! which are bounded: a client that does not read cannot grow the server's memory.

use crate::peers::PEER_APPLICATION_ID;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_proto::{BranchType, ClientVersion, CodecContext, Dialect};
use tokio::sync::mpsc::{self, OwnedPermit};

use crate::phase2::ConnPending;

pub type ConnId = u64;

/// A frame to write on a connection; encoded by the connection's writer task.
pub use ferrata_net::Outbound;

/// A cheap handle to a connection's bounded outbox and to the phase-2 requests awaiting its
/// answers.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    pub peer: SocketAddr,
    tx: mpsc::Sender<Outbound>,
    /// TC → RM requests sent on this connection and not yet answered (matched per connection).
    pub pending: Arc<ConnPending>,
}

impl ConnHandle {
    pub fn new(id: ConnId, peer: SocketAddr, tx: mpsc::Sender<Outbound>) -> ConnHandle {
        ConnHandle {
            id,
            peer,
            tx,
            pending: Arc::default(),
        }
    }

    /// Queues a frame, waiting for room in the outbox; false when the connection is gone.
    pub async fn send(&self, outbound: Outbound) -> bool {
        self.tx.send(outbound).await.is_ok()
    }

    /// Queues a frame only if there is room now; false when full or gone.
    pub fn try_send(&self, outbound: Outbound) -> bool {
        self.tx.try_send(outbound).is_ok()
    }

    /// A slot in the outbox if there is room now.
    pub fn try_reserve(&self) -> Result<OwnedPermit<Outbound>, mpsc::error::TrySendError<()>> {
        self.tx
            .clone()
            .try_reserve_owned()
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => mpsc::error::TrySendError::Full(()),
                mpsc::error::TrySendError::Closed(_) => mpsc::error::TrySendError::Closed(()),
            })
    }

    /// A slot in the outbox, waited for up to `timeout`; `None` when full for that long or gone.
    pub async fn reserve_within(&self, timeout: Duration) -> Option<OwnedPermit<Outbound>> {
        match tokio::time::timeout(timeout, self.tx.clone().reserve_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// A slot in the outbox, waited for as long as it takes; `None` when the connection is gone.
    pub async fn reserve(&self) -> Option<OwnedPermit<Outbound>> {
        self.tx.clone().reserve_owned().await.ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[derive(Debug)]
struct ConnEntry {
    handle: ConnHandle,
    application_id: String,
    /// `applicationId:ip:port`, as recorded on the branches this connection registers.
    client_id: String,
    ctx: CodecContext,
    resources: HashSet<String>,
}

/// A registered connection, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientView {
    pub application_id: String,
    pub client_id: String,
    /// `rm` when it serves resources, else `tm`.
    pub role: &'static str,
    pub version: String,
    pub address: String,
    pub resources: Vec<String>,
}

/// Why a registration was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "connection would serve more than {limit} resources (limits.max_resources_per_connection)"
    )]
    TooManyResources { limit: usize },
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

/// The IP of a client id `applicationId:ip:port` whose application id is known: the IP may
/// itself contain `:` (IPv6), so it is what lies between the application id and the last `:`.
fn client_ip(client_id: &str, application_id: &str) -> Option<IpAddr> {
    let rest = client_id.strip_prefix(application_id)?.strip_prefix(':')?;
    let (ip, _port) = rest.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    ip.parse().ok()
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing routing, so keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records (or updates) a connection's registration and the resources it serves; refuses
    /// (changing nothing) when the connection would serve more than `max_resources`.
    pub fn register(
        &self,
        handle: &ConnHandle,
        application_id: &str,
        client_id: &str,
        ctx: CodecContext,
        resources: Vec<String>,
        max_resources: usize,
    ) -> Result<(), RegisterError> {
        let mut inner = self.lock();
        let entry = inner.conns.entry(handle.id).or_insert_with(|| ConnEntry {
            handle: handle.clone(),
            application_id: application_id.to_owned(),
            client_id: client_id.to_owned(),
            ctx,
            resources: HashSet::new(),
        });
        let new = resources
            .iter()
            .filter(|r| !entry.resources.contains(*r))
            .collect::<HashSet<_>>()
            .len();
        if entry.resources.len() + new > max_resources {
            return Err(RegisterError::TooManyResources {
                limit: max_resources,
            });
        }
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
        Ok(())
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
    /// same application on the same IP, else the same application anywhere, else (AT, the
    /// Saga engine's request, and any request naming no client, such as a two-phase
    /// message's delivery) any connection serving the resource. Client ids are compared as recorded, never split on
    /// `:` blindly, so IPv6 clients (`app:::1:5000`) are found like IPv4 ones. Another node's
    /// link serves only the branches registered through it.
    pub fn pick(
        &self,
        resource_id: &str,
        client_id: &str,
        branch_type: BranchType,
    ) -> Option<(ConnHandle, CodecContext)> {
        let inner = self.lock();
        let ids = inner.by_resource.get(resource_id)?;
        let mut best: Option<(u8, &ConnEntry)> = None;
        let live = ids
            .iter()
            .filter_map(|id| inner.conns.get(id))
            .filter(|entry| !entry.handle.is_closed());
        for entry in live {
            if entry.application_id == PEER_APPLICATION_ID && entry.client_id != client_id {
                continue;
            }
            let same_app = client_id
                .strip_prefix(entry.application_id.as_str())
                .is_some_and(|rest| rest.starts_with(':'));
            let rank = if entry.client_id == client_id {
                0
            } else if same_app {
                if client_ip(client_id, &entry.application_id) == Some(entry.handle.peer.ip()) {
                    1
                } else {
                    2
                }
            } else if client_id.is_empty()
                || matches!(branch_type, BranchType::At | BranchType::Saga)
            {
                // AT: any RM of the database can delete undo logs or roll back. Saga: the
                // engine's request goes to whichever connection registered its resource. A
                // request naming no client (a two-phase message's delivery) likewise.
                3
            } else {
                continue;
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

    /// The phase-2 waiting lists of every registered connection (for the timeout sweep).
    pub fn pending_lists(&self) -> Vec<Arc<ConnPending>> {
        self.lock()
            .conns
            .values()
            .map(|entry| entry.handle.pending.clone())
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Every registered connection, ordered by application and client id.
    pub fn clients(&self) -> Vec<ClientView> {
        let mut clients: Vec<ClientView> = self
            .lock()
            .conns
            .values()
            .map(|entry| {
                let mut resources: Vec<String> = entry.resources.iter().cloned().collect();
                resources.sort_unstable();
                ClientView {
                    application_id: entry.application_id.clone(),
                    client_id: entry.client_id.clone(),
                    role: if resources.is_empty() { "tm" } else { "rm" },
                    version: entry.ctx.client_version.to_string(),
                    address: entry.handle.peer.to_string(),
                    resources,
                }
            })
            .collect();
        clients.sort_unstable_by(|a, b| {
            (&a.application_id, &a.client_id).cmp(&(&b.application_id, &b.client_id))
        });
        clients
    }

    /// Registered connections by role (`rm` when serving resources, else `tm`) and client
    /// version (the lower of a connection's TM and RM registrations).
    pub fn connections_by_role(&self) -> std::collections::BTreeMap<(&'static str, String), usize> {
        let mut counts = std::collections::BTreeMap::new();
        for entry in self.lock().conns.values() {
            let role = if entry.resources.is_empty() {
                "tm"
            } else {
                "rm"
            };
            *counts
                .entry((role, entry.ctx.client_version.to_string()))
                .or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: ConnId, peer: &str) -> (ConnHandle, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(8);
        (ConnHandle::new(id, peer.parse().expect("addr"), tx), rx)
    }

    /// Registers `h` for `app` with the client id the server records for it.
    fn register(registry: &Registry, h: &ConnHandle, app: &str) {
        let client_id = format!("{app}:{}:{}", h.peer.ip(), h.peer.port());
        registry
            .register(
                h,
                app,
                &client_id,
                CodecContext::default(),
                vec!["db".to_owned()],
                10,
            )
            .expect("within limits");
    }

    #[test]
    fn picks_exact_then_same_ip_then_same_app_then_any_for_at() {
        let registry = Registry::default();
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
            register(&registry, h, app);
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
        // The Saga engine's request names no client: any connection of the resource serves.
        assert_eq!(pick("", BranchType::Saga), Some(4));
        // So does a two-phase message's delivery (a TCC branch registered by the producer).
        assert_eq!(pick("", BranchType::Tcc), Some(4));
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
        let (first, _r1) = handle(1, "10.0.0.1:5001");
        let (second, _r2) = handle(2, "10.0.0.1:5002");
        let (exact, _r3) = handle(3, "10.0.0.1:5003");
        for h in [&first, &second, &exact] {
            register(&registry, h, "a");
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

    #[test]
    fn ipv6_clients_are_found_by_their_exact_id_and_their_address() {
        let registry = Registry::default();
        let (v6, _r1) = handle(1, "[::1]:5000");
        let (v6_other_port, _r2) = handle(2, "[::1]:5001");
        // An application id containing `:` must not confuse the address parsing.
        let (colon_app, _r3) = handle(3, "[fe80::2]:7000");
        register(&registry, &v6_other_port, "a");
        register(&registry, &v6, "a");
        register(&registry, &colon_app, "svc:eu");
        let pick = |client: &str| {
            registry
                .pick("db", client, BranchType::Tcc)
                .map(|(h, _)| h.id)
        };
        assert_eq!(pick("a:::1:5000"), Some(1));
        assert_eq!(
            pick("a:::1:6000"),
            Some(2),
            "same IPv6 address, first registered"
        );
        assert_eq!(pick("svc:eu:fe80::2:7000"), Some(3));
        assert_eq!(client_ip("a:::1:5000", "a"), "::1".parse().ok());
        assert_eq!(client_ip("a:[::1]:5000", "a"), "::1".parse().ok());
        assert_eq!(client_ip("a:10.0.0.1:5000", "a"), "10.0.0.1".parse().ok());
    }

    #[test]
    fn registrations_beyond_the_resource_limit_are_refused_without_changes() {
        let registry = Registry::default();
        let (h, _rx) = handle(1, "10.0.0.1:5000");
        let resources = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let ctx = CodecContext::default();
        registry
            .register(&h, "a", "a:10.0.0.1:5000", ctx, resources(&["r1", "r2"]), 3)
            .expect("two of three");
        assert_eq!(
            registry.register(&h, "a", "a:10.0.0.1:5000", ctx, resources(&["r3", "r4"]), 3),
            Err(RegisterError::TooManyResources { limit: 3 })
        );
        assert!(
            registry
                .pick("r3", "a:10.0.0.1:5000", BranchType::Tcc)
                .is_none()
        );
        // Re-registering known resources does not count twice.
        registry
            .register(
                &h,
                "a",
                "a:10.0.0.1:5000",
                ctx,
                resources(&["r1", "r2", "r3"]),
                3,
            )
            .expect("exactly three");
    }
}
