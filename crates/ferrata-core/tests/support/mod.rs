//! Scaffolding shared by the coordinator tests: a [`Harness`] that drives a [`Coordinator`] with
//! explicit times and reply tokens, keeps every persisted record (the "store"), remembers what
//! each registered branch looks like so tests can spell out the phase-2 requests they expect, and
//! small constructors for the effects tests compare against.

#![allow(dead_code)]

use std::collections::HashMap;

use ferrata_core::{
    BranchId, BranchOutcome, BranchRegistration, BranchRequest, BranchSession, Coordinator,
    CoordinatorConfig, Effect, GlobalSession, Record, Reply, ReplyToken, Request, RequestKind,
    Requester, SessionTable, TransactionId,
};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus, TransactionExceptionCode as Code};

/// A realistic epoch time (2023-11-14): the id generator seeds its counter from it.
pub const T0: i64 = 1_700_000_000_000;
pub const PREFIX: &str = "10.0.0.1:8091";
pub const APP: &str = "order-service";
pub const GROUP: &str = "default_tx_group";
pub const CLIENT: &str = "order-service:10.0.0.2:40001";
/// The AT resource every AT branch of the tests registers on.
pub const DB: &str = "jdbc:mysql://10.0.0.3:3306/orders";

/// Test configuration: our XID prefix, a non-zero worker id, undo-log cleanup off (so it does
/// not interleave with the effects under test), and the default retry policy.
pub fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        xid_prefix: PREFIX.to_owned(),
        worker_id: 5,
        undo_log_delete_period_ms: None,
        ..CoordinatorConfig::default()
    }
}

pub fn requester() -> Requester {
    Requester {
        application_id: APP.to_owned(),
        transaction_service_group: GROUP.to_owned(),
        client_id: CLIENT.to_owned(),
    }
}

/// A begun global transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub xid: String,
    pub id: TransactionId,
    pub begin_time: i64,
    pub timeout_ms: i32,
}

#[derive(Debug)]
pub struct Harness {
    pub tc: Coordinator,
    pub config: CoordinatorConfig,
    /// Every record the coordinator asked to persist, in order (what a store would hold).
    pub log: Vec<Record>,
    /// Every effect drained so far, in order, id reservations included.
    pub trace: Vec<Effect>,
    requests: HashMap<BranchId, BranchRequest>,
    next_token: ReplyToken,
    /// The time of the latest request sent with one, used for requests whose outcome does not
    /// depend on time (rollback, status, report, lock query).
    now: i64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(config())
    }

    pub fn with_config(config: CoordinatorConfig) -> Harness {
        Harness {
            tc: Coordinator::new(config.clone(), T0),
            config,
            log: Vec::new(),
            trace: Vec::new(),
            requests: HashMap::new(),
            next_token: 1_000,
            now: T0,
        }
    }

    /// A fresh reply token (tests that assert replies usually pick literal tokens instead).
    pub fn token(&mut self) -> ReplyToken {
        self.next_token += 1;
        self.next_token
    }

    /// Sends one request from [`requester`] at `now`.
    pub fn send(&mut self, now: i64, token: ReplyToken, request: Request) {
        self.now = self.now.max(now);
        self.tc.handle(now, token, &requester(), request);
    }

    /// Sends one request at the time of the latest timed request.
    pub fn send_untimed(&mut self, token: ReplyToken, request: Request) {
        self.send(self.now, token, request);
    }

    pub fn begin_request(&mut self, now: i64, token: ReplyToken, timeout_ms: i32, name: &str) {
        let transaction_name = name.to_owned();
        self.send(
            now,
            token,
            Request::Begin {
                timeout_ms,
                transaction_name,
            },
        );
    }

    pub fn branch_register(&mut self, token: ReplyToken, registration: BranchRegistration) {
        self.send_untimed(token, Request::BranchRegister(registration));
    }

    pub fn branch_report(
        &mut self,
        token: ReplyToken,
        xid: &str,
        branch_id: BranchId,
        status: BranchStatus,
        application_data: String,
    ) {
        let xid = xid.to_owned();
        self.send_untimed(
            token,
            Request::BranchReport {
                xid,
                branch_id,
                status,
                application_data,
            },
        );
    }

    pub fn commit(&mut self, now: i64, token: ReplyToken, xid: &str) {
        self.send(
            now,
            token,
            Request::GlobalCommit {
                xid: xid.to_owned(),
            },
        );
    }

    pub fn rollback(&mut self, token: ReplyToken, xid: &str) {
        self.send_untimed(
            token,
            Request::GlobalRollback {
                xid: xid.to_owned(),
            },
        );
    }

    pub fn status_request(&mut self, token: ReplyToken, xid: &str) {
        self.send_untimed(
            token,
            Request::GlobalStatus {
                xid: xid.to_owned(),
            },
        );
    }

    pub fn report(&mut self, now: i64, token: ReplyToken, xid: &str, status: Option<GlobalStatus>) {
        self.send(
            now,
            token,
            Request::GlobalReport {
                xid: xid.to_owned(),
                status,
            },
        );
    }

    pub fn lock_query(
        &mut self,
        token: ReplyToken,
        xid: &str,
        branch_type: BranchType,
        resource_id: &str,
        lock_key: &str,
    ) {
        let request = Request::LockQuery {
            xid: xid.to_owned(),
            branch_type,
            resource_id: resource_id.to_owned(),
            lock_key: lock_key.to_owned(),
        };
        self.send_untimed(token, request);
    }

    /// Drains the pending effects, keeping the persisted records in [`Harness::log`]. Id
    /// reservations (one per million ids, tested in `ids.rs`) are logged but not returned, so
    /// tests spell out only the effects of the behaviour under test.
    pub fn effects(&mut self) -> Vec<Effect> {
        let effects = self.raw_effects();
        effects
            .into_iter()
            .filter(|e| !matches!(e, Effect::Persist(Record::IdReserve { .. })))
            .collect()
    }

    /// Drains the pending effects unfiltered, keeping the persisted records in [`Harness::log`].
    pub fn raw_effects(&mut self) -> Vec<Effect> {
        let effects = self.tc.take_effects();
        for effect in &effects {
            if let Effect::Persist(record) = effect {
                self.log.push(record.clone());
            }
        }
        self.trace.extend(effects.iter().cloned());
        effects
    }

    /// Asserts that the coordinator has nothing pending.
    #[track_caller]
    pub fn assert_quiet(&mut self) {
        assert_eq!(self.effects(), Vec::<Effect>::new());
    }

    pub fn begin(&mut self, now: i64, timeout_ms: i32) -> Tx {
        self.begin_named(now, timeout_ms, "place-order")
    }

    /// GlobalBegin, asserting its exact effects: the session is persisted, then the XID returned.
    #[track_caller]
    pub fn begin_named(&mut self, now: i64, timeout_ms: i32, name: &str) -> Tx {
        let token = self.token();
        self.begin_request(now, token, timeout_ms, name);
        let effects = self.effects();
        let Some(Effect::Persist(Record::GlobalAdd(global))) = effects.first() else {
            panic!("begin must persist the session first: {effects:?}");
        };
        let tx = Tx {
            xid: global.xid.clone(),
            id: global.transaction_id,
            begin_time: now,
            timeout_ms,
        };
        let expected_global = GlobalSession {
            transaction_id: tx.id,
            xid: format!("{PREFIX}:{}", tx.id),
            status: GlobalStatus::Begin,
            application_id: APP.to_owned(),
            transaction_service_group: GROUP.to_owned(),
            transaction_name: name.to_owned(),
            timeout_ms,
            begin_time_ms: now,
            application_data: String::new(),
        };
        assert_eq!(
            effects,
            vec![
                Effect::Persist(Record::GlobalAdd(expected_global)),
                reply(
                    token,
                    Reply::Began {
                        xid: tx.xid.clone()
                    }
                ),
            ]
        );
        tx
    }

    /// BranchRegister; on success asserts `[Persist(BranchAdd), Reply BranchRegistered]` exactly,
    /// on failure asserts a single failed reply without a status and returns its code.
    #[track_caller]
    pub fn try_register(
        &mut self,
        tx: &Tx,
        branch_type: BranchType,
        resource_id: &str,
        lock_key: &str,
        application_data: &str,
    ) -> Result<BranchId, Code> {
        let token = self.token();
        self.branch_register(
            token,
            BranchRegistration {
                xid: tx.xid.clone(),
                branch_type,
                resource_id: resource_id.to_owned(),
                lock_key: lock_key.to_owned(),
                application_data: application_data.to_owned(),
            },
        );
        let effects = self.effects();
        match effects.as_slice() {
            [
                Effect::Reply {
                    token: t,
                    reply: Reply::Failed { request, error },
                },
            ] => {
                assert_eq!(*t, token);
                assert_eq!(
                    *request,
                    RequestKind::BranchRegister,
                    "answered as a registration"
                );
                assert!(!error.message.is_empty(), "a failure explains itself");
                Err(error.code)
            }
            [
                Effect::Persist(Record::BranchAdd(branch)),
                Effect::Reply { .. },
            ] => {
                let branch_id = branch.branch_id;
                let expected = BranchSession {
                    branch_id,
                    transaction_id: tx.id,
                    resource_id: resource_id.to_owned(),
                    lock_key: lock_key.to_owned(),
                    branch_type,
                    status: BranchStatus::Registered,
                    client_id: CLIENT.to_owned(),
                    application_data: application_data.to_owned(),
                };
                assert_eq!(
                    effects,
                    vec![
                        Effect::Persist(Record::BranchAdd(expected)),
                        reply(token, Reply::BranchRegistered { branch_id }),
                    ]
                );
                self.requests.insert(
                    branch_id,
                    BranchRequest {
                        transaction_id: tx.id,
                        xid: tx.xid.clone(),
                        branch_id,
                        branch_type,
                        resource_id: resource_id.to_owned(),
                        application_data: application_data.to_owned(),
                        client_id: CLIENT.to_owned(),
                    },
                );
                Ok(branch_id)
            }
            other => panic!("unexpected effects of a registration: {other:?}"),
        }
    }

    #[track_caller]
    pub fn register(
        &mut self,
        tx: &Tx,
        branch_type: BranchType,
        resource_id: &str,
        lock_key: &str,
        application_data: &str,
    ) -> BranchId {
        match self.try_register(tx, branch_type, resource_id, lock_key, application_data) {
            Ok(branch_id) => branch_id,
            Err(code) => panic!("registration into {} failed with {code:?}", tx.xid),
        }
    }

    /// An AT branch on [`DB`] holding the rows of `lock_key`.
    #[track_caller]
    pub fn at(&mut self, tx: &Tx, lock_key: &str) -> BranchId {
        self.register(tx, BranchType::At, DB, lock_key, "")
    }

    /// An AT registration on [`DB`] with application data; returns the code on failure.
    #[track_caller]
    pub fn try_at(
        &mut self,
        tx: &Tx,
        lock_key: &str,
        application_data: &str,
    ) -> Result<BranchId, Code> {
        self.try_register(tx, BranchType::At, DB, lock_key, application_data)
    }

    /// A TCC branch for the action `action`.
    #[track_caller]
    pub fn tcc(&mut self, tx: &Tx, action: &str) -> BranchId {
        self.register(tx, BranchType::Tcc, action, "", r#"{"actionContext":{}}"#)
    }

    /// The phase-2 request the coordinator should send for a registered branch.
    #[track_caller]
    pub fn request(&self, branch_id: BranchId) -> BranchRequest {
        self.requests
            .get(&branch_id)
            .cloned()
            .unwrap_or_else(|| panic!("branch {branch_id} was not registered by the harness"))
    }

    pub fn commit_of(&self, branch_id: BranchId) -> Effect {
        Effect::BranchCommit(self.request(branch_id))
    }

    pub fn rollback_of(&self, branch_id: BranchId) -> Effect {
        Effect::BranchRollback(self.request(branch_id))
    }

    /// The one commit request of a Saga transaction's pass, sent to the engine while the
    /// transaction is in `status`.
    pub fn saga_commit(&self, tx: &Tx, status: GlobalStatus) -> Effect {
        Effect::BranchCommit(saga_engine_request(tx, status))
    }

    /// The one rollback request of a Saga transaction's pass.
    pub fn saga_rollback(&self, tx: &Tx, status: GlobalStatus) -> Effect {
        Effect::BranchRollback(saga_engine_request(tx, status))
    }

    /// Records that a branch report replaced the application data the RM will get back.
    pub fn set_application_data(&mut self, branch_id: BranchId, data: &str) {
        if let Some(request) = self.requests.get_mut(&branch_id) {
            request.application_data = data.to_owned();
        }
    }

    /// GlobalLockQuery for the AT rows of `lock_key` on [`DB`], on behalf of `xid`.
    #[track_caller]
    pub fn lockable(&mut self, xid: &str, lock_key: &str) -> bool {
        self.lockable_as(xid, BranchType::At, lock_key)
    }

    #[track_caller]
    pub fn lockable_as(&mut self, xid: &str, branch_type: BranchType, lock_key: &str) -> bool {
        let token = self.token();
        self.lock_query(token, xid, branch_type, DB, lock_key);
        match self.effects().as_slice() {
            [
                Effect::Reply {
                    token: t,
                    reply: Reply::Lockable(lockable),
                },
            ] if *t == token => *lockable,
            other => panic!("lock query must answer once: {other:?}"),
        }
    }

    /// GlobalStatus as the TM would see it.
    #[track_caller]
    pub fn global_status(&mut self, tx: &Tx) -> GlobalStatus {
        let token = self.token();
        self.status_request(token, &tx.xid);
        match self.effects().as_slice() {
            [
                Effect::Reply {
                    token: t,
                    reply: Reply::GlobalStatus { status },
                },
            ] if *t == token => *status,
            other => panic!("global status must answer once: {other:?}"),
        }
    }

    /// What a store holding [`Harness::log`] gives back on recovery.
    pub fn replay(&self) -> SessionTable {
        table_of(&self.log)
    }

    /// Restarts the coordinator from the persisted records, as the server does after a crash.
    pub fn recover(&mut self, now: i64) {
        self.tc = Coordinator::recover(self.config.clone(), self.replay(), now);
    }

    /// The persisted records and the coordinator's own view describe the same sessions.
    #[track_caller]
    pub fn assert_log_matches_state(&self) {
        assert_eq!(self.replay(), table_of(&self.tc.snapshot_records()));
    }
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

pub fn table_of(records: &[Record]) -> SessionTable {
    let mut table = SessionTable::new();
    for record in records {
        table.apply(record);
    }
    table
}

pub fn reply(token: ReplyToken, reply: Reply) -> Effect {
    Effect::Reply { token, reply }
}

/// The answer to GlobalCommit `token`.
pub fn commit_reply(token: ReplyToken, status: GlobalStatus) -> Effect {
    reply(token, Reply::GlobalCommit { status })
}

/// The answer to GlobalRollback `token`.
pub fn rollback_reply(token: ReplyToken, status: GlobalStatus) -> Effect {
    reply(token, Reply::GlobalRollback { status })
}

/// The answer to GlobalStatus `token`.
pub fn status_reply(token: ReplyToken, status: GlobalStatus) -> Effect {
    reply(token, Reply::GlobalStatus { status })
}

/// The answer to GlobalReport `token`.
pub fn report_reply(token: ReplyToken, status: GlobalStatus) -> Effect {
    reply(token, Reply::GlobalReport { status })
}

pub fn update(tx: &Tx, status: GlobalStatus) -> Effect {
    Effect::Persist(Record::GlobalUpdate {
        transaction_id: tx.id,
        status,
    })
}

pub fn remove_global(tx: &Tx) -> Effect {
    Effect::Persist(Record::GlobalRemove {
        transaction_id: tx.id,
    })
}

pub fn remove_branch(tx: &Tx, branch_id: BranchId) -> Effect {
    Effect::Persist(Record::BranchRemove {
        transaction_id: tx.id,
        branch_id,
    })
}

pub fn answered(status: BranchStatus) -> BranchOutcome {
    BranchOutcome::Status(status)
}

/// The branch id of the Saga engine's request.
pub const SAGA_ENGINE: BranchId = BranchId(-1);

/// What the TC sends a Saga engine that began `tx` (from [`requester`]).
pub fn saga_engine_request(tx: &Tx, status: GlobalStatus) -> BranchRequest {
    BranchRequest {
        transaction_id: tx.id,
        xid: tx.xid.clone(),
        branch_id: SAGA_ENGINE,
        branch_type: BranchType::Saga,
        resource_id: format!("{APP}#{GROUP}"),
        application_data: format!("{status:?}"),
        client_id: String::new(),
    }
}

pub const COMMITTED: BranchOutcome = BranchOutcome::Status(BranchStatus::PhaseTwoCommitted);
pub const ROLLBACKED: BranchOutcome = BranchOutcome::Status(BranchStatus::PhaseTwoRollbacked);
pub const COMMIT_RETRYABLE: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoCommitFailedRetryable);
pub const COMMIT_UNRETRYABLE: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoCommitFailedUnretryable);
pub const ROLLBACK_RETRYABLE: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoRollbackFailedRetryable);
pub const ROLLBACK_UNRETRYABLE: BranchOutcome =
    BranchOutcome::Status(BranchStatus::PhaseTwoRollbackFailedUnretryable);
