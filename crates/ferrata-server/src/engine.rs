//! Runs the sans-IO coordinator: one core thread applies commands in arrival order and a
//! writer thread group-commits their records (one fsync per batch of batches) before it
//! releases the replies and phase-2 requests that depend on them. Both queues are bounded:
//! connections wait for room in the command queue, the core waits for room in the writer's.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::sync::mpsc::OwnedPermit;

use ferrata_core::{
    AdminAction, BranchId, BranchOutcome, BranchRequest, Coordinator, Effect, LockFilter, LockPage,
    MetricsSnapshot, Record, Refusal, Reply, Request, RequestKind, Requester, StoreSharing,
    StoredTransaction, TransactionDetail, TransactionFilter, TransactionId, TransactionPage,
};
use ferrata_proto::{CodecContext, Message, MsgType};
use ferrata_store::{CompactionDone, CompactionJob, OpOutcome, SessionStore, StoreError, StoreOp};

use crate::refusals::{self, RecentlyRefused};

use crate::phase2::{Phase2, Phase2Sender};
use crate::registry::Outbound;
use crate::response::build_response;

/// Commands applied per core batch before its effects go to the writer; bounds latency.
const MAX_COMMANDS_PER_BATCH: usize = 8192;
/// Commands queued for the core thread; connections wait for room beyond this.
pub const COMMAND_QUEUE_CAPACITY: usize = 65_536;
/// Core batches queued for the writer thread; the core waits for room beyond this.
const WRITER_QUEUE_BATCHES: usize = 16;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counts a connection's requests from admission until their answer is queued.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Admits one more request unless `limit` are already in flight.
    pub fn try_admit(counter: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(counter.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where an answer goes: a slot reserved in the connection's bounded outbox when the request
/// was admitted (so answering never waits and never fails for lack of room), or a place in a
/// merged batch that owns such a slot.
#[derive(Debug)]
pub enum ReplySlot {
    Direct {
        permit: OwnedPermit<Outbound>,
        request_id: i32,
        codec: u8,
        compressor: u8,
    },
    Merged(Arc<MergeBatch>, usize),
}

impl ReplySlot {
    /// Delivers a response message to the connection (or into its merged batch).
    pub fn answer(self, message: Message, ctx: CodecContext) {
        match self {
            ReplySlot::Merged(batch, index) => batch.fill(index, message),
            ReplySlot::Direct {
                permit,
                request_id,
                codec,
                compressor,
            } => {
                permit.send(Outbound::Message {
                    msg_type: MsgType::Response,
                    request_id,
                    codec,
                    compressor,
                    message,
                    ctx,
                });
            }
        }
    }
}

/// Where the answer to a request goes.
#[derive(Debug)]
pub struct Route {
    target: Target,
    /// What the request was and when it was admitted, for its latency meter.
    kind: RequestKind,
    admitted_at: std::time::Instant,
}

#[derive(Debug)]
enum Target {
    /// A client connection: the answer is encoded for it.
    Client {
        ctx: CodecContext,
        slot: ReplySlot,
        _in_flight: InFlight,
    },
    /// An operator's action through the admin API: the reply itself.
    Admin(tokio::sync::oneshot::Sender<Reply>),
}

impl Route {
    pub fn new(
        ctx: CodecContext,
        slot: ReplySlot,
        in_flight: InFlight,
        kind: RequestKind,
    ) -> Route {
        Route::to(
            Target::Client {
                ctx,
                slot,
                _in_flight: in_flight,
            },
            kind,
        )
    }

    /// An admin action's route: the reply goes to `answer`.
    pub fn admin(answer: tokio::sync::oneshot::Sender<Reply>, kind: RequestKind) -> Route {
        Route::to(Target::Admin(answer), kind)
    }

    fn to(target: Target, kind: RequestKind) -> Route {
        Route {
            target,
            kind,
            admitted_at: std::time::Instant::now(),
        }
    }

    /// Delivers the core's reply: encoded for a client, as it is for an operator.
    pub fn respond(self, reply: Reply) {
        crate::meters::meters().request(self.kind, self.admitted_at.elapsed());
        match self.target {
            Target::Client { ctx, slot, .. } => slot.answer(build_response(reply, &ctx), ctx),
            // The operator may have stopped waiting.
            Target::Admin(answer) => drop(answer.send(reply)),
        }
    }

    /// Delivers an answer built elsewhere (relayed from another node) to a client.
    pub fn answer(self, message: Message) {
        crate::meters::meters().request(self.kind, self.admitted_at.elapsed());
        match self.target {
            Target::Client { ctx, slot, .. } => slot.answer(message, ctx),
            Target::Admin(_) => {
                debug_assert!(false, "a wire answer for an admin action");
            }
        }
    }
}

/// The answers of one MergedWarpMessage, sent as one MergeResultMessage once all are in.
#[derive(Debug)]
pub struct MergeBatch {
    permit: Mutex<Option<OwnedPermit<Outbound>>>,
    request_id: i32,
    codec: u8,
    compressor: u8,
    ctx: CodecContext,
    slots: Mutex<Vec<Option<Message>>>,
    remaining: AtomicUsize,
}

impl MergeBatch {
    pub fn new(
        permit: OwnedPermit<Outbound>,
        request_id: i32,
        codec: u8,
        compressor: u8,
        ctx: CodecContext,
        len: usize,
    ) -> MergeBatch {
        MergeBatch {
            permit: Mutex::new(Some(permit)),
            request_id,
            codec,
            compressor,
            ctx,
            slots: Mutex::new(vec![None; len]),
            remaining: AtomicUsize::new(len),
        }
    }

    /// Fills one answer; the last one sends the whole result in request order.
    pub fn fill(&self, index: usize, message: Message) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let filled_now = match slots.get_mut(index) {
            Some(slot) => slot.replace(message).is_none(),
            None => false,
        };
        debug_assert!(
            filled_now,
            "merged answer {index} filled twice or out of range"
        );
        if filled_now && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let messages = slots.iter_mut().filter_map(Option::take).collect();
            let permit = self.permit.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(permit) = permit {
                permit.send(Outbound::Message {
                    msg_type: MsgType::Response,
                    request_id: self.request_id,
                    codec: self.codec,
                    compressor: self.compressor,
                    message: Message::MergeResult(ferrata_proto::MergeResultMessage { messages }),
                    ctx: self.ctx,
                });
            }
        }
    }
}

#[derive(Debug)]
pub enum CoreCommand {
    Request {
        route: Route,
        requester: Arc<Requester>,
        request: Request,
    },
    BranchResult {
        transaction_id: TransactionId,
        branch_id: BranchId,
        outcome: BranchOutcome,
    },
    /// Ids the store reserved for this node (after `Effect::ReserveIds`). Internal: sent by
    /// the writer thread without taking room in the queue.
    IdRange(std::ops::Range<i64>),
    /// A shared store refused this write (internal, like `IdRange`).
    Refused {
        record: Record,
        refusal: Refusal,
    },
    /// Transactions of a node whose lease lapsed, for this node to drive (internal: sent by
    /// the lease keeper).
    Adopt(Vec<StoredTransaction>),
    /// The node with this XID prefix took its transactions back (internal).
    Disown(String),
    /// Transaction counts and what the coordinator holds, for the metrics endpoint.
    Metrics(tokio::sync::oneshot::Sender<MetricsSnapshot>),
    /// A read of the admin API, answered from memory at once.
    AdminRead(AdminQuery),
    /// An operator's action on one transaction, answered like a request.
    Admin {
        route: Route,
        operator: String,
        xid: String,
        action: AdminAction,
    },
    Shutdown,
}

impl CoreCommand {
    /// Sent by the server itself, without taking room in the queue.
    fn is_internal(&self) -> bool {
        matches!(
            self,
            CoreCommand::IdRange(_)
                | CoreCommand::Refused { .. }
                | CoreCommand::Adopt(_)
                | CoreCommand::Disown(_)
        )
    }
}

/// A read of the admin API and where its answer goes.
#[derive(Debug)]
pub enum AdminQuery {
    Transactions(
        TransactionFilter,
        tokio::sync::oneshot::Sender<TransactionPage>,
    ),
    Transaction(
        String,
        tokio::sync::oneshot::Sender<Option<TransactionDetail>>,
    ),
    Locks(LockFilter, tokio::sync::oneshot::Sender<LockPage>),
    /// Counts without emptying Seata's windows (those belong to the scrapes).
    Counts(tokio::sync::oneshot::Sender<MetricsSnapshot>),
}

impl AdminQuery {
    fn answer(self, coordinator: &Coordinator, now_ms: i64) {
        // An operator who stopped waiting needs no answer.
        match self {
            AdminQuery::Transactions(filter, answer) => {
                let _ = answer.send(coordinator.transactions(&filter, now_ms));
            }
            AdminQuery::Transaction(xid, answer) => {
                let _ = answer.send(coordinator.transaction(&xid));
            }
            AdminQuery::Locks(filter, answer) => {
                let _ = answer.send(coordinator.locks(&filter));
            }
            AdminQuery::Counts(answer) => {
                let _ = answer.send(coordinator.metrics());
            }
        }
    }
}

/// What the writer executes once the batch's records are durable.
#[derive(Debug)]
enum Action {
    Respond {
        route: Route,
        reply: Reply,
    },
    BranchCommit(BranchRequest),
    BranchRollback(BranchRequest),
    UndoLogDelete {
        save_days: i16,
    },
    ReserveIds {
        count: i64,
    },
    CheckLocks {
        route: Route,
        transaction_id: TransactionId,
        rows: Vec<ferrata_store::RowKey>,
    },
    CheckStatus {
        route: Route,
        transaction_id: TransactionId,
    },
}

#[derive(Debug, Default)]
struct WriteBatch {
    /// Batches are numbered from 1 in the order the core sends them.
    seq: u64,
    ops: Vec<StoreOp>,
    actions: Vec<Action>,
    /// The effects of one command (or of one tick) form a group: (end of its ops, end of its
    /// actions). A refused op holds back the answers of its group.
    groups: Vec<(usize, usize)>,
    /// Groups with a refused op, and the refusal (filled in by the writer).
    refused: Vec<(usize, Refusal, String)>,
    /// The group of the tick's effects: it spans many transactions, so its answers are not
    /// replaced for one refused op (phase-2 requests are screened by transaction everywhere).
    tick_group: Option<usize>,
    /// The full live state after this batch: replaces everything written so far.
    snapshot: Option<Vec<Record>>,
}

impl WriteBatch {
    /// Ends the group of the command whose effects were just added.
    fn close_group(&mut self) {
        let ends = (self.ops.len(), self.actions.len());
        if self.groups.last() != Some(&ends) {
            self.groups.push(ends);
        }
    }

    /// The group of the op at `index`.
    fn group_of_op(&self, index: usize) -> usize {
        self.groups
            .partition_point(|&(ops_end, _)| ops_end <= index)
    }
}

/// Handle to the running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: Sender<CoreCommand>,
    /// Free places in the command queue; the core thread returns them as it takes commands.
    room: Arc<Semaphore>,
}

impl EngineHandle {
    /// Places taken in the command queue: commands waiting for the core thread.
    pub fn queued(&self) -> usize {
        COMMAND_QUEUE_CAPACITY.saturating_sub(self.room.available_permits())
    }

    /// Queues one of the server's own commands (`Adopt`, `Disown`), which take no room in the
    /// queue; false once the engine has stopped.
    pub fn notify(&self, command: CoreCommand) -> bool {
        debug_assert!(command.is_internal(), "{command:?} must wait for room");
        self.tx.send(command).is_ok()
    }

    /// Waits for room in the command queue, then queues the command; false once the engine
    /// has stopped.
    pub async fn submit(&self, command: CoreCommand) -> bool {
        match self.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        }
        self.tx.send(command).is_ok()
    }
}

/// Threads of a running engine, joined on shutdown.
#[derive(Debug)]
pub struct EngineThreads {
    core: std::thread::JoinHandle<()>,
    writer: std::thread::JoinHandle<Result<(), String>>,
}

impl EngineThreads {
    /// Waits until every accepted command is applied and its records are durable.
    pub fn join(self) -> Result<(), String> {
        self.core
            .join()
            .map_err(|_| "core thread panicked".to_owned())?;
        self.writer
            .join()
            .map_err(|_| "writer thread panicked".to_owned())?
    }
}

/// The engine's command queue as the core thread sees it.
#[derive(Debug)]
pub struct Commands {
    rx: Receiver<CoreCommand>,
    room: Arc<Semaphore>,
    /// For the writer thread's internal commands (they take no room).
    internal: Sender<CoreCommand>,
}

/// The engine's command channel, holding at most `capacity` commands; create it first so the
/// phase-2 sender can report back.
pub fn channel(capacity: usize) -> (EngineHandle, Commands) {
    let (tx, rx) = std::sync::mpsc::channel();
    let room = Arc::new(Semaphore::new(capacity));
    let internal = tx.clone();
    (
        EngineHandle {
            tx,
            room: room.clone(),
        },
        Commands { rx, room, internal },
    )
}

/// Starts the core and writer threads. `on_fatal` runs if the store fails: the engine then
/// stops acknowledging anything, since memory is ahead of disk.
pub fn start(
    coordinator: Coordinator,
    store: Box<dyn SessionStore>,
    sharing: StoreSharing,
    commands: Commands,
    phase2: Arc<Phase2Sender>,
    on_fatal: Box<dyn Fn(String) + Send>,
) -> std::io::Result<EngineThreads> {
    let (writer_tx, writer_rx) = std::sync::mpsc::sync_channel::<WriteBatch>(WRITER_QUEUE_BATCHES);
    let internal = commands.internal.clone();
    let compaction_wanted = Arc::new(AtomicBool::new(false));
    let durable_seq = Arc::new(AtomicU64::new(0));
    let core = {
        let (wanted, durable_seq, phase2) = (
            compaction_wanted.clone(),
            durable_seq.clone(),
            phase2.clone(),
        );
        std::thread::Builder::new()
            .name("ferrata-core".into())
            .spawn(move || {
                core_loop(
                    coordinator,
                    sharing,
                    commands,
                    writer_tx,
                    wanted,
                    durable_seq,
                    phase2,
                )
            })?
    };
    let writer = std::thread::Builder::new()
        .name("ferrata-wal".into())
        .spawn(move || {
            writer_loop(
                store,
                writer_rx,
                GroupCommit::new(sharing, internal),
                phase2,
                compaction_wanted,
                durable_seq,
                on_fatal,
            )
        })?;
    Ok(EngineThreads { core, writer })
}

fn core_loop(
    mut coordinator: Coordinator,
    sharing: StoreSharing,
    commands: Commands,
    writer: SyncSender<WriteBatch>,
    compaction_wanted: Arc<AtomicBool>,
    durable_seq: Arc<AtomicU64>,
    phase2: Arc<Phase2Sender>,
) {
    let Commands { rx, room, .. } = commands;
    // Whoever waits for room when the core stops learns at once that it stopped.
    struct CloseOnExit(Arc<Semaphore>);
    impl Drop for CloseOnExit {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let _close = CloseOnExit(room.clone());
    let mut router = Router {
        routes: HashMap::new(),
        unsynced: UnsyncedDecisions::default(),
        phase2,
        // On a shared store a phase-2 request waits for its batch: the writer must see
        // whether the store refused the decision it follows.
        early_dispatch: sharing == StoreSharing::Exclusive,
        durable: 0,
        seq: 0,
    };
    let mut next_token: u64 = 0;
    let mut effects = Vec::new();
    let mut shutting_down = false;
    loop {
        let now = now_ms();
        let wait = coordinator
            .next_deadline_ms()
            .map_or(1_000, |at| at.saturating_sub(now).clamp(0, 1_000));
        router.seq += 1;
        router.durable = durable_seq.load(Ordering::Acquire);
        router.unsynced.forget_durable(router.durable);
        let mut batch = WriteBatch {
            seq: router.seq,
            ..WriteBatch::default()
        };
        let mut applied = 0;
        // Commands that took room in the queue (internal ones took none).
        let mut admitted = 0;
        let mut take = |command: CoreCommand, batch: &mut WriteBatch| -> bool {
            admitted += usize::from(!command.is_internal());
            let stop = apply(
                &mut coordinator,
                &mut router.routes,
                &mut next_token,
                command,
            );
            coordinator.drain_effects_into(&mut effects);
            router.route(&mut effects, batch);
            batch.close_group();
            stop
        };
        match rx.recv_timeout(Duration::from_millis(wait as u64)) {
            Ok(command) => {
                shutting_down |= take(command, &mut batch);
                applied += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => shutting_down = true,
        }
        while applied < MAX_COMMANDS_PER_BATCH && !shutting_down {
            match rx.try_recv() {
                Ok(command) => {
                    shutting_down |= take(command, &mut batch);
                    applied += 1;
                }
                Err(_) => break,
            }
        }
        room.add_permits(admitted);
        coordinator.tick(now_ms());
        coordinator.drain_effects_into(&mut effects);
        router.route(&mut effects, &mut batch);
        let groups_before_tick = batch.groups.len();
        batch.close_group();
        // A tick with no effects adds no group (and must not mark the last command's).
        if batch.groups.len() > groups_before_tick {
            batch.tick_group = Some(groups_before_tick);
        }
        if compaction_wanted.swap(false, Ordering::AcqRel) {
            batch.snapshot = Some(coordinator.snapshot_records());
        }
        let has_work =
            !batch.ops.is_empty() || !batch.actions.is_empty() || batch.snapshot.is_some();
        if has_work && writer.send(batch).is_err() {
            return;
        }
        if shutting_down {
            return;
        }
    }
}

/// Turns the core's effects into a batch's ops and actions (or sends phase-2 requests at once
/// when what they depend on is durable already).
struct Router {
    routes: HashMap<u64, Route>,
    unsynced: UnsyncedDecisions,
    phase2: Arc<Phase2Sender>,
    early_dispatch: bool,
    /// The newest durable batch, as of this batch's start.
    durable: u64,
    /// This batch's number.
    seq: u64,
}

impl Router {
    fn route(&mut self, effects: &mut Vec<Effect>, batch: &mut WriteBatch) {
        for effect in effects.drain(..) {
            match effect {
                Effect::Persist(record) => {
                    self.unsynced.note(&record, self.seq);
                    batch.ops.push(StoreOp::put(record));
                }
                Effect::PersistIf { record, status } => {
                    self.unsynced.note(&record, self.seq);
                    batch.ops.push(StoreOp::if_status(record, status));
                }
                Effect::Reply { token, reply } => {
                    let route = self.routes.remove(&token);
                    debug_assert!(route.is_some(), "a reply for token {token} with no route");
                    if let Some(route) = route {
                        batch.actions.push(Action::Respond { route, reply });
                    }
                }
                // When everything a phase-2 request depends on is durable already, it is sent
                // now instead of after this batch's fsync: a pass over many branches then costs
                // a round trip per branch, not a round trip and an fsync.
                Effect::BranchCommit(request) => {
                    if self.early(request.transaction_id) {
                        self.phase2.deliver(Phase2::Commit, request);
                    } else {
                        batch.actions.push(Action::BranchCommit(request));
                    }
                }
                Effect::BranchRollback(request) => {
                    if self.early(request.transaction_id) {
                        self.phase2.deliver(Phase2::Rollback, request);
                    } else {
                        batch.actions.push(Action::BranchRollback(request));
                    }
                }
                Effect::UndoLogDelete { save_days } => {
                    batch.actions.push(Action::UndoLogDelete { save_days })
                }
                Effect::ReserveIds { count } => batch.actions.push(Action::ReserveIds { count }),
                Effect::CheckStatus {
                    token,
                    transaction_id,
                } => {
                    let route = self.routes.remove(&token);
                    debug_assert!(
                        route.is_some(),
                        "a status read for token {token} with no route"
                    );
                    if let Some(route) = route {
                        batch.actions.push(Action::CheckStatus {
                            route,
                            transaction_id,
                        });
                    }
                }
                Effect::CheckLocks {
                    token,
                    transaction_id,
                    resource_id,
                    rows,
                } => {
                    let route = self.routes.remove(&token);
                    debug_assert!(
                        route.is_some(),
                        "a lock check for token {token} with no route"
                    );
                    if let Some(route) = route {
                        let rows = rows
                            .into_iter()
                            .map(|(table, pk)| ferrata_store::RowKey {
                                resource_id: resource_id.clone(),
                                table,
                                pk,
                            })
                            .collect();
                        batch.actions.push(Action::CheckLocks {
                            route,
                            transaction_id,
                            rows,
                        });
                    }
                }
            }
        }
    }

    fn early(&self, transaction_id: TransactionId) -> bool {
        self.early_dispatch && self.unsynced.is_durable(transaction_id, self.durable)
    }
}

/// The transactions with a record that a phase-2 request depends on in a batch that may not be
/// durable yet. Phase-2 requests only ever follow a status change of their transaction (a
/// GlobalUpdate) or carry a branch's data (BranchAdd, BranchUpdate), so only those records count;
/// begins, removals and finished branches do not.
#[derive(Debug, Default)]
struct UnsyncedDecisions {
    /// Transaction → the newest batch with such a record.
    newest: HashMap<TransactionId, u64>,
    /// (batch, transaction) in the order noted, to forget them once durable.
    order: VecDeque<(u64, TransactionId)>,
}

impl UnsyncedDecisions {
    fn note(&mut self, record: &Record, batch: u64) {
        let transaction_id = match record {
            Record::GlobalUpdate { transaction_id, .. }
            | Record::BranchUpdate { transaction_id, .. } => *transaction_id,
            Record::BranchAdd(branch) => branch.transaction_id,
            _ => return,
        };
        self.newest.insert(transaction_id, batch);
        self.order.push_back((batch, transaction_id));
    }

    /// Forgets everything in batches up to `durable`.
    fn forget_durable(&mut self, durable: u64) {
        while let Some(&(batch, transaction_id)) = self.order.front() {
            if batch > durable {
                break;
            }
            self.order.pop_front();
            if self.newest.get(&transaction_id) == Some(&batch) {
                self.newest.remove(&transaction_id);
            }
        }
    }

    /// Whether every record a phase-2 request of this transaction depends on is durable.
    fn is_durable(&self, transaction_id: TransactionId, durable: u64) -> bool {
        self.newest
            .get(&transaction_id)
            .is_none_or(|batch| *batch <= durable)
    }
}

/// Applies one command; true when it asks the core to stop.
fn apply(
    coordinator: &mut Coordinator,
    routes: &mut HashMap<u64, Route>,
    next_token: &mut u64,
    command: CoreCommand,
) -> bool {
    let now = now_ms();
    match command {
        CoreCommand::Shutdown => return true,
        CoreCommand::IdRange(range) => coordinator.add_id_range(range),
        CoreCommand::Refused { record, refusal } => coordinator.store_refused(&record, refusal),
        CoreCommand::Adopt(transactions) => coordinator.adopt(transactions, now),
        CoreCommand::Disown(prefix) => coordinator.disown(&prefix),
        CoreCommand::Metrics(answer) => {
            // The scraper may have given up waiting: nothing to do then.
            let _ = answer.send(coordinator.take_metrics());
        }
        CoreCommand::AdminRead(query) => query.answer(coordinator, now),
        CoreCommand::Admin {
            route,
            operator,
            xid,
            action,
        } => {
            *next_token = next_token.wrapping_add(1);
            let token = *next_token;
            routes.insert(token, route);
            coordinator.admin(now, token, &operator, &xid, action);
        }
        CoreCommand::BranchResult {
            transaction_id,
            branch_id,
            outcome,
        } => {
            coordinator.branch_result(now, transaction_id, branch_id, outcome);
        }
        CoreCommand::Request {
            route,
            requester,
            request,
        } => {
            *next_token = next_token.wrapping_add(1);
            let token = *next_token;
            routes.insert(token, route);
            coordinator.handle(now, token, &requester, request);
        }
    }
    false
}

fn writer_loop(
    mut store: Box<dyn SessionStore>,
    rx: Receiver<WriteBatch>,
    mut ops: GroupCommit,
    phase2: Arc<Phase2Sender>,
    compaction_wanted: Arc<AtomicBool>,
    durable_seq: Arc<AtomicU64>,
    on_fatal: Box<dyn Fn(String) + Send>,
) -> Result<(), String> {
    let mut batches: Vec<WriteBatch> = Vec::new();
    let mut compaction: Option<RunningCompaction> = None;
    loop {
        // While a compaction runs, wake up now and then to collect its outcome.
        let first = if compaction.is_some() {
            match rx.recv_timeout(COMPACTION_POLL) {
                Ok(batch) => Some(batch),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(batch) => Some(batch),
                Err(_) => break,
            }
        };
        if compaction
            .as_ref()
            .is_some_and(RunningCompaction::is_finished)
            && let Some(running) = compaction.take()
        {
            running.finish(store.as_mut());
        }
        let Some(first) = first else { continue };
        batches.push(first);
        while let Ok(next) = rx.try_recv() {
            batches.push(next);
        }
        let snapshot_at = batches.iter().rposition(|b| b.snapshot.is_some());
        let result = (|| {
            let split = match snapshot_at {
                Some(index) => {
                    // The snapshot describes the state after batch `index`: those records are
                    // made durable first, then the checkpoint is written off this thread while
                    // the records after it go on being appended.
                    ops.append(store.as_mut(), &mut batches[..=index])?;
                    let snapshot = batches[index].snapshot.take().unwrap_or_default();
                    match store.begin_compaction() {
                        Ok(Some(job)) => match RunningCompaction::start(job, snapshot) {
                            Ok(running) => compaction = Some(running),
                            Err(error) => {
                                tracing::warn!(%error, "cannot start the compaction thread; the log keeps growing until the next attempt")
                            }
                        },
                        Ok(None) => {
                            if let Err(error) = store.compact(&mut snapshot.into_iter()) {
                                tracing::warn!(%error, "compaction failed; the log is intact and keeps growing until the next attempt");
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot start a compaction; the log is intact")
                        }
                    }
                    index + 1
                }
                None => 0,
            };
            ops.append(store.as_mut(), &mut batches[split..])
        })();
        if let Err(error) = result {
            let message =
                format!("session store failed; refusing to acknowledge anything more: {error}");
            on_fatal(message.clone());
            if let Some(running) = compaction.take() {
                running.finish(store.as_mut());
            }
            return Err(message);
        }
        if let Some(last) = batches.last() {
            durable_seq.store(last.seq, Ordering::Release);
        }
        if store.wants_compaction() {
            compaction_wanted.store(true, Ordering::Release);
        }
        for batch in batches.drain(..) {
            for action in ops.screen(batch) {
                if let Action::ReserveIds { count } = action {
                    match store.reserve_ids(count) {
                        // The core has stopped when this fails; nothing is left to do.
                        Ok(range) => drop(ops.core.send(CoreCommand::IdRange(range))),
                        Err(error) => {
                            let message = format!(
                                "cannot reserve ids in the session store; refusing to go on: {error}"
                            );
                            on_fatal(message.clone());
                            return Err(message);
                        }
                    }
                    continue;
                }
                if let Action::CheckLocks {
                    route,
                    transaction_id,
                    rows,
                } = action
                {
                    let reply = check_locks(store.as_ref(), transaction_id, &rows);
                    dispatch(&phase2, Action::Respond { route, reply });
                    continue;
                }
                if let Action::CheckStatus {
                    route,
                    transaction_id,
                } = action
                {
                    let reply = check_status(store.as_ref(), transaction_id);
                    dispatch(&phase2, Action::Respond { route, reply });
                    continue;
                }
                dispatch(&phase2, action);
            }
        }
    }
    // The job holds the directory lock: wait for it before the store is dropped.
    if let Some(running) = compaction.take() {
        running.finish(store.as_mut());
    }
    Ok(())
}

/// How often the writer checks on a running compaction when no batch arrives.
const COMPACTION_POLL: Duration = Duration::from_millis(100);

/// A checkpoint being written on its own thread.
struct RunningCompaction {
    thread: std::thread::JoinHandle<Result<CompactionDone, StoreError>>,
}

impl RunningCompaction {
    fn start(job: CompactionJob, snapshot: Vec<Record>) -> std::io::Result<RunningCompaction> {
        let thread = std::thread::Builder::new()
            .name("ferrata-compact".into())
            .spawn(move || job.run(&mut snapshot.into_iter()))?;
        Ok(RunningCompaction { thread })
    }

    fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the job and hands its outcome to the store; a failure is only logged (the
    /// old log stays intact and serving goes on).
    fn finish(self, store: &mut dyn SessionStore) {
        let outcome = self.thread.join().unwrap_or_else(|_| {
            Err(StoreError::Io {
                context: "compaction".to_owned(),
                source: std::io::Error::other("the compaction thread panicked"),
            })
        });
        match store.finish_compaction(outcome) {
            Ok(done) => tracing::info!(?done, "compaction finished"),
            Err(error) => tracing::warn!(
                %error,
                "compaction failed; the log is intact and keeps growing until the next attempt"
            ),
        }
    }
}

/// Applies batches as group commits and holds back what a shared store refused.
#[derive(Debug)]
struct GroupCommit {
    /// Buffers reused by every group commit.
    ops: Vec<StoreOp>,
    outcomes: Vec<OpOutcome>,
    sharing: StoreSharing,
    refused: RecentlyRefused,
    /// The core's queue, for what the store answered (id ranges, refusals).
    core: Sender<CoreCommand>,
}

impl GroupCommit {
    fn new(sharing: StoreSharing, core: Sender<CoreCommand>) -> GroupCommit {
        GroupCommit {
            ops: Vec::new(),
            outcomes: Vec::new(),
            sharing,
            refused: RecentlyRefused::default(),
            core,
        }
    }

    /// Applies the operations of `batches` as one group commit (nothing when they have none).
    /// On an exclusive store the core checked every operation before emitting it, so the
    /// store can only agree (a refusal is a bug). On a shared store each refusal is noted in
    /// its batch (see [`GroupCommit::screen`]) and sent to the core.
    fn append(
        &mut self,
        store: &mut dyn SessionStore,
        batches: &mut [WriteBatch],
    ) -> Result<(), StoreError> {
        self.ops.clear();
        self.outcomes.clear();
        let mut counts = Vec::with_capacity(batches.len());
        for batch in batches.iter_mut() {
            counts.push(batch.ops.len());
            self.ops.append(&mut batch.ops);
        }
        if self.ops.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        store.apply(&self.ops, &mut self.outcomes)?;
        crate::meters::meters().store_commit(self.ops.len(), started.elapsed());
        let (ops, outcomes) = (
            std::mem::take(&mut self.ops),
            std::mem::take(&mut self.outcomes),
        );
        let mut index = 0;
        for (batch, count) in batches.iter_mut().zip(counts) {
            for local in 0..count {
                let checked = match (ops.get(index + local), outcomes.get(index + local)) {
                    (Some(op), Some(outcome)) => self.check(batch, local, op, outcome),
                    _ => Err(StoreError::Invalid(format!(
                        "the session store answered {} outcomes for {} operations",
                        outcomes.len(),
                        ops.len()
                    ))),
                };
                if let Err(error) = checked {
                    (self.ops, self.outcomes) = (ops, outcomes);
                    return Err(error);
                }
            }
            index += count;
        }
        (self.ops, self.outcomes) = (ops, outcomes);
        Ok(())
    }

    fn check(
        &mut self,
        batch: &mut WriteBatch,
        local: usize,
        op: &StoreOp,
        outcome: &OpOutcome,
    ) -> Result<(), StoreError> {
        if self.sharing == StoreSharing::Exclusive {
            // The coordinator checked it and the log did not write it: its answer must not go
            // out. Stop, as for a failed write.
            let agreed = matches!(outcome, OpOutcome::Applied | OpOutcome::NotFound);
            debug_assert!(agreed, "the store refused {op:?}: {outcome:?}");
            if !agreed {
                return Err(StoreError::Invalid(format!(
                    "the session store refused an operation the coordinator accepted \
                     ({outcome:?} for {:?}); this is a bug: please report it",
                    op.record
                )));
            }
            return Ok(());
        }
        let Some(refusal) = refusals::refusal(op, outcome) else {
            return Ok(());
        };
        tracing::debug!(?op, ?refusal, "the shared store refused an operation");
        // Only a transaction the core forgets has no more phase 2 to send; a dropped branch
        // leaves the rest of it alone.
        if refusals::forgets_transaction(&op.record, &refusal)
            && let Some(transaction_id) = op.record.transaction_id()
        {
            self.refused.insert(transaction_id);
        }
        let group = batch.group_of_op(local);
        if !batch.refused.iter().any(|(g, _, _)| *g == group) {
            batch
                .refused
                .push((group, refusal.clone(), refusals::describe(&op.record)));
        }
        // The core has stopped when this fails; nothing is left to do.
        let _ = self.core.send(CoreCommand::Refused {
            record: op.record.clone(),
            refusal,
        });
        Ok(())
    }

    /// The actions of a durable batch that may go out: a refused group's answers are replaced
    /// by what its refusal calls for, and phase-2 requests of refused transactions dropped.
    fn screen(&self, batch: WriteBatch) -> Vec<Action> {
        let WriteBatch {
            actions,
            groups,
            refused,
            tick_group,
            ..
        } = batch;
        if refused.is_empty() && self.sharing == StoreSharing::Exclusive {
            return actions;
        }
        let mut group = 0;
        let mut out = Vec::with_capacity(actions.len());
        for (index, action) in actions.into_iter().enumerate() {
            while groups.get(group).is_some_and(|&(_, end)| end <= index) {
                group += 1;
            }
            let refusal = refused
                .iter()
                .find(|(g, _, _)| *g == group && Some(group) != tick_group);
            match action {
                Action::Respond { route, reply } => {
                    let reply = match refusal {
                        Some((_, refusal, what)) => refusal.reply(reply.kind(), what),
                        None => reply,
                    };
                    out.push(Action::Respond { route, reply });
                }
                Action::BranchCommit(request) | Action::BranchRollback(request)
                    if self.refused.contains(request.transaction_id) =>
                {
                    tracing::debug!(xid = %request.xid, "phase-2 request of a refused transaction held back");
                }
                other => out.push(other),
            }
        }
        out
    }
}

/// A GlobalLockQuery answered from the store's lock table: lockable when no row is held by
/// another transaction. A failed read fails the query, not the server.
fn check_locks(
    store: &dyn SessionStore,
    transaction_id: TransactionId,
    rows: &[ferrata_store::RowKey],
) -> Reply {
    match store.lock_holders(rows) {
        Ok(holders) => Reply::Lockable(
            holders
                .iter()
                .all(|held| held.transaction_id == transaction_id),
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot read the lock table for a lock query");
            Reply::Failed {
                request: ferrata_core::RequestKind::LockQuery,
                error: ferrata_core::TxError::new(
                    ferrata_proto::TransactionExceptionCode::LockableCheckFailed,
                    format!("cannot read the lock table: {error}"),
                ),
            }
        }
    }
}

/// A GlobalStatus of another node's transaction answered from the store: Finished when it is
/// no longer stored, as seata-server answers for a transaction it does not hold.
fn check_status(store: &dyn SessionStore, transaction_id: TransactionId) -> Reply {
    match store.transaction(transaction_id) {
        Ok(found) => Reply::GlobalStatus {
            status: found.map_or(ferrata_proto::GlobalStatus::Finished, |tx| tx.global.status),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot read a transaction's status from the store");
            Reply::Failed {
                request: ferrata_core::RequestKind::GlobalStatus,
                error: ferrata_core::TxError::new(
                    ferrata_proto::TransactionExceptionCode::FailedStore,
                    format!("cannot read the transaction's status: {error}"),
                ),
            }
        }
    }
}

fn dispatch(phase2: &Arc<Phase2Sender>, action: Action) {
    match action {
        Action::Respond { route, reply } => route.respond(reply),
        Action::BranchCommit(request) => phase2.deliver(Phase2::Commit, request),
        Action::BranchRollback(request) => phase2.deliver(Phase2::Rollback, request),
        Action::UndoLogDelete { save_days } => phase2.undo_log_delete(save_days),
        // Handled by the writer, which holds the store.
        Action::ReserveIds { .. } | Action::CheckLocks { .. } | Action::CheckStatus { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_core::GlobalSession;
    use ferrata_proto::GlobalStatus;

    fn update(transaction_id: i64) -> Record {
        Record::GlobalUpdate {
            transaction_id: TransactionId(transaction_id),
            status: GlobalStatus::Committing,
        }
    }

    #[test]
    fn a_transaction_is_durable_once_its_newest_decision_batch_is() {
        let mut unsynced = UnsyncedDecisions::default();
        unsynced.note(&update(7), 1);
        unsynced.note(&update(7), 3);
        // Begins and removals are not what phase 2 depends on.
        unsynced.note(
            &Record::GlobalRemove {
                transaction_id: TransactionId(8),
            },
            3,
        );
        unsynced.note(
            &Record::GlobalAdd(GlobalSession {
                transaction_id: TransactionId(9),
                xid: String::new(),
                status: GlobalStatus::Begin,
                application_id: String::new(),
                transaction_service_group: String::new(),
                transaction_name: String::new(),
                timeout_ms: 1,
                begin_time_ms: 0,
                application_data: String::new(),
            }),
            3,
        );
        assert!(
            unsynced.is_durable(TransactionId(8), 0) && unsynced.is_durable(TransactionId(9), 0)
        );
        assert!(!unsynced.is_durable(TransactionId(7), 2));
        unsynced.forget_durable(2);
        assert!(
            !unsynced.is_durable(TransactionId(7), 2),
            "the newer batch is still pending"
        );
        unsynced.forget_durable(3);
        assert!(unsynced.is_durable(TransactionId(7), 3));
        assert!(unsynced.newest.is_empty() && unsynced.order.is_empty());
    }
}
