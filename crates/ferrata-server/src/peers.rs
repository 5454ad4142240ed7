//! Links between the nodes of a cluster on a shared database. A request about a transaction
//! another node drives is forwarded there over a Seata connection this node opens as a client
//! (a TM, and the RM of the resources it forwards branches for) and the answer relayed back;
//! the phase-2 requests that node sends back over the link, for branches registered through
//! it, are delivered to an RM connected here and its answers relayed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_core::{BranchOutcome, BranchRequest, RequestKind};
use ferrata_net::{Connection, ConnectionConfig, Outbound, OutboundEncoder};
use ferrata_proto::{
    BranchCommitResponse, BranchRollbackResponse, BranchStatus, BranchType, CodecContext, Frame,
    Message, MsgType, RegisterRmRequest, RegisterTmRequest, ResultInfo,
    TransactionExceptionCode as Code, decode_body,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{DetachedStore, Drivers};
use crate::phase2::{Phase2, Phase2Sender, outcome_of};

/// The application id links register with. Requests arriving on such a connection are
/// handled where they arrive, never forwarded again (no loops between nodes).
pub const PEER_APPLICATION_ID: &str = "ferrata-node";

/// Frames queued on a link before forwarding waits for room.
const LINK_OUTBOX: usize = 1024;
/// Phase-2 origins remembered per link (branch id → the RM here that registered it).
const MAX_ORIGINS: usize = 100_000;
/// How often an idle link pings, below every node's idle timeout.
const LINK_HEARTBEAT: Duration = Duration::from_secs(10);

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot reach TC node {address}, which drives this transaction: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("TC node {address}, which drives this transaction, did not answer in time")]
    Timeout { address: String },
    #[error("TC node {address} refused this node's registration: {reason}")]
    Refused { address: String, reason: String },
}

/// The XID and kind of a request another node should handle when it drives the transaction;
/// `None` for requests any node answers (begin, lock queries, registrations).
pub fn forwardable(message: &Message) -> Option<(&str, RequestKind)> {
    match message {
        Message::BranchRegister(r) => Some((&r.xid, RequestKind::BranchRegister)),
        Message::BranchReport(r) => Some((&r.xid, RequestKind::BranchReport)),
        Message::GlobalCommit(r) => Some((&r.xid, RequestKind::GlobalCommit)),
        Message::GlobalRollback(r) => Some((&r.xid, RequestKind::GlobalRollback)),
        Message::GlobalStatus(r) => Some((&r.xid, RequestKind::GlobalStatus)),
        Message::GlobalReport(r) => Some((&r.xid, RequestKind::GlobalReport)),
        _ => None,
    }
}

/// This node's links to the others, opened on first use.
pub struct Peers {
    pub drivers: Arc<Drivers>,
    /// Reads the database: phase 2 another node asks this one to deliver must follow the
    /// decision stored there.
    store: Arc<Mutex<DetachedStore>>,
    phase2: Arc<Phase2Sender>,
    links: tokio::sync::Mutex<HashMap<String, Arc<Link>>>,
    /// The transaction service group and version links register with.
    group: String,
    version: String,
    /// (access key, secret key) links sign their registration with, when nodes use `[auth]`.
    signing: Option<(String, String)>,
    /// How long to wait for a connection, then for each answer.
    timeout: Duration,
    max_frame_len: usize,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("drivers", &self.drivers)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// Links to other nodes; with `signing`, an access key of the application
    /// [`PEER_APPLICATION_ID`], they sign their registration as `[auth]` requires.
    pub fn new(
        drivers: Arc<Drivers>,
        store: Box<dyn ferrata_store::SessionStore>,
        phase2: Arc<Phase2Sender>,
        version: String,
        signing: Option<(String, String)>,
        timeout: Duration,
        max_frame_len: usize,
    ) -> Peers {
        Peers {
            drivers,
            store: Arc::new(Mutex::new(DetachedStore::new(store))),
            phase2,
            links: tokio::sync::Mutex::new(HashMap::new()),
            group: "ferrata-cluster".to_owned(),
            version,
            signing,
            timeout,
            max_frame_len,
        }
    }

    /// Sends `message` (a request of a client connected here, on behalf of `client_id`) to the
    /// node at `address` and returns its answer.
    pub async fn forward(
        &self,
        address: &str,
        message: Message,
        client_id: &str,
    ) -> Result<Message, ForwardError> {
        let link = self.link(address).await?;
        let registered_branch = match &message {
            Message::BranchRegister(r) => {
                link.ensure_resource(&r.resource_id, self).await?;
                true
            }
            _ => false,
        };
        let answer = link.call(message, self.timeout).await;
        if link.closed.load(Ordering::Acquire) {
            self.links.lock().await.remove(address);
        }
        let answer = answer?;
        if registered_branch && let Message::BranchRegisterResponse(r) = &answer {
            link.remember_origin(r.branch_id, client_id);
        }
        Ok(answer)
    }

    /// Asks the other nodes, one after the other, to deliver a phase-2 request no RM connected
    /// here can take; the first RM that answers decides the outcome.
    pub async fn deliver_elsewhere(
        &self,
        message: Message,
        request: &BranchRequest,
        phase2: Phase2,
    ) -> BranchOutcome {
        for address in self.drivers.peers() {
            let link = match self.link(&address).await {
                Ok(link) => link,
                Err(error) => {
                    tracing::debug!(%error, "a node cannot relay phase 2");
                    continue;
                }
            };
            let Ok(answer) = link.call(message.clone(), self.timeout).await else {
                continue;
            };
            match outcome_of(answer, &request.xid, request.branch_id, phase2) {
                Ok(BranchOutcome::Unreachable) | Err(_) => continue,
                Ok(outcome) => return outcome,
            }
        }
        tracing::warn!(
            xid = %request.xid,
            branch_id = request.branch_id.0,
            resource_id = %request.resource_id,
            "no RM of the resource is connected to any node; phase 2 will be retried"
        );
        BranchOutcome::Unreachable
    }

    /// Delivers a phase-2 request another node sent here (no RM there could take it) to an
    /// RM connected here, and returns the answer for that node. Only what the database says
    /// was decided is delivered: anyone can register as [`PEER_APPLICATION_ID`] on a server
    /// without `[auth]`, and a forged BranchCommit must not reach an RM.
    pub async fn deliver_here(&self, message: Message) -> Option<Message> {
        let (xid, branch_id, commit) = match &message {
            Message::BranchCommit(r) => (r.xid.clone(), r.branch_id, true),
            Message::BranchRollback(r) => (r.xid.clone(), r.branch_id, false),
            _ => return None,
        };
        let store = self.store.clone();
        let check_xid = xid.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let id = ferrata_core::transaction_id_of(&check_xid)?;
            let checks = store.lock().unwrap_or_else(|p| p.into_inner());
            checks.get().transaction(id).ok().flatten()
        })
        .await
        .ok()
        .flatten()
        .filter(|tx| tx.global.xid == xid);
        let decided = stored.is_some_and(|tx| {
            let status = tx.global.status;
            if commit {
                status.is_committing() || status == ferrata_proto::GlobalStatus::Committed
            } else {
                status.is_rollbacking()
                    || matches!(
                        status,
                        ferrata_proto::GlobalStatus::Rollbacked
                            | ferrata_proto::GlobalStatus::TimeoutRollbacked
                    )
            }
        });
        if !decided {
            tracing::warn!(%xid, branch_id, commit, "refusing to relay a phase-2 request the database does not show as decided");
            return Some(phase2_failure(
                xid,
                branch_id,
                commit,
                "the transaction is not decided that way in the database".to_owned(),
            ));
        }
        deliver_here(&self.phase2, "", message).await
    }

    /// The node at `address` if it is one of the cluster's (announced in the database, or
    /// found driving a transaction): a client must not make this node connect anywhere else.
    pub fn is_node(&self, address: &str) -> bool {
        self.drivers.peers().iter().any(|peer| peer == address)
    }

    /// The open link to `address`, connecting and registering a new one if needed.
    async fn link(&self, address: &str) -> Result<Arc<Link>, ForwardError> {
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(address)
            && !link.closed.load(Ordering::Acquire)
        {
            return Ok(link.clone());
        }
        let link = Link::connect(address, self).await?;
        links.insert(address.to_owned(), link.clone());
        Ok(link)
    }
}

/// One node's Seata connection to another.
#[derive(Debug)]
struct Link {
    address: String,
    out: mpsc::Sender<Outbound>,
    waiters: Mutex<HashMap<i32, oneshot::Sender<Message>>>,
    next_id: AtomicI32,
    /// Resources this link registered as an RM for.
    resources: tokio::sync::Mutex<HashSet<String>>,
    /// Branch id → client id of the RM here that registered it (oldest forgotten first).
    origins: Mutex<(HashMap<i64, String>, VecDeque<i64>)>,
    closed: AtomicBool,
}

impl Link {
    async fn connect(address: &str, peers: &Peers) -> Result<Arc<Link>, ForwardError> {
        let unreachable = |reason: String| ForwardError::Unreachable {
            address: address.to_owned(),
            reason,
        };
        let stream = match tokio::time::timeout(peers.timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Err(_) => return Err(unreachable("connecting timed out".to_owned())),
        };
        let _ = stream.set_nodelay(true);
        let local_ip = stream.local_addr().map_or_else(
            |_| ferrata_proto::auth::FALLBACK_IP.to_owned(),
            |a| a.ip().to_string(),
        );
        let (reader, writer) = stream.into_split();
        let (out, outbox) = mpsc::channel(LINK_OUTBOX);
        let config = ConnectionConfig {
            max_frame_len: peers.max_frame_len,
            read_idle: None,
            write_timeout: Some(peers.timeout),
            heartbeat_after: None,
        };
        let id = ferrata_net::next_connection_id();
        let conn = Connection::open(
            reader,
            writer,
            outbox,
            OutboundEncoder,
            &config,
            address,
            id,
        );
        let link = Arc::new(Link {
            address: address.to_owned(),
            out,
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicI32::new(1),
            resources: tokio::sync::Mutex::new(HashSet::new()),
            origins: Mutex::new((HashMap::new(), VecDeque::new())),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(read_link(
            conn,
            Arc::downgrade(&link),
            peers.phase2.clone(),
            peers.max_frame_len,
        ));
        let extra_data = match &peers.signing {
            Some((access_key, secret_key)) => ferrata_proto::auth::signed_extra_data(
                access_key,
                secret_key,
                &peers.group,
                &local_ip,
                signing_timestamp_ms(),
            )
            .unwrap_or_default(),
            None => String::new(),
        };
        let registration = Message::RegisterTm(RegisterTmRequest {
            version: peers.version.clone(),
            application_id: PEER_APPLICATION_ID.to_owned(),
            transaction_service_group: peers.group.clone(),
            extra_data,
        });
        match link.call(registration, peers.timeout).await? {
            Message::RegisterTmResponse(r) if r.identified => Ok(link),
            other => Err(ForwardError::Refused {
                address: address.to_owned(),
                reason: format!("{other:?}"),
            }),
        }
    }

    /// Registers the link as an RM of `resource_id`, once: the driving node then sends the
    /// phase 2 of branches registered through it back over this link.
    async fn ensure_resource(&self, resource_id: &str, peers: &Peers) -> Result<(), ForwardError> {
        let mut resources = self.resources.lock().await;
        if resources.contains(resource_id) {
            return Ok(());
        }
        let registration = Message::RegisterRm(RegisterRmRequest {
            version: peers.version.clone(),
            application_id: PEER_APPLICATION_ID.to_owned(),
            transaction_service_group: peers.group.clone(),
            extra_data: String::new(),
            resource_ids: resource_id.to_owned(),
        });
        match self.call(registration, peers.timeout).await? {
            Message::RegisterRmResponse(r) if r.identified => {
                resources.insert(resource_id.to_owned());
                Ok(())
            }
            other => Err(ForwardError::Refused {
                address: self.address.clone(),
                reason: format!("{other:?}"),
            }),
        }
    }

    async fn call(&self, message: Message, timeout: Duration) -> Result<Message, ForwardError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let (answer, answered) = oneshot::channel();
        self.lock_waiters().insert(id, answer);
        let request = Outbound::message(MsgType::Request, id, message, CodecContext::default());
        let gone = || ForwardError::Unreachable {
            address: self.address.clone(),
            reason: "the link closed".to_owned(),
        };
        if tokio::time::timeout(timeout, self.out.send(request))
            .await
            .map_or(true, |sent| sent.is_err())
        {
            self.lock_waiters().remove(&id);
            return Err(gone());
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(gone()),
            Err(_) => {
                self.lock_waiters().remove(&id);
                Err(ForwardError::Timeout {
                    address: self.address.clone(),
                })
            }
        }
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, HashMap<i32, oneshot::Sender<Message>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember_origin(&self, branch_id: i64, client_id: &str) {
        let mut origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        let (by_branch, order) = &mut *origins;
        if by_branch.insert(branch_id, client_id.to_owned()).is_none() {
            order.push_back(branch_id);
        }
        while order.len() > MAX_ORIGINS {
            if let Some(oldest) = order.pop_front() {
                by_branch.remove(&oldest);
            }
        }
    }

    fn origin(&self, branch_id: i64) -> String {
        let origins = self.origins.lock().unwrap_or_else(|p| p.into_inner());
        origins.0.get(&branch_id).cloned().unwrap_or_default()
    }
}

/// Registration timestamps (epoch ms) that never repeat in this process: a node refuses a
/// signature it has seen, and two links may register within one millisecond.
fn signing_timestamp_ms() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = crate::engine::now_ms();
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// Reads a link: answers to forwarded requests, and phase-2 requests to deliver here.
async fn read_link(
    mut conn: Connection<tokio::net::tcp::OwnedReadHalf>,
    link: std::sync::Weak<Link>,
    phase2: Arc<Phase2Sender>,
    max_frame_len: usize,
) {
    let ctx = CodecContext::default();
    let mut heartbeat = tokio::time::interval(LINK_HEARTBEAT);
    loop {
        let frame = tokio::select! {
            frame = conn.next_frame() => frame,
            _ = heartbeat.tick() => {
                let Some(link) = link.upgrade() else { break };
                let ping = Outbound::Raw(Frame::heartbeat(MsgType::HeartbeatRequest, ctx.protocol_version, 0));
                if link.out.try_send(ping).is_err() && link.out.is_closed() {
                    break;
                }
                continue;
            }
        };
        let Ok(frame) = frame else { break };
        let Some(link) = link.upgrade() else { break };
        if matches!(
            frame.msg_type,
            MsgType::HeartbeatRequest | MsgType::HeartbeatResponse
        ) {
            continue;
        }
        let Ok(message) = decode_body(&frame, &ctx, max_frame_len) else {
            continue;
        };
        match frame.msg_type {
            MsgType::Response => {
                if let Some(waiter) = link.lock_waiters().remove(&frame.request_id) {
                    let _ = waiter.send(message);
                }
            }
            _ => {
                let phase2 = phase2.clone();
                tokio::spawn(async move {
                    let origin = match &message {
                        Message::BranchCommit(r) => link.origin(r.branch_id),
                        Message::BranchRollback(r) => link.origin(r.branch_id),
                        _ => String::new(),
                    };
                    let answer = deliver_here(&phase2, &origin, message).await;
                    if let Some(answer) = answer {
                        let response =
                            Outbound::message(MsgType::Response, frame.request_id, answer, ctx);
                        let _ = link.out.send(response).await;
                    }
                });
            }
        }
    }
    if let Some(link) = link.upgrade() {
        link.closed.store(true, Ordering::Release);
        // Waiters learn at once that no answer comes.
        link.lock_waiters().clear();
    }
    conn.close().await;
}

/// Delivers a phase-2 request another node sent to an RM connected here (the one that
/// registered the branch when `client_id` names it), and returns the answer for that node: the
/// RM's, or a failure it retries.
async fn deliver_here(phase2: &Phase2Sender, client_id: &str, message: Message) -> Option<Message> {
    let (xid, branch_id, branch_type, resource_id, commit) = match &message {
        Message::BranchCommit(r) => (
            r.xid.clone(),
            r.branch_id,
            r.branch_type,
            r.resource_id.clone(),
            true,
        ),
        Message::BranchRollback(r) => (
            r.xid.clone(),
            r.branch_id,
            r.branch_type,
            r.resource_id.clone(),
            false,
        ),
        // Nothing else is asked of a client; undo-log cleanup reaches the RMs directly.
        _ => return None,
    };
    // Without the registering client, any RM of the resource will do (as for AT).
    let branch_type = if client_id.is_empty() {
        BranchType::At
    } else {
        branch_type
    };
    if let Some(answer) = phase2
        .relay(message, &resource_id, client_id, branch_type)
        .await
    {
        return Some(answer);
    }
    tracing::warn!(%xid, branch_id, %resource_id, "no RM here answered a phase-2 request relayed for another node; it will retry");
    Some(phase2_failure(
        xid,
        branch_id,
        commit,
        format!("no RM of {resource_id} answered on the relaying TC node"),
    ))
}

/// A failed answer to a phase-2 request: the asking node retries later.
fn phase2_failure(xid: String, branch_id: i64, commit: bool, why: String) -> Message {
    let result = ResultInfo::failure(Code::BranchTransactionNotExist, why);
    if commit {
        Message::BranchCommitResponse(BranchCommitResponse {
            result,
            xid,
            branch_id,
            branch_status: BranchStatus::PhaseTwoCommitFailedRetryable,
        })
    } else {
        Message::BranchRollbackResponse(BranchRollbackResponse {
            result,
            xid,
            branch_id,
            branch_status: BranchStatus::PhaseTwoRollbackFailedRetryable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_about_a_transaction_are_forwarded() {
        let commit = Message::GlobalCommit(ferrata_proto::GlobalCommitRequest {
            xid: "10.0.0.2:8091:7".into(),
            extra_data: String::new(),
        });
        assert_eq!(
            forwardable(&commit),
            Some(("10.0.0.2:8091:7", RequestKind::GlobalCommit))
        );
        let begin = Message::GlobalBegin(ferrata_proto::GlobalBeginRequest {
            timeout_ms: 1,
            transaction_name: String::new(),
        });
        assert_eq!(forwardable(&begin), None);
    }

    #[test]
    fn origins_are_bounded() {
        let (out, _rx) = mpsc::channel(1);
        let link = Link {
            address: "x".into(),
            out,
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicI32::new(1),
            resources: tokio::sync::Mutex::new(HashSet::new()),
            origins: Mutex::new((HashMap::new(), VecDeque::new())),
            closed: AtomicBool::new(false),
        };
        for branch in 0..(MAX_ORIGINS as i64 + 10) {
            link.remember_origin(branch, "rm");
        }
        assert_eq!(link.origin(0), "", "the oldest are forgotten");
        assert_eq!(link.origin(MAX_ORIGINS as i64 + 9), "rm");
        assert_eq!(link.origins.lock().unwrap().0.len(), MAX_ORIGINS);
    }
}
