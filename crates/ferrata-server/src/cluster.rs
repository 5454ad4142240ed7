//! Nodes sharing one database: each node holds a lease on its XID prefix in
//! `distributed_lock`, renewed in the background. When a node's lease lapses another node
//! adopts its transactions and drives them; the node takes them back when it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
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

    fn adopter(&self) -> String {
        format!("{ADOPTER}{}", self.instance)
    }

    /// How often leases are renewed and the store scanned for lapsed nodes.
    fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease_ms / 3).unwrap_or(1).max(1))
    }
}

/// The `distributed_lock` key of the lease on the transactions with XID prefix `prefix`:
/// `N` and a stable 64-bit FNV-1a hash (the column holds 20 characters, a prefix may not fit).
pub fn lease_name(prefix: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("N{hash:016x}")
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
            LeaseOutcome::Held { .. } => return Ok(()),
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
    ///
    /// The keeper's first pass runs at once; the receiver hears when it is over. By then the
    /// transactions of nodes without a live lease (a lapsed node's, or those a seata-server on
    /// the same database left behind) are queued to the engine ahead of any client request
    /// served after it, so a TM that finishes one of them is never told it belongs elsewhere.
    pub fn start(
        store: Box<dyn SessionStore>,
        node: Node,
        engine: EngineHandle,
        on_fatal: Box<dyn Fn(String) + Send>,
    ) -> std::io::Result<(LeaseKeeper, tokio::sync::oneshot::Receiver<()>)> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let (first_pass_done, first_pass) = tokio::sync::oneshot::channel();
        let keeper_node = node.clone();
        let thread = std::thread::Builder::new()
            .name("ferrata-leases".into())
            .spawn(move || {
                keep(
                    store,
                    &keeper_node,
                    &engine,
                    &stopped,
                    on_fatal.as_ref(),
                    first_pass_done,
                )
            })?;
        Ok((LeaseKeeper { stop, thread, node }, first_pass))
    }

    /// Stops renewing and gives up every lease held, so that other nodes adopt what is left
    /// at once. Call once the engine has made everything durable.
    pub fn stop(self) {
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

fn keep(
    mut store: Box<dyn SessionStore>,
    node: &Node,
    engine: &EngineHandle,
    stopped: &Receiver<()>,
    on_fatal: &dyn Fn(String),
    first_pass_done: tokio::sync::oneshot::Sender<()>,
) -> Kept {
    let mut tending = Tending {
        // Conservative: claim() renewed it at most this long ago.
        own_expires_at: now_ms().saturating_add(node.lease_ms / 2),
        adopted: BTreeMap::new(),
    };
    let mut first_pass_done = Some(first_pass_done);
    loop {
        // The first pass at once, then one per interval until asked to stop (or the server
        // is gone).
        if first_pass_done.is_none()
            && !matches!(
                stopped.recv_timeout(node.interval()),
                Err(RecvTimeoutError::Timeout)
            )
        {
            break;
        }
        let flow = tending.pass(store.as_mut(), node, engine, on_fatal);
        if let Some(done) = first_pass_done.take() {
            let _ = done.send(());
        }
        if flow.is_break() {
            break;
        }
    }
    Kept {
        store,
        adopted: tending.adopted.into_keys().collect(),
    }
}

/// What the keeper tracks between its passes.
struct Tending {
    /// When this node's lease, as last renewed, runs out.
    own_expires_at: i64,
    /// Adopted prefix → when its lease, as last renewed, runs out.
    adopted: BTreeMap<String, i64>,
}

impl Tending {
    /// Renews this node's lease and the adopted ones, gives up those whose transactions are
    /// all ended, and adopts the transactions of prefixes without a live lease. Breaks when
    /// this node must stop (`on_fatal` has been told why).
    fn pass(
        &mut self,
        store: &mut dyn SessionStore,
        node: &Node,
        engine: &EngineHandle,
        on_fatal: &dyn Fn(String),
    ) -> ControlFlow<()> {
        let own_name = lease_name(&node.prefix);
        let (owner, adopter) = (node.owner(), node.adopter());
        let adopted = &mut self.adopted;
        let now = now_ms();
        match store.try_lease(&own_name, &owner, node.lease_ms, now) {
            Ok(LeaseOutcome::Held { expires_at_ms }) => self.own_expires_at = expires_at_ms,
            Ok(LeaseOutcome::Taken(lease)) => {
                on_fatal(format!(
                    "node {} took over this node's transactions after its lease lapsed; \
                     stopping, so that one node drives them (restart to take them back)",
                    lease.holder
                ));
                return ControlFlow::Break(());
            }
            Err(error) if now >= self.own_expires_at => {
                on_fatal(format!(
                    "cannot renew this node's lease for store.node_lease_ms ({} ms); stopping, \
                     so that another node can take its transactions over: {error}",
                    node.lease_ms
                ));
                return ControlFlow::Break(());
            }
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
                return ControlFlow::Continue(());
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
        for prefix in prefixes {
            if prefix == node.prefix || adopted.contains_key(&prefix) {
                continue;
            }
            let name = lease_name(&prefix);
            let expires_at_ms = match store.try_lease(&name, &adopter, node.lease_ms, now_ms()) {
                Ok(LeaseOutcome::Held { expires_at_ms }) => expires_at_ms,
                Ok(LeaseOutcome::Taken(_)) => continue,
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
                    adopted.insert(prefix, expires_at_ms);
                    engine.notify(CoreCommand::Adopt(transactions));
                }
                Err(error) => {
                    tracing::warn!(%error, %prefix, "cannot read a lapsed node's transactions");
                    let _ = store.release_lease(&name, &adopter);
                }
            }
        }
        ControlFlow::Continue(())
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
        assert_ne!(node.instance, Node::new("x".into(), 1).instance);
    }
}
