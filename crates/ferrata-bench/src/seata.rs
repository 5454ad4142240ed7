//! The Seata workloads over TCP. Each TM connection is one task that owns its socket and
//! drives its transactions (one at a time per closed-loop driver, or on an open-loop schedule)
//! with requests pipelined on the connection. A few RM connections send the branch
//! registrations (plain or merged, as Java RMs do) and answer phase two immediately.
//!
//! Against a cluster (several targets) TM connection `i` goes to node `i mod n`, as Seata's
//! XID load balancing keeps a transaction on the node that began it, and each TM pairs with an
//! RM connection on that same node (a Java RM connects to every node of its cluster).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrata_proto::{
    BranchRegisterRequest, BranchRegisterResponse, BranchType, ClientVersion, CodecContext,
    Dialect, GlobalBeginRequest, GlobalCommitRequest, GlobalRollbackRequest, MergedWarpMessage,
    Message, MsgType, TransactionExceptionCode,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::schedule::{Pacer, share};
use crate::stats::{Recorder, Stats, Window, kind};
use crate::transport::{ClientIdentity, Conn, HEARTBEAT_AFTER, Inbound, phase_two_answer};
use crate::workload::{EndAnswer, Next, Outcome, RegisterAnswer, Step, TxMachine, TxPlan};

/// The resource every bench RM registers and every branch names.
pub const RESOURCE_ID: &str = "jdbc:mysql://127.0.0.1:3306/ferrata_bench";

/// How often in-flight requests are checked against the per-request timeout.
const TIMEOUT_CHECK: Duration = Duration::from_millis(100);
/// Branch registrations per MergedWarpMessage at most.
const MAX_MERGED: usize = 512;

/// Everything a Seata run needs.
#[derive(Debug, Clone)]
pub struct SeataConfig {
    /// The TC, or every node of a cluster.
    pub targets: Vec<SocketAddr>,
    pub plan: TxPlan,
    /// Closed loop: concurrent transactions in total.
    pub connections: usize,
    pub tm_connections: usize,
    pub rm_connections: usize,
    /// Open loop at this many transactions per second in total; `None` is closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    /// Wrap branch registrations in MergedWarpMessage (Java RM default) instead of plain.
    pub merged: bool,
    pub identity: ClientIdentity,
    /// Open loop: transactions in flight per TM connection beyond which starts wait.
    pub max_in_flight: usize,
    /// GlobalBegin timeout (ms) asked of the TC.
    pub global_timeout_ms: i32,
}

/// A branch registration a TM driver asks its RM connection to send.
#[derive(Debug)]
struct RmJob {
    tm: u32,
    slot: u32,
    epoch: u64,
    xid: String,
    lock_key: String,
}

#[derive(Debug)]
enum RmResult {
    Answer(RegisterAnswer),
    /// The RM connection is gone.
    Lost,
}

/// The answer to an [`RmJob`], with the RM-side round-trip times.
#[derive(Debug)]
struct RmReply {
    slot: u32,
    epoch: u64,
    result: RmResult,
    sent: Instant,
    at: Instant,
}

/// Runs a Seata workload and returns what was measured.
pub async fn run(config: SeataConfig) -> anyhow::Result<Stats> {
    let version = ClientVersion::parse(&config.identity.version)
        .map_err(|e| anyhow::anyhow!("bad --client-version: {e}"))?;
    let ctx = CodecContext::new(version, Dialect::Java);
    let config = Arc::new(config);
    let handshake = config.request_timeout.max(Duration::from_secs(5));

    let nodes = config.targets.len();
    anyhow::ensure!(nodes > 0, "no target to drive");
    let rm_count = if config.plan.workload.has_branches() {
        config.rm_connections.max(nodes)
    } else {
        0
    };
    let rms = connect_all(rm_count, {
        let config = config.clone();
        move |index| {
            let config = config.clone();
            async move {
                let mut conn = Conn::connect(config.targets[index % nodes], ctx).await?;
                conn.register_rm(&config.identity, RESOURCE_ID, handshake)
                    .await?;
                Ok(conn)
            }
        }
    })
    .await
    .context("RM connections")?;
    let tm_count = config.tm_connections.max(1);
    let tms = connect_all(tm_count, {
        let config = config.clone();
        move |index| {
            let config = config.clone();
            async move {
                let mut conn = Conn::connect(config.targets[index % nodes], ctx).await?;
                conn.register_tm(&config.identity, handshake).await?;
                Ok(conn)
            }
        }
    })
    .await
    .context("TM connections")?;

    let origin = Instant::now();
    let window = Window::new(origin, config.warmup, config.duration);
    let (tm_senders, tm_inboxes): (Vec<_>, Vec<_>) =
        (0..tm_count).map(|_| mpsc::unbounded_channel()).unzip();
    let (rm_senders, rm_inboxes): (Vec<_>, Vec<_>) =
        (0..rm_count).map(|_| mpsc::unbounded_channel()).unzip();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut rm_tasks = JoinSet::new();
    for (conn, inbox) in rms.into_iter().zip(rm_inboxes) {
        let driver = RmDriver::new(
            conn,
            inbox,
            tm_senders.clone(),
            &config,
            window,
            stop_rx.clone(),
        );
        rm_tasks.spawn(driver.run());
    }
    drop(tm_senders);
    let mut tm_tasks = JoinSet::new();
    for (index, (conn, inbox)) in tms.into_iter().zip(tm_inboxes).enumerate() {
        let rm = (rm_count > 0).then(|| rm_senders[rm_of_tm(index, nodes, rm_count)].clone());
        let driver = TmDriver::new(index, conn, inbox, rm, config.clone(), origin, window);
        tm_tasks.spawn(driver.run());
    }
    drop(rm_senders);

    let mut stats = Stats::default();
    while let Some(joined) = tm_tasks.join_next().await {
        stats.merge(&joined.context("TM task failed")?);
    }
    let _ = stop_tx.send(true);
    while let Some(joined) = rm_tasks.join_next().await {
        stats.merge(&joined.context("RM task failed")?);
    }
    Ok(stats)
}

/// The RM connection TM connection `tm` hands its branches to: one on the same node (RM `j`
/// is on node `j mod nodes`), spread evenly over that node's RMs. Needs `rms >= nodes`.
fn rm_of_tm(tm: usize, nodes: usize, rms: usize) -> usize {
    let node = tm % nodes;
    let on_node = (rms - node).div_ceil(nodes);
    node + (tm / nodes % on_node) * nodes
}

/// Opens `n` connections concurrently (registration included), in index order.
async fn connect_all<F, Fut>(n: usize, open: F) -> anyhow::Result<Vec<Conn>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Conn>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        let fut = open(i);
        set.spawn(async move { (i, fut.await) });
    }
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, conn) = joined?;
        conns[i] = Some(conn?);
    }
    Ok(conns.into_iter().flatten().collect())
}

/// One transaction's place in a TM driver.
#[derive(Debug)]
struct Slot {
    epoch: u64,
    machine: Option<TxMachine>,
    /// When the transaction started, or was due to start (open loop).
    started: Instant,
    /// When the outstanding request was sent.
    sent: Instant,
    step: Step,
    /// Waiting for an answer (TM or RM), as opposed to backing off.
    in_flight: bool,
    request_id: Option<i32>,
}

enum Event {
    Read(std::io::Result<usize>),
    Reply(Option<RmReply>),
    Timer,
}

/// A TM connection and the transactions it drives.
struct TmDriver {
    index: u32,
    conn: Conn,
    config: Arc<SeataConfig>,
    inbox: mpsc::UnboundedReceiver<RmReply>,
    inbox_open: bool,
    rm: Option<mpsc::UnboundedSender<RmJob>>,
    rec: Recorder,
    slots: Vec<Slot>,
    free: Vec<usize>,
    active: usize,
    by_id: HashMap<i32, usize>,
    backoffs: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_epoch: u64,
    seq: u64,
    /// Closed loop: transactions kept in flight. Open loop: the schedule.
    depth: usize,
    pacer: Option<Pacer>,
    stopping: bool,
    next_timeout_check: Instant,
    begin: Message,
}

impl TmDriver {
    fn new(
        index: usize,
        conn: Conn,
        inbox: mpsc::UnboundedReceiver<RmReply>,
        rm: Option<mpsc::UnboundedSender<RmJob>>,
        config: Arc<SeataConfig>,
        origin: Instant,
        window: Window,
    ) -> TmDriver {
        let tm_count = config.tm_connections.max(1);
        let pacer = config
            .rate
            .map(|rate| Pacer::new(origin, rate, tm_count, index, window.end));
        let depth = share(config.connections.max(1), tm_count, index);
        let begin = Message::GlobalBegin(GlobalBeginRequest {
            timeout_ms: config.global_timeout_ms,
            transaction_name: "ferrata-bench".to_owned(),
        });
        TmDriver {
            index: index as u32,
            conn,
            inbox,
            inbox_open: true,
            rm,
            rec: Recorder::new(window),
            slots: Vec::new(),
            free: Vec::new(),
            active: 0,
            by_id: HashMap::new(),
            backoffs: BinaryHeap::new(),
            next_epoch: 0,
            seq: 0,
            depth,
            pacer,
            stopping: false,
            next_timeout_check: origin + TIMEOUT_CHECK,
            begin,
            config,
        }
    }

    async fn run(mut self) -> Stats {
        let end = self.rec.window.end;
        let drain_until = end + self.config.request_timeout.min(Duration::from_secs(5));
        let mut sleep = Box::pin(tokio::time::sleep_until(end.into()));
        let mut sleep_at = end;
        self.fill(Instant::now());
        if self.conn.flush().await.is_err() {
            return self.closed(Instant::now());
        }
        loop {
            let now = Instant::now();
            if now >= end {
                self.stopping = true;
            }
            if (self.stopping && self.active == 0) || now >= drain_until {
                break;
            }
            let wake = self.next_wake(now, end, drain_until);
            if wake != sleep_at {
                sleep.as_mut().reset(wake.into());
                sleep_at = wake;
            }
            let event = tokio::select! {
                read = self.conn.reader.read_more() => Event::Read(read),
                reply = self.inbox.recv(), if self.inbox_open => Event::Reply(reply),
                () = &mut sleep => Event::Timer,
            };
            let now = Instant::now();
            match event {
                Event::Read(Ok(0)) | Event::Read(Err(_)) => return self.closed(now),
                Event::Read(Ok(_)) => {
                    if let Err(error) = self.drain_frames(now) {
                        tracing_error(&error);
                        self.rec.error("protocol_error", now);
                        return self.closed(now);
                    }
                }
                Event::Reply(Some(reply)) => {
                    self.on_rm_reply(reply, now);
                    while let Ok(reply) = self.inbox.try_recv() {
                        self.on_rm_reply(reply, now);
                    }
                }
                Event::Reply(None) => self.inbox_open = false,
                Event::Timer => {}
            }
            self.on_timers(now);
            if !self.stopping {
                self.fill(now);
            }
            if now.saturating_duration_since(self.conn.last_write) >= HEARTBEAT_AFTER {
                self.conn.queue_ping();
            }
            if self.conn.flush().await.is_err() {
                return self.closed(Instant::now());
            }
        }
        self.rec.stats
    }

    /// The connection is gone: every live transaction fails.
    fn closed(mut self, now: Instant) -> Stats {
        for _ in 0..self.active {
            self.rec.error("connection_closed", now);
        }
        self.rec.stats
    }

    fn next_wake(&self, now: Instant, end: Instant, drain_until: Instant) -> Instant {
        let mut wake = if self.stopping { drain_until } else { end };
        if let Some(Reverse((at, _, _))) = self.backoffs.peek() {
            wake = wake.min(*at);
        }
        if self.active > 0 {
            wake = wake.min(self.next_timeout_check);
        }
        if !self.stopping
            && self.active < self.config.max_in_flight
            && let Some(due) = self.pacer.as_ref().and_then(Pacer::next_due)
        {
            wake = wake.min(due);
        }
        wake.min(self.conn.last_write + HEARTBEAT_AFTER).max(now)
    }

    /// Starts transactions: up to the closed-loop depth, or every one the schedule has due.
    fn fill(&mut self, now: Instant) {
        if self.pacer.is_some() {
            while self.active < self.config.max_in_flight {
                let Some(due) = self.pacer.as_mut().and_then(|p| p.take_due(now)) else {
                    break;
                };
                self.start(due, now);
            }
        } else {
            while self.active < self.depth {
                self.start(now, now);
            }
        }
    }

    fn start(&mut self, intended: Instant, now: Instant) {
        self.seq += 1;
        self.next_epoch += 1;
        let machine = TxMachine::new(&self.config.plan, (self.index, self.seq));
        let first = machine.start();
        let slot = Slot {
            epoch: self.next_epoch,
            machine: Some(machine),
            started: intended,
            sent: intended,
            step: Step::Begin,
            in_flight: false,
            request_id: None,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.active += 1;
        if self.pacer.is_some() {
            self.rec.request(kind::START_LAG, intended, now);
        }
        // Requests are timed from when they go out; the transaction from when it was due.
        self.advance(index, first, now, now);
    }

    /// Acts on a transaction's next step; `sent_at` is the send time recorded for a request.
    fn advance(&mut self, index: usize, next: Next, sent_at: Instant, now: Instant) {
        let step = match next {
            Next::Send(step) => step,
            Next::RetryAfter(pause, step) => {
                self.rec.conflict(now);
                let slot = &mut self.slots[index];
                slot.step = step;
                slot.in_flight = false;
                self.backoffs
                    .push(Reverse((now + pause, index, slot.epoch)));
                return;
            }
            Next::Done(outcome) => {
                match outcome {
                    Outcome::Succeeded => self.rec.transaction(self.slots[index].started, now),
                    Outcome::Failed(kind) => self.rec.error(kind, now),
                }
                self.release(index);
                return;
            }
        };
        let slot = &mut self.slots[index];
        let Some(machine) = slot.machine.as_ref() else {
            return;
        };
        slot.step = step;
        slot.sent = sent_at;
        slot.in_flight = true;
        slot.request_id = None;
        let message = match step {
            Step::Begin => None,
            Step::Register { index: branch } => {
                let job = RmJob {
                    tm: self.index,
                    slot: index as u32,
                    epoch: slot.epoch,
                    xid: machine.xid().to_owned(),
                    lock_key: machine.lock_key(branch),
                };
                let sent = self.rm.as_ref().is_some_and(|rm| rm.send(job).is_ok());
                if !sent {
                    self.rec.error("rm_unavailable", now);
                    self.release(index);
                }
                return;
            }
            Step::Commit => Some(Message::GlobalCommit(GlobalCommitRequest {
                xid: machine.xid().to_owned(),
                extra_data: String::new(),
            })),
            Step::Rollback => Some(Message::GlobalRollback(GlobalRollbackRequest {
                xid: machine.xid().to_owned(),
                extra_data: String::new(),
            })),
        };
        let id = self.conn.next_id();
        self.conn.queue(
            MsgType::Request,
            id,
            message.as_ref().unwrap_or(&self.begin),
        );
        slot.request_id = Some(id);
        self.by_id.insert(id, index);
    }

    fn release(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if slot.machine.take().is_some() {
            if let Some(id) = slot.request_id.take() {
                self.by_id.remove(&id);
            }
            slot.in_flight = false;
            self.free.push(index);
            self.active -= 1;
        }
    }

    fn drain_frames(&mut self, now: Instant) -> anyhow::Result<()> {
        while let Some(inbound) = self.conn.next_inbound()? {
            match inbound {
                Inbound::Response { id, message } => self.on_response(id, message, now),
                Inbound::Request { id, message } => {
                    // Not expected on a TM connection, but a TC may route phase two anywhere.
                    if let Some((commit, answer)) = phase_two_answer(message) {
                        self.rec.phase2(commit, now);
                        self.conn.queue(MsgType::Response, id, &answer);
                    }
                }
                Inbound::Ping { id } => self.conn.queue_pong(id),
                Inbound::Pong => {}
            }
        }
        Ok(())
    }

    fn on_response(&mut self, id: i32, message: Message, now: Instant) {
        // Unknown ids are answers to requests that already timed out.
        let Some(index) = self.by_id.remove(&id) else {
            return;
        };
        let slot = &mut self.slots[index];
        slot.request_id = None;
        slot.in_flight = false;
        let (step, sent) = (slot.step, slot.sent);
        let Some(machine) = slot.machine.as_mut() else {
            return;
        };
        let next = match (step, message) {
            (Step::Begin, Message::GlobalBeginResponse(r)) => {
                self.rec.request(kind::BEGIN, sent, now);
                machine.on_begin(r.result.is_success().then_some(r.xid))
            }
            (Step::Commit, Message::GlobalCommitResponse(r)) => {
                self.rec.request(kind::COMMIT, sent, now);
                machine.on_end(
                    step,
                    EndAnswer {
                        success: r.result.is_success(),
                        status: r.global_status,
                    },
                )
            }
            (Step::Rollback, Message::GlobalRollbackResponse(r)) => {
                self.rec.request(kind::ROLLBACK, sent, now);
                machine.on_end(
                    step,
                    EndAnswer {
                        success: r.result.is_success(),
                        status: r.global_status,
                    },
                )
            }
            _ => Next::Done(Outcome::Failed("unexpected_response")),
        };
        self.advance(index, next, now, now);
    }

    fn on_rm_reply(&mut self, reply: RmReply, now: Instant) {
        let index = reply.slot as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let current = slot.epoch == reply.epoch
            && slot.in_flight
            && matches!(slot.step, Step::Register { .. });
        let Some(machine) = slot.machine.as_mut().filter(|_| current) else {
            return;
        };
        slot.in_flight = false;
        let next = match reply.result {
            RmResult::Answer(answer) => {
                self.rec
                    .request(kind::BRANCH_REGISTER, reply.sent, reply.at);
                machine.on_register(answer)
            }
            RmResult::Lost => Next::Done(Outcome::Failed("rm_connection_closed")),
        };
        self.advance(index, next, now, now);
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, index, epoch))) = self.backoffs.peek().copied() {
            if at > now {
                break;
            }
            self.backoffs.pop();
            let slot = &self.slots[index];
            if slot.epoch == epoch && slot.machine.is_some() && !slot.in_flight {
                let step = slot.step;
                self.advance(index, Next::Send(step), now, now);
            }
        }
        if now >= self.next_timeout_check {
            self.next_timeout_check = now + TIMEOUT_CHECK;
            let timeout = self.config.request_timeout;
            for index in 0..self.slots.len() {
                let slot = &self.slots[index];
                if slot.machine.is_some()
                    && slot.in_flight
                    && now.saturating_duration_since(slot.sent) >= timeout
                {
                    let kind = match slot.step {
                        Step::Begin => "timeout_begin",
                        Step::Register { .. } => "timeout_branch_register",
                        Step::Commit => "timeout_commit",
                        Step::Rollback => "timeout_rollback",
                    };
                    self.rec.error(kind, now);
                    self.release(index);
                }
            }
        }
    }
}

fn tracing_error(error: &anyhow::Error) {
    eprintln!("ferrata-bench: closing a connection after a protocol error: {error:#}");
}

/// Where a branch registration's answer goes.
#[derive(Debug, Clone, Copy)]
struct Pending {
    tm: u32,
    slot: u32,
    epoch: u64,
    sent: Instant,
}

enum RmEvent {
    Read(std::io::Result<usize>),
    Jobs(usize),
    Stop,
    Timer,
}

/// An RM connection: sends registrations for its TM drivers and answers phase two.
struct RmDriver {
    conn: Conn,
    inbox: mpsc::UnboundedReceiver<RmJob>,
    inbox_open: bool,
    tms: Vec<mpsc::UnboundedSender<RmReply>>,
    pending: HashMap<i32, Pending>,
    /// MergedWarpMessage id → its sub-request ids, for MergeResultMessage (matched by position).
    wrappers: HashMap<i32, (Instant, Vec<i32>)>,
    template: BranchRegisterRequest,
    merged: bool,
    timeout: Duration,
    rec: Recorder,
    stop: watch::Receiver<bool>,
    jobs: Vec<RmJob>,
}

impl RmDriver {
    fn new(
        conn: Conn,
        inbox: mpsc::UnboundedReceiver<RmJob>,
        tms: Vec<mpsc::UnboundedSender<RmReply>>,
        config: &SeataConfig,
        window: Window,
        stop: watch::Receiver<bool>,
    ) -> RmDriver {
        RmDriver {
            conn,
            inbox,
            inbox_open: true,
            tms,
            pending: HashMap::new(),
            wrappers: HashMap::new(),
            template: BranchRegisterRequest {
                xid: String::new(),
                branch_type: BranchType::At,
                resource_id: RESOURCE_ID.to_owned(),
                lock_key: String::new(),
                application_data: String::new(),
            },
            merged: config.merged,
            timeout: config.request_timeout,
            rec: Recorder::new(window),
            stop,
            jobs: Vec::with_capacity(MAX_MERGED),
        }
    }

    async fn run(mut self) -> Stats {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                read = self.conn.reader.read_more() => RmEvent::Read(read),
                n = self.inbox.recv_many(&mut self.jobs, MAX_MERGED), if self.inbox_open => RmEvent::Jobs(n),
                _ = self.stop.changed() => RmEvent::Stop,
                _ = tick.tick() => RmEvent::Timer,
            };
            let now = Instant::now();
            match event {
                RmEvent::Read(Ok(0)) | RmEvent::Read(Err(_)) => break,
                RmEvent::Read(Ok(_)) => {
                    if let Err(error) = self.drain_frames(now) {
                        tracing_error(&error);
                        self.rec.error("protocol_error", now);
                        break;
                    }
                }
                RmEvent::Jobs(0) => self.inbox_open = false,
                RmEvent::Jobs(_) => self.send_jobs(now),
                RmEvent::Stop => break,
                RmEvent::Timer => self.prune(now),
            }
            if now.saturating_duration_since(self.conn.last_write) >= HEARTBEAT_AFTER {
                self.conn.queue_ping();
            }
            if self.conn.flush().await.is_err() {
                break;
            }
        }
        // Whatever is still waiting will not be answered on this connection.
        let now = Instant::now();
        for (_, p) in self.pending.drain() {
            if let Some(tm) = self.tms.get(p.tm as usize) {
                let _ = tm.send(RmReply {
                    slot: p.slot,
                    epoch: p.epoch,
                    result: RmResult::Lost,
                    sent: p.sent,
                    at: now,
                });
            }
        }
        self.rec.stats
    }

    fn send_jobs(&mut self, now: Instant) {
        if self.merged {
            let mut messages = Vec::with_capacity(self.jobs.len());
            let mut ids = Vec::with_capacity(self.jobs.len());
            for job in self.jobs.drain(..) {
                let id = self.conn.next_id();
                self.pending.insert(
                    id,
                    Pending {
                        tm: job.tm,
                        slot: job.slot,
                        epoch: job.epoch,
                        sent: now,
                    },
                );
                ids.push(id);
                messages.push(Message::BranchRegister(BranchRegisterRequest {
                    xid: job.xid,
                    lock_key: job.lock_key,
                    ..self.template.clone()
                }));
            }
            let wrapper = self.conn.next_id();
            let message = Message::MergedWarp(MergedWarpMessage {
                messages,
                msg_ids: Some(ids.clone()),
            });
            // Java sends the wrapper one-way (MSGTYPE 2) and matches answers by its id.
            self.conn.queue(MsgType::Oneway, wrapper, &message);
            self.wrappers.insert(wrapper, (now, ids));
        } else {
            for job in self.jobs.drain(..) {
                let id = self.conn.next_id();
                self.pending.insert(
                    id,
                    Pending {
                        tm: job.tm,
                        slot: job.slot,
                        epoch: job.epoch,
                        sent: now,
                    },
                );
                // Reuse the request's strings instead of building a new one per branch.
                self.template.xid = job.xid;
                self.template.lock_key = job.lock_key;
                let message = Message::BranchRegister(std::mem::replace(
                    &mut self.template,
                    empty_register(),
                ));
                self.conn.queue(MsgType::Request, id, &message);
                if let Message::BranchRegister(template) = message {
                    self.template = template;
                }
            }
        }
    }

    fn drain_frames(&mut self, now: Instant) -> anyhow::Result<()> {
        while let Some(inbound) = self.conn.next_inbound()? {
            match inbound {
                Inbound::Response { id, message } => match message {
                    Message::MergeResult(result) => {
                        if let Some((_, ids)) = self.wrappers.remove(&id) {
                            for (sub, answer) in ids.into_iter().zip(result.messages) {
                                self.answer(sub, answer, now);
                            }
                        }
                    }
                    Message::BatchResult(result) => {
                        for (sub, answer) in result.msg_ids.into_iter().zip(result.messages) {
                            self.answer(sub, answer, now);
                        }
                    }
                    // Plain answers, and the individual answers a 2.3+ TC gives to batches.
                    other => self.answer(id, other, now),
                },
                Inbound::Request { id, message } => {
                    if let Some((commit, answer)) = phase_two_answer(message) {
                        self.rec.phase2(commit, now);
                        self.conn.queue(MsgType::Response, id, &answer);
                    }
                }
                Inbound::Ping { id } => self.conn.queue_pong(id),
                Inbound::Pong => {}
            }
        }
        Ok(())
    }

    fn answer(&mut self, id: i32, message: Message, now: Instant) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let answer = match message {
            Message::BranchRegisterResponse(r) => register_answer(&r),
            _ => RegisterAnswer::Failed(TransactionExceptionCode::Unknown),
        };
        if let Some(tm) = self.tms.get(p.tm as usize) {
            let _ = tm.send(RmReply {
                slot: p.slot,
                epoch: p.epoch,
                result: RmResult::Answer(answer),
                sent: p.sent,
                at: now,
            });
        }
    }

    /// Forgets requests older than the timeout: their TM drivers have given up on them.
    fn prune(&mut self, now: Instant) {
        let timeout = self.timeout;
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.sent) < timeout);
        self.wrappers
            .retain(|_, (sent, _)| now.saturating_duration_since(*sent) < timeout);
    }
}

fn empty_register() -> BranchRegisterRequest {
    BranchRegisterRequest {
        xid: String::new(),
        branch_type: BranchType::At,
        resource_id: String::new(),
        lock_key: String::new(),
        application_data: String::new(),
    }
}

/// Maps a BranchRegisterResponse to what the transaction machine understands.
fn register_answer(r: &BranchRegisterResponse) -> RegisterAnswer {
    if r.result.is_success() {
        RegisterAnswer::Registered {
            branch_id: r.branch_id,
        }
    } else if r.result.exception_code == TransactionExceptionCode::LockKeyConflict {
        RegisterAnswer::Conflict
    } else {
        RegisterAnswer::Failed(r.result.exception_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::ResultInfo;

    #[test]
    fn each_tm_pairs_with_an_rm_on_its_own_node() {
        for nodes in 1..=4 {
            for rms in nodes..=3 * nodes + 1 {
                let mut used = vec![0usize; rms];
                for tm in 0..rms * 4 {
                    let rm = rm_of_tm(tm, nodes, rms);
                    assert!(rm < rms, "tm {tm} nodes {nodes} rms {rms} -> {rm}");
                    assert_eq!(rm % nodes, tm % nodes, "tm {tm} nodes {nodes} rms {rms}");
                    used[rm] += 1;
                }
                assert!(
                    used.iter().all(|&n| n > 0),
                    "an idle RM: nodes {nodes} rms {rms}: {used:?}"
                );
            }
        }
        assert_eq!(rm_of_tm(5, 1, 3), 2);
    }

    #[test]
    fn register_answers_distinguish_conflicts() {
        let ok = BranchRegisterResponse {
            result: ResultInfo::success(),
            branch_id: 9,
        };
        assert_eq!(
            register_answer(&ok),
            RegisterAnswer::Registered { branch_id: 9 }
        );
        let conflict = BranchRegisterResponse {
            result: ResultInfo::failure(TransactionExceptionCode::LockKeyConflict, "held"),
            branch_id: 0,
        };
        assert_eq!(register_answer(&conflict), RegisterAnswer::Conflict);
        let gone = BranchRegisterResponse {
            result: ResultInfo::failure(
                TransactionExceptionCode::GlobalTransactionNotExist,
                "gone",
            ),
            branch_id: 0,
        };
        assert_eq!(
            register_answer(&gone),
            RegisterAnswer::Failed(TransactionExceptionCode::GlobalTransactionNotExist)
        );
    }
}
