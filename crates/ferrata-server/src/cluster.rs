//! Nodes sharing one database: each node holds a lease on its XID prefix in
//! `distributed_lock`, renewed in the background. When a node's lease lapses another node
//! adopts its transactions and drives them; the node takes them back when it returns. Who
//! drives which prefix is published in [`Drivers`] for forwarding requests there.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use ferrata_store::{LeaseOutcome, SessionStore};

use crate::engine::{CoreCommand, EngineHandle, now_ms};

/// Holder prefix of the node that began the transactions of a lease.
const OWNER: &str = "o:";
/// Holder prefix of a node driving another node's transactions.
const ADOPTER: &str = "a:";

/// A node on a shared store: its XID prefix, this process's instance and the lease length.
#[derive(Debug, Clone)]
pub struct Node {
    pub prefix: String,
    /// Random per process: a restarted node is a new instance.
    pub instance: String,
    pub lease_ms: i64,
}

impl Node {
    pub fn new(prefix: String, lease_ms: i64) -> Node {
        Node {
            prefix,
            instance: instance_id(),
            lease_ms,
        }
    }

    fn owner(&self) -> String {
        format!("{OWNER}{}", self.instance)
    }

    /// Names this node (not its instance): other nodes find its address from it.
    fn adopter(&self) -> String {
        format!("{ADOPTER}{}", prefix_hash(&self.prefix))
    }

    /// How often leases are renewed and the store scanned for lapsed nodes.
    fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease_ms / 3).unwrap_or(1).max(1))
    }
}

/// The `distributed_lock` key of the lease on the transactions with XID prefix `prefix`:
/// `N` and a stable 64-bit FNV-1a hash (the column holds 20 characters, a prefix may not fit).
pub fn lease_name(prefix: &str) -> String {
    format!("N{}", prefix_hash(prefix))
}

fn prefix_hash(prefix: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A handle on a database store kept by a long-lived part of the server (forwarding checks, the
/// admin API's cluster view). A database store runs its own runtime, which must not be dropped
/// on an async thread (tokio panics), and whoever drops the last owner may be one: the store is
/// dropped on a thread of its own.
pub struct DetachedStore(Option<Box<dyn SessionStore>>);

impl DetachedStore {
    pub fn new(store: Box<dyn SessionStore>) -> DetachedStore {
        DetachedStore(Some(store))
    }

    pub fn get(&self) -> &dyn SessionStore {
        // Only `drop` takes the store out.
        self.0.as_deref().expect("the store is there until dropped")
    }
}

impl Drop for DetachedStore {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            let _ = std::thread::Builder::new()
                .name("ferrata-store-drop".into())
                .spawn(move || drop(store));
        }
    }
}

impl std::fmt::Debug for DetachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedStore").finish_non_exhaustive()
    }
}

/// Where the transactions of one XID prefix are driven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// By this node: its own, or adopted.
    Here,
    /// By the node at this `host:port`.
    At(String),
}

/// Which node drives each XID prefix, as of the lease keeper's last scan.
#[derive(Debug)]
pub struct Drivers {
    own: String,
    others: RwLock<HashMap<String, Driver>>,
    /// Every other node announced in the store, live or not.
    peers: RwLock<Vec<String>>,
}

impl Drivers {
    /// Drivers as known at start: this node's prefix and the other nodes announced.
    pub fn new(own: String, peers: Vec<String>) -> Drivers {
        Drivers {
            own,
            others: RwLock::new(HashMap::new()),
            peers: RwLock::new(peers),
        }
    }

    /// The `host:port` of every other node announced in the store.
    pub fn peers(&self) -> Vec<String> {
        self.peers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The driver of `prefix`: this node for its own; the node the last scan found for
    /// another; otherwise the node the prefix names (a node that began transactions since).
    pub fn of(&self, prefix: &str) -> Driver {
        if prefix == self.own {
            return Driver::Here;
        }
        let others = self.others.read().unwrap_or_else(|p| p.into_inner());
        others
            .get(prefix)
            .cloned()
            .unwrap_or_else(|| Driver::At(prefix.to_owned()))
    }

    fn replace(&self, others: HashMap<String, Driver>, peers: Vec<String>) {
        *self.others.write().unwrap_or_else(|p| p.into_inner()) = others;
        *self.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }
}

/// 16 hex digits, different for every process (std's hasher keys are random per process).
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_i64(now_ms());
    format!("{:016x}", hasher.finish())
}

fn sleep_ms(ms: i64) {
    std::thread::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
}

/// Takes this node's lease before it recovers its transactions: at once when it is free or
/// lapsed; from a node that adopted them while this one was away, after waiting until that
/// node has let go; after a previous instance's lease lapses. Another live instance with the
/// same prefix is an error: two nodes would hand out the same XIDs' decisions.
pub fn claim(store: &mut dyn SessionStore, node: &Node) -> anyhow::Result<()> {
    let name = lease_name(&node.prefix);
    let owner = node.owner();
    let give_up_at = now_ms().saturating_add(node.lease_ms.saturating_mul(3));
    loop {
        let now = now_ms();
        let cannot = || format!("cannot take this node's lease {name} in the session store");
        match store
            .try_lease(&name, &owner, node.lease_ms, now)
            .with_context(cannot)?
        {
            LeaseOutcome::Held { .. } => {
                store
                    .announce_node(&node.prefix)
                    .context("cannot announce this node in the session store")?;
                return Ok(());
            }
            LeaseOutcome::Taken(lease) if lease.holder.starts_with(ADOPTER) => {
                let taken = store
                    .take_lease_from(&name, &owner, &lease.holder, node.lease_ms, now)
                    .with_context(cannot)?;
                if !matches!(taken, LeaseOutcome::Held { .. }) {
                    continue;
                }
                // The adopter renews a third into its lease and lets go when it finds the
                // lease gone; by the end of the lease it last renewed, it has.
                tracing::info!(
                    adopter = %lease.holder,
                    prefix = %node.prefix,
                    "taking back this node's transactions from the node that drove them; \
                     waiting for it to let go"
                );
                let release_at = lease.expires_at_ms.saturating_add(node.lease_ms / 2);
                while now_ms() < release_at {
                    sleep_ms((release_at - now_ms()).min(node.lease_ms / 3));
                    let renewed = store
                        .try_lease(&name, &owner, node.lease_ms, now_ms())
                        .with_context(cannot)?;
                    if !matches!(renewed, LeaseOutcome::Held { .. }) {
                        break;
                    }
                }
            }
            LeaseOutcome::Taken(lease) => {
                if now > give_up_at {
                    bail!(
                        "another ferrata-server ({}) holds the lease of XID prefix {} and keeps \
                         renewing it: two live nodes must not share an address; give each node \
                         its own server.advertise_host and port",
                        lease.holder,
                        node.prefix
                    );
                }
                // Most likely this node's previous instance, killed: its lease lapses soon.
                tracing::info!(
                    holder = %lease.holder,
                    expires_in_ms = lease.expires_at_ms - now,
                    "this node's lease is held by an earlier instance; waiting for it to lapse"
                );
                sleep_ms(
                    (lease.expires_at_ms - now + 1)
                        .clamp(1, node.lease_ms / 3)
                        .max(1),
                );
            }
        }
    }
}

/// The background task that renews this node's lease and adopts lapsed nodes' transactions.
#[derive(Debug)]
pub struct LeaseKeeper {
    stop: Sender<()>,
    thread: std::thread::JoinHandle<Kept>,
    node: Node,
    /// Cleared on stop: the watchdog then ends quietly.
    watching: Arc<AtomicBool>,
}

/// The keeper's view of this node's own lease, shared with the watchdog.
#[derive(Debug)]
struct OwnLease {
    expires_at_ms: AtomicI64,
}

/// What the keeper holds when it stops.
struct Kept {
    store: Box<dyn SessionStore>,
    adopted: BTreeSet<String>,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("adopted", &self.adopted)
            .finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Starts renewing the lease [`claim`] took. `on_fatal` runs when this node can no longer
    /// be sure it holds its lease: the server must then stop, since another node takes over.
    /// A watchdog calls it when the lease runs out unrenewed, even while a database call hangs.
    ///
    /// The keeper's first pass runs at once; the receiver hears when it is over (or that the
    /// keeper stopped). By then the transactions no live node drives (a lapsed node's, or those
    /// a seata-server on the same database left behind) are queued to the engine ahead of any
    /// request served after it, so a TM finishing one of them is never sent elsewhere.
    pub fn start(
        store: Box<dyn SessionStore>,
        node: Node,
        engine: EngineHandle,
        drivers: Arc<Drivers>,
        on_fatal: Arc<dyn Fn(String) + Send + Sync>,
    ) -> std::io::Result<(LeaseKeeper, tokio::sync::oneshot::Receiver<()>)> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let (first_pass_done, first_pass) = tokio::sync::oneshot::channel();
        // claim() took or renewed it at most this long ago.
        let own = Arc::new(OwnLease {
            expires_at_ms: AtomicI64::new(now_ms().saturating_add(node.lease_ms / 2)),
        });
        let watching = Arc::new(AtomicBool::new(true));
        {
            let (own, watching, on_fatal) = (own.clone(), watching.clone(), on_fatal.clone());
            let lease_ms = node.lease_ms;
            std::thread::Builder::new()
                .name("ferrata-lease-watch".into())
                .spawn(move || watch(&own, &watching, lease_ms, on_fatal.as_ref()))?;
        }
        let keeper_node = node.clone();
        let thread = std::thread::Builder::new()
            .name("ferrata-leases".into())
            .spawn(move || {
                let context = Keeping {
                    node: &keeper_node,
                    own: &own,
                    engine: &engine,
                    drivers: &drivers,
                    on_fatal: on_fatal.as_ref(),
                };
                keep(store, context, &stopped, first_pass_done)
            })?;
        let keeper = LeaseKeeper {
            stop,
            thread,
            node,
            watching,
        };
        Ok((keeper, first_pass))
    }

    /// Stops renewing and gives up every lease held, so that other nodes adopt what is left
    /// at once. Call once the engine has made everything durable.
    pub fn stop(self) {
        self.watching.store(false, Ordering::Release);
        let _ = self.stop.send(());
        let Ok(Kept { mut store, adopted }) = self.thread.join() else {
            tracing::warn!("the lease keeper panicked; its leases lapse on their own");
            return;
        };
        let owner = self.node.owner();
        let adopter = self.node.adopter();
        let releases = std::iter::once((self.node.prefix.as_str(), owner.as_str())).chain(
            adopted
                .iter()
                .map(|prefix| (prefix.as_str(), adopter.as_str())),
        );
        for (prefix, holder) in releases {
            if let Err(error) = store.release_lease(&lease_name(prefix), holder) {
                tracing::warn!(%error, prefix, "cannot release a lease; it lapses on its own");
            }
        }
    }
}

/// Stops the server once this node's lease runs out without a renewal: another node may take
/// its transactions over from then on.
fn watch(own: &OwnLease, watching: &AtomicBool, lease_ms: i64, on_fatal: &(dyn Fn(String) + Sync)) {
    let period = Duration::from_millis(u64::try_from(lease_ms / 20).unwrap_or(1).clamp(1, 100));
    while watching.load(Ordering::Acquire) {
        std::thread::sleep(period);
        if now_ms() >= own.expires_at_ms.load(Ordering::Acquire) && watching.load(Ordering::Acquire)
        {
            on_fatal(format!(
                "this node's lease ran out unrenewed (the database was unreachable or too slow \
                 for store.node_lease_ms = {lease_ms} ms); stopping, so that another node can \
                 take its transactions over"
            ));
            return;
        }
    }
}

/// What the keeper works with besides its store.
struct Keeping<'a> {
    node: &'a Node,
    own: &'a OwnLease,
    engine: &'a EngineHandle,
    drivers: &'a Drivers,
    on_fatal: &'a dyn Fn(String),
}

fn keep(
    mut store: Box<dyn SessionStore>,
    context: Keeping<'_>,
    stopped: &Receiver<()>,
    first_pass_done: tokio::sync::oneshot::Sender<()>,
) -> Kept {
    let Keeping {
        node,
        own,
        engine,
        drivers,
        on_fatal,
    } = context;
    let own_name = lease_name(&node.prefix);
    let (owner, adopter) = (node.owner(), node.adopter());
    // Adopted prefix → when its lease, as last renewed, runs out.
    let mut adopted: BTreeMap<String, i64> = BTreeMap::new();
    let mut first_pass_done = Some(first_pass_done);
    let mut first = true;
    loop {
        // The first pass runs at once; then one per interval until asked to stop (or the
        // server is gone).
        if !first {
            if let Some(done) = first_pass_done.take() {
                let _ = done.send(());
            }
            if !matches!(
                stopped.recv_timeout(node.interval()),
                Err(RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
        first = false;
        let now = now_ms();
        match store.try_lease(&own_name, &owner, node.lease_ms, now) {
            Ok(LeaseOutcome::Held { expires_at_ms }) => {
                own.expires_at_ms.store(expires_at_ms, Ordering::Release);
            }
            Ok(LeaseOutcome::Taken(lease)) => {
                on_fatal(format!(
                    "node {} took over this node's transactions after its lease lapsed; \
                     stopping, so that one node drives them (restart to take them back)",
                    lease.holder
                ));
                break;
            }
            // The watchdog stops the server if this goes on until the lease runs out.
            Err(error) => tracing::warn!(%error, "cannot renew this node's lease; retrying"),
        }
        let mut lost = Vec::new();
        for (prefix, expires_at) in adopted.iter_mut() {
            match store.try_lease(&lease_name(prefix), &adopter, node.lease_ms, now) {
                Ok(LeaseOutcome::Held { expires_at_ms }) => *expires_at = expires_at_ms,
                Ok(LeaseOutcome::Taken(lease)) => {
                    tracing::info!(%prefix, holder = %lease.holder, "a node took its transactions back");
                    lost.push(prefix.clone());
                }
                Err(error) if now >= *expires_at => {
                    tracing::warn!(%error, %prefix, "cannot renew the lease of adopted transactions; letting them go");
                    lost.push(prefix.clone());
                }
                Err(error) => {
                    tracing::warn!(%error, %prefix, "cannot renew an adopted lease; retrying")
                }
            }
        }
        for prefix in lost {
            adopted.remove(&prefix);
            engine.notify(CoreCommand::Disown(prefix));
        }
        let prefixes = match store.xid_prefixes() {
            Ok(prefixes) => prefixes,
            Err(error) => {
                tracing::warn!(%error, "cannot list the nodes of stored transactions");
                continue;
            }
        };
        // Ended everything it adopted from a node: give that lease up.
        let finished: Vec<String> = adopted
            .keys()
            .filter(|prefix| prefixes.binary_search(prefix).is_err())
            .cloned()
            .collect();
        for prefix in finished {
            adopted.remove(&prefix);
            if let Err(error) = store.release_lease(&lease_name(&prefix), &adopter) {
                tracing::warn!(%error, %prefix, "cannot release an adopted lease; it lapses on its own");
            }
        }
        // Adopters are named by the hash of their prefix: find their addresses.
        let nodes: HashMap<String, String> = match store.nodes() {
            Ok(nodes) => nodes
                .into_iter()
                .map(|prefix| (format!("{ADOPTER}{}", prefix_hash(&prefix)), prefix))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list the nodes of the store");
                HashMap::new()
            }
        };
        let mut driven = HashMap::new();
        for prefix in prefixes {
            if prefix == node.prefix {
                continue;
            }
            if adopted.contains_key(&prefix) {
                driven.insert(prefix, Driver::Here);
                continue;
            }
            let name = lease_name(&prefix);
            let expires_at_ms = match store.try_lease(&name, &adopter, node.lease_ms, now_ms()) {
                Ok(LeaseOutcome::Held { expires_at_ms }) => expires_at_ms,
                Ok(LeaseOutcome::Taken(lease)) => {
                    if lease.holder.starts_with(ADOPTER) {
                        if let Some(at) = nodes.get(&lease.holder) {
                            driven.insert(prefix, Driver::At(at.clone()));
                        }
                    } else {
                        driven.insert(prefix.clone(), Driver::At(prefix));
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, %prefix, "cannot take a lapsed node's lease");
                    continue;
                }
            };
            match store.transactions_of_node(&prefix) {
                Ok(transactions) => {
                    tracing::warn!(
                        %prefix,
                        transactions = transactions.len(),
                        "node's lease lapsed: this node takes its transactions over"
                    );
                    adopted.insert(prefix.clone(), expires_at_ms);
                    driven.insert(prefix, Driver::Here);
                    engine.notify(CoreCommand::Adopt(transactions));
                }
                Err(error) => {
                    tracing::warn!(%error, %prefix, "cannot read a lapsed node's transactions");
                    let _ = store.release_lease(&name, &adopter);
                }
            }
        }
        let mut peers: Vec<String> = nodes
            .into_values()
            .filter(|at| *at != node.prefix)
            .collect();
        peers.sort();
        drivers.replace(driven, peers);
    }
    Kept {
        store,
        adopted: adopted.into_keys().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_fit_distributed_lock_and_are_stable() {
        let name = lease_name("10.0.0.1:8091");
        assert_eq!(name.len(), 17);
        assert_eq!(name, lease_name("10.0.0.1:8091"));
        assert_ne!(name, lease_name("10.0.0.2:8091"));
        // FNV-1a of the empty string: the offset basis.
        assert_eq!(lease_name(""), "Ncbf29ce484222325");
    }

    #[test]
    fn holders_fit_distributed_lock() {
        let node = Node::new("10.0.0.1:8091".into(), 10_000);
        assert_eq!(node.owner().len(), 18);
        assert_eq!(node.adopter().len(), 18);
        assert_eq!(node.adopter(), Node::new(node.prefix.clone(), 1).adopter());
        assert_ne!(node.instance, Node::new("x".into(), 1).instance);
    }
}
