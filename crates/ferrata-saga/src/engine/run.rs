//! One run of an instance: the forward walk through the states, the compensation walk back,
//! and the recovery entry points that rebuild a run from the rows.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::error::{
    CONNECTION_REFUSED, MAX_ERROR_MESSAGE_BYTES, SUB_MACHINE_FAILED, SUB_MACHINE_UNKNOWN,
    SagaError, ServiceError,
};
use super::values::{self, ValueError, context_root};
use super::{
    MAX_BUSINESS_KEY_CHARS, MAX_INSTANCE_ID_CHARS, MAX_LOOP_ELEMENTS, MAX_STEPS, SagaEngine,
    SagaOutcome, new_id, tc,
};
use crate::model::{ExecutionStatus, Loop, Retry, State, StateKind, StateMachine, Task};
use crate::store::{MachineInstanceRecord, StateInstanceRecord};

/// The context variable holding the error a Catch routed (as `{"kind", "message"}`).
pub const CURRENT_EXCEPTION: &str = "_current_exception";

/// The context variable a Loop state leaves: one object per iteration, with what that
/// iteration's Output mapped.
pub const LOOP_RESULT: &str = "loopResult";

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The mutable part of one instance while it runs.
pub(crate) struct Run<'e> {
    engine: &'e SagaEngine,
    machine: Arc<StateMachine>,
    record: MachineInstanceRecord,
    /// The global transaction's XID, bound while services run so the calls they make carry
    /// it (a participant they call joins the saga's transaction).
    xid: Option<String>,
    context: Map<String, Value>,
    states: Vec<StateInstanceRecord>,
    next_seq: u64,
    steps: usize,
}

/// What one execution of a task state came to.
struct TaskOutcome {
    status: ExecutionStatus,
    error: Option<ServiceError>,
}

/// Where a loop iteration stands: its element and index, as the task's context sees them.
#[derive(Clone)]
struct Iteration {
    index: usize,
    element: Value,
    index_name: String,
    element_name: String,
}

impl Iteration {
    /// Rebuilds the iteration a stored row ran (its input keeps index and element).
    fn of_row(row: &StateInstanceRecord, looped: Option<&Loop>) -> Option<Iteration> {
        let looped = looped?;
        let input: Value = serde_json::from_str(&row.input).ok()?;
        let stored = input.get("loop")?;
        Some(Iteration {
            index: usize::try_from(stored.get("index")?.as_u64()?).ok()?,
            element: stored.get("element").cloned().unwrap_or(Value::Null),
            index_name: looped.element_index_name.clone(),
            element_name: looped.element_variable_name.clone(),
        })
    }
}

pub(crate) async fn start(
    engine: &SagaEngine,
    name: &str,
    business_key: Option<&str>,
    params: Map<String, Value>,
) -> Result<SagaOutcome, SagaError> {
    let (machine_id, machine) = engine
        .machine_by_name(name)
        .ok_or_else(|| SagaError::UnknownMachine(name.to_owned()))?;
    if let Some(key) = business_key
        && key.chars().count() > MAX_BUSINESS_KEY_CHARS
    {
        return Err(SagaError::BadInput(format!(
            "business key {key:?} is longer than {MAX_BUSINESS_KEY_CHARS} characters (the saga tables' column)"
        )));
    }
    let transaction = match &engine.inner.client {
        Some(client) => Some(
            client
                .begin(
                    engine.inner.config.transaction_timeout,
                    &format!("$Saga_{name}"),
                )
                .await?,
        ),
        None => None,
    };
    let id = match &transaction {
        Some(tx) => tx.xid().to_owned(),
        None => new_id(),
    };
    let lock = engine.instance_lock(&id);
    let _held = lock.lock().await;
    let xid = transaction.as_ref().map(|tx| tx.xid().to_owned());
    let instance = NewInstance {
        id,
        parent_id: None,
        xid,
        business_key,
    };
    let mut run = match Run::begin(engine, machine, machine_id, instance, params).await {
        Ok(run) => run,
        Err(error) => {
            // Nothing ran: end the global transaction now rather than at its timeout.
            if let Some(tx) = transaction
                && let Err(rollback) = tx.rollback().await
            {
                tracing::warn!(%rollback, "saga: rollback after a failed start failed");
            }
            return Err(error);
        }
    };
    let start = run.machine.start_state.clone();
    let outcome = run.walk(Some(start)).await?;
    if let Some(tx) = transaction {
        // Without the report the transaction times out and the TC drives recovery through
        // branch -1, which reaches the same end.
        let xid = tx.xid().to_owned();
        if let Err(error) = tx.report(tc::report_status(&outcome)).await {
            tracing::warn!(%xid, %error, "saga: global report failed; the TC will recover it");
        }
    }
    Ok(outcome)
}

/// Takes the instance's lock (unless the caller holds it: a parent's run reaching its child)
/// and rebuilds the run from its rows, inside transaction `xid` when given.
async fn open<'e>(
    engine: &'e SagaEngine,
    id: &str,
    locked: bool,
    xid: Option<String>,
) -> Result<(Option<tokio::sync::OwnedMutexGuard<()>>, Run<'e>), SagaError> {
    let held = if locked {
        None
    } else {
        Some(engine.instance_lock(id).lock_owned().await)
    };
    let mut run = Run::load(engine, id).await?;
    if xid.is_some() {
        run.xid = xid;
    }
    Ok((held, run))
}

pub(crate) async fn forward(engine: &SagaEngine, id: &str) -> Result<SagaOutcome, SagaError> {
    forward_within(engine, id, false, None).await
}

/// [`forward`], for a sub-machine inside its parent's transaction `xid`.
async fn forward_within(
    engine: &SagaEngine,
    id: &str,
    locked: bool,
    xid: Option<String>,
) -> Result<SagaOutcome, SagaError> {
    let (_held, mut run) = open(engine, id, locked, xid).await?;
    if run.record.status == ExecutionStatus::Succeed || run.record.compensation_status.is_some() {
        return Ok(run.outcome());
    }
    match run.resume().await {
        Err(error) if error.is_deterministic() => {
            run.finish(ExecutionStatus::Failed, Some(error.to_string()))
                .await
        }
        other => other,
    }
}

pub(crate) async fn compensate(engine: &SagaEngine, id: &str) -> Result<SagaOutcome, SagaError> {
    compensate_within(engine, id, false, None).await
}

/// [`compensate`], for a sub-machine inside its parent's transaction `xid`.
async fn compensate_within(
    engine: &SagaEngine,
    id: &str,
    locked: bool,
    xid: Option<String>,
) -> Result<SagaOutcome, SagaError> {
    let (_held, mut run) = open(engine, id, locked, xid).await?;
    if run.record.compensation_status == Some(ExecutionStatus::Succeed) {
        return Ok(run.outcome());
    }
    let status = run.compensate_all().await?;
    run.record.compensation_status = Some(status);
    if run.record.status == ExecutionStatus::Running {
        run.record.status = ExecutionStatus::Unknown;
    }
    run.record.running = false;
    run.save_machine().await?;
    Ok(run.outcome())
}

/// How a forward walk ends when a task fails without a Catch: the machine's status and error.
struct End(ExecutionStatus, Option<String>);

/// Who a new instance is: its id, the parent running it (sub-machines), the global
/// transaction it runs in, and its business key.
struct NewInstance<'a> {
    id: String,
    parent_id: Option<String>,
    xid: Option<String>,
    business_key: Option<&'a str>,
}

impl<'e> Run<'e> {
    async fn begin(
        engine: &'e SagaEngine,
        machine: Arc<StateMachine>,
        machine_id: String,
        instance: NewInstance<'_>,
        params: Map<String, Value>,
    ) -> Result<Run<'e>, SagaError> {
        let NewInstance {
            id,
            parent_id,
            xid,
            business_key,
        } = instance;
        let record = MachineInstanceRecord {
            id,
            machine_id,
            tenant_id: engine.inner.config.tenant_id.clone(),
            parent_id,
            business_key: business_key.map(str::to_owned),
            start_params: Value::Object(params.clone()).to_string(),
            end_params: None,
            status: ExecutionStatus::Running,
            compensation_status: None,
            running: true,
            error: None,
        };
        if machine.persist {
            engine.inner.store.insert_machine(&record).await?;
        }
        Ok(Run {
            engine,
            machine,
            record,
            xid,
            context: params,
            states: Vec::new(),
            next_seq: 1,
            steps: 0,
        })
    }

    /// Rebuilds a run from the rows: the definition it started with, and the context as the
    /// start parameters plus the Output of every state that succeeded, in order.
    async fn load(engine: &'e SagaEngine, id: &str) -> Result<Run<'e>, SagaError> {
        let store = &engine.inner.store;
        let record = store
            .machine(id)
            .await?
            .ok_or_else(|| SagaError::UnknownInstance(id.to_owned()))?;
        let machine = definition_of(engine, &record).await?;
        let states = store.states(id).await?;
        let context = match serde_json::from_str::<Value>(&record.start_params) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let next_seq = states
            .iter()
            .filter_map(|s| s.id.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        // A top-level instance's id is its XID; a sub-machine's run gets its parent's.
        let xid = (engine.inner.client.is_some() && record.parent_id.is_none())
            .then(|| record.id.clone());
        let mut run = Run {
            engine,
            machine,
            record,
            xid,
            context,
            states,
            next_seq,
            steps: 0,
        };
        run.replay_outputs()?;
        Ok(run)
    }

    fn replay_outputs(&mut self) -> Result<(), SagaError> {
        let superseded = self.superseded();
        let rows: Vec<StateInstanceRecord> = self
            .states
            .iter()
            .filter(|s| {
                s.compensated_for.is_none()
                    && s.status == ExecutionStatus::Succeed
                    && !superseded.contains(&s.id)
            })
            .cloned()
            .collect();
        // The newest visit of a Loop state: its iterations' mapped Outputs by index.
        let mut visit: Option<(String, std::collections::BTreeMap<usize, Value>)> = None;
        for row in rows {
            let state = self.state(&row.name)?.clone();
            let Some(task) = state.kind.task() else {
                continue;
            };
            let output = row
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null);
            let mapped = self.map_output(&state, task, &output)?;
            let Some(index) = task.loop_.as_ref().and_then(|_| loop_index(&row.input)) else {
                self.context.extend(mapped);
                visit = None;
                continue;
            };
            let results = match &mut visit {
                Some((name, results)) if *name == row.name => results,
                _ => &mut visit.insert((row.name.clone(), Default::default())).1,
            };
            results.insert(index, Value::Object(mapped));
            let len = results.keys().next_back().map_or(0, |last| last + 1);
            let list: Vec<Value> = (0..len)
                .map(|i| {
                    results
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new()))
                })
                .collect();
            self.context
                .insert(LOOP_RESULT.to_owned(), Value::Array(list));
        }
        Ok(())
    }

    fn state(&self, name: &str) -> Result<&State, SagaError> {
        self.machine
            .state(name)
            .ok_or_else(|| self.definition_error(name, "no such state"))
    }

    fn definition_error(&self, state: &str, message: impl Into<String>) -> SagaError {
        SagaError::Definition {
            machine: self.machine.name.clone(),
            state: state.to_owned(),
            message: message.into(),
        }
    }

    fn value_error(&self, state: &str, error: ValueError) -> SagaError {
        match error {
            ValueError::Expression(source) => SagaError::Expression {
                machine: self.machine.name.clone(),
                state: state.to_owned(),
                source,
            },
            ValueError::Reference(message) => self.definition_error(state, message),
        }
    }

    fn outcome(&self) -> SagaOutcome {
        SagaOutcome {
            instance_id: self.record.id.clone(),
            status: self.record.status,
            compensation_status: self.record.compensation_status,
            context: self.context.clone(),
            error: self.record.error.clone(),
        }
    }

    fn persist(&self) -> bool {
        self.machine.persist
    }

    async fn save_machine(&mut self) -> Result<(), SagaError> {
        self.record.end_params = Some(Value::Object(self.context.clone()).to_string());
        if self.persist() {
            self.engine.inner.store.update_machine(&self.record).await?;
        }
        Ok(())
    }

    async fn set_machine_status(
        &mut self,
        status: ExecutionStatus,
        running: bool,
    ) -> Result<(), SagaError> {
        self.record.status = status;
        self.record.running = running;
        self.save_machine().await
    }

    async fn finish(
        &mut self,
        status: ExecutionStatus,
        error: Option<String>,
    ) -> Result<SagaOutcome, SagaError> {
        self.record.status = status;
        self.record.running = false;
        if error.is_some() {
            self.record.error = error;
        }
        self.save_machine().await?;
        Ok(self.outcome())
    }

    fn count_step(&mut self, state: &str) -> Result<(), SagaError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.definition_error(
                state,
                format!("more than {MAX_STEPS} steps in one run (a Choice loop?)"),
            ));
        }
        Ok(())
    }

    /// Forward recovery: re-runs the step where it stopped (a failed or unknown execution, or a
    /// Loop with iterations left) and walks on from there.
    async fn resume(&mut self) -> Result<SagaOutcome, SagaError> {
        let last = self
            .states
            .iter()
            .rev()
            .find(|s| s.compensated_for.is_none())
            .cloned();
        let rerun = match &last {
            None => None,
            Some(row) => {
                let state = self.state(&row.name)?;
                let looped = state.kind.task().is_some_and(|t| t.loop_.is_some());
                (row.status != ExecutionStatus::Succeed || looped).then(|| row.clone())
            }
        };
        let next = match (last, rerun) {
            (None, _) => Some(self.machine.start_state.clone()),
            (Some(row), None) => {
                let state = self.state(&row.name)?;
                state.kind.task().and_then(|t| t.next.clone())
            }
            (Some(_), Some(row)) => {
                self.set_machine_status(ExecutionStatus::Running, true)
                    .await?;
                let state = self.state(&row.name)?.clone();
                let outcome = self.execute_task(&state, Some(&row)).await?;
                match self.route_after_task(&state, outcome) {
                    Ok(next) => next,
                    Err(end) => return self.finish(end.0, end.1).await,
                }
            }
        };
        if next.is_some() {
            self.set_machine_status(ExecutionStatus::Running, true)
                .await?;
        }
        self.forward_from(next).await
    }

    /// [`Run::forward_from`], ending the instance as failed when the machine itself is at
    /// fault (an expression, a definition, a limit): running it again would fail again.
    async fn walk(&mut self, from: Option<String>) -> Result<SagaOutcome, SagaError> {
        match self.forward_from(from).await {
            Err(error) if error.is_deterministic() => {
                self.finish(ExecutionStatus::Failed, Some(error.to_string()))
                    .await
            }
            other => other,
        }
    }

    /// Walks forward from `current` to a terminal state (or a task without Next).
    async fn forward_from(
        &mut self,
        mut current: Option<String>,
    ) -> Result<SagaOutcome, SagaError> {
        while let Some(name) = current {
            self.count_step(&name)?;
            let state = self.state(&name)?.clone();
            current = match &state.kind {
                StateKind::ServiceTask(_)
                | StateKind::ScriptTask(_)
                | StateKind::SubStateMachine(_)
                | StateKind::CompensateSubMachine(_) => {
                    let outcome = self.execute_task(&state, None).await?;
                    match self.route_after_task(&state, outcome) {
                        Ok(next) => next,
                        Err(End(status, error)) => return self.finish(status, error).await,
                    }
                }
                StateKind::Choice(choice) => {
                    let root = context_root(&self.context);
                    let mut next = None;
                    for branch in &choice.choices {
                        let holds = values::condition(&branch.expression, &root)
                            .map_err(|e| self.value_error(&name, e))?;
                        if holds {
                            next = Some(branch.next.clone());
                            break;
                        }
                    }
                    match next.or_else(|| choice.default.clone()) {
                        Some(next) => Some(next),
                        None => {
                            let error =
                                format!("Choice {name:?}: no choice matched and no Default");
                            return self.finish(ExecutionStatus::Failed, Some(error)).await;
                        }
                    }
                }
                StateKind::CompensationTrigger { next } => {
                    let status = self.compensate_all().await?;
                    self.record.compensation_status = Some(status);
                    self.save_machine().await?;
                    if status != ExecutionStatus::Succeed {
                        // Compensation is unfinished: the machine's outcome is unknown until
                        // the TC's rollback retries complete it.
                        return self.finish(ExecutionStatus::Unknown, None).await;
                    }
                    next.clone()
                }
                StateKind::Succeed => return self.finish(ExecutionStatus::Succeed, None).await,
                StateKind::Fail(fail) => {
                    let error = match (&fail.error_code, &fail.message) {
                        (Some(code), Some(message)) => format!("{code}: {message}"),
                        (Some(code), None) => code.clone(),
                        (None, Some(message)) => message.clone(),
                        (None, None) => format!("Fail state {name:?}"),
                    };
                    return self.finish(ExecutionStatus::Failed, Some(error)).await;
                }
            };
        }
        let status = if self.record.compensation_status.is_some() {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Succeed
        };
        self.finish(status, None).await
    }

    /// After a task: its Next, a Catch's Next, or the end of the machine.
    fn route_after_task(
        &mut self,
        state: &State,
        outcome: TaskOutcome,
    ) -> Result<Option<String>, End> {
        let task = state.kind.task().cloned().unwrap_or_default();
        if outcome.status == ExecutionStatus::Succeed {
            return Ok(task.next);
        }
        if let Some(error) = &outcome.error
            && let Some(catch) = task
                .catches
                .iter()
                .find(|c| error.matches_any(&c.exceptions))
        {
            self.context.insert(
                CURRENT_EXCEPTION.to_owned(),
                json!({ "kind": error.kind, "message": error.message }),
            );
            return Ok(Some(catch.next.clone()));
        }
        let error = match &outcome.error {
            Some(error) => format!("state {:?}: {error}", state.name),
            None => format!("state {:?} ended {}", state.name, outcome.status.code()),
        };
        Err(End(outcome.status, Some(error)))
    }

    /// Runs a task state (once, or once per element for a Loop), with its Retry.
    /// `retried` is the row of an earlier execution this one re-runs (forward recovery).
    async fn execute_task(
        &mut self,
        state: &State,
        retried: Option<&StateInstanceRecord>,
    ) -> Result<TaskOutcome, SagaError> {
        let task = state
            .kind
            .task()
            .cloned()
            .ok_or_else(|| self.definition_error(&state.name, "not a task"))?;
        let Some(looped) = task.loop_.clone() else {
            return self.execute_once(state, &task, None, retried, None).await;
        };
        self.execute_loop(state, &task, &looped, retried).await
    }

    async fn execute_loop(
        &mut self,
        state: &State,
        task: &Task,
        looped: &Loop,
        retried: Option<&StateInstanceRecord>,
    ) -> Result<TaskOutcome, SagaError> {
        let root = context_root(&self.context);
        let collection = values::evaluate_template(
            &Value::String(collection_reference(&looped.collection)),
            &root,
            &mut || new_id(),
        )
        .map_err(|e| self.value_error(&state.name, e))?;
        let Value::Array(elements) = collection else {
            return Err(self.definition_error(
                &state.name,
                format!("Loop Collection {:?} is not a list", looped.collection),
            ));
        };
        if elements.len() > MAX_LOOP_ELEMENTS {
            return Err(self.definition_error(
                &state.name,
                format!(
                    "Loop over {} elements (at most {MAX_LOOP_ELEMENTS})",
                    elements.len()
                ),
            ));
        }
        // Forward recovery resumes this visit of the loop: its iterations that succeeded are
        // not run again (their Output is kept), the others re-run their last execution. A
        // fresh visit (a Choice routing back here) starts over.
        let visit: Vec<StateInstanceRecord> = if retried.is_some() {
            self.current_visit(&state.name)
        } else {
            Vec::new()
        };
        let total = elements.len();
        let mut results: Vec<Value> = vec![Value::Object(Map::new()); total];
        let mut done: HashSet<usize> = HashSet::new();
        for row in visit
            .iter()
            .filter(|r| r.status == ExecutionStatus::Succeed)
        {
            let Some(index) = loop_index(&row.input) else {
                continue;
            };
            let output = row
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null);
            if let Some(slot) = results.get_mut(index) {
                *slot = Value::Object(self.map_output(state, task, &output)?);
            }
            done.insert(index);
        }
        let mut completed = done.len();
        let mut failure: Option<TaskOutcome> = None;
        // Service calls of one batch run at once; scripts and sub-machines one by one.
        let batch_size = match state.kind {
            StateKind::ServiceTask(_) => usize::try_from(looped.parallel).unwrap_or(1).max(1),
            _ => 1,
        };
        let mut pending = elements
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !done.contains(index))
            .peekable();
        while pending.peek().is_some() {
            if completed > 0 {
                let counters = json!({
                    "nrOfInstances": total,
                    "nrOfActiveInstances": 0,
                    "nrOfCompletedInstances": completed,
                });
                let complete = values::condition(&looped.completion_condition, &counters)
                    .map_err(|e| self.value_error(&state.name, e))?;
                if complete {
                    break;
                }
            }
            let batch: Vec<(Iteration, Option<StateInstanceRecord>)> = pending
                .by_ref()
                .take(batch_size)
                .map(|(index, element)| {
                    let iteration = Iteration {
                        index,
                        element,
                        index_name: looped.element_index_name.clone(),
                        element_name: looped.element_variable_name.clone(),
                    };
                    let earlier = visit
                        .iter()
                        .rev()
                        .find(|r| loop_index(&r.input) == Some(index))
                        .cloned();
                    (iteration, earlier)
                })
                .collect();
            let outcomes = if batch.len() == 1 {
                let mut outcomes = Vec::new();
                for (iteration, earlier) in batch {
                    let mut mapped = Map::new();
                    let outcome = self
                        .execute_once(
                            state,
                            task,
                            Some(&iteration),
                            earlier.as_ref(),
                            Some(&mut mapped),
                        )
                        .await?;
                    outcomes.push((iteration.index, outcome, mapped));
                }
                outcomes
            } else {
                self.execute_concurrently(state, task, batch).await?
            };
            for (index, outcome, mapped) in outcomes {
                if outcome.status != ExecutionStatus::Succeed {
                    failure.get_or_insert(outcome);
                    continue;
                }
                if let Some(slot) = results.get_mut(index) {
                    *slot = Value::Object(mapped);
                }
                completed += 1;
            }
            if failure.is_some() {
                break;
            }
        }
        self.context
            .insert(LOOP_RESULT.to_owned(), Value::Array(results));
        Ok(failure.unwrap_or(TaskOutcome {
            status: ExecutionStatus::Succeed,
            error: None,
        }))
    }

    /// The rows of the newest visit of state `name`: the trailing forward executions of it,
    /// back to the first execution of another state.
    fn current_visit(&self, name: &str) -> Vec<StateInstanceRecord> {
        let mut rows: Vec<StateInstanceRecord> = self
            .states
            .iter()
            .rev()
            .filter(|s| s.compensated_for.is_none())
            .take_while(|s| s.name == name)
            .cloned()
            .collect();
        rows.reverse();
        rows
    }

    /// One execution of a task, its retries included, recorded as one state row.
    /// `loop_output` receives the Output of a loop iteration instead of the context.
    async fn execute_once(
        &mut self,
        state: &State,
        task: &Task,
        iteration: Option<&Iteration>,
        retried: Option<&StateInstanceRecord>,
        loop_output: Option<&mut Map<String, Value>>,
    ) -> Result<TaskOutcome, SagaError> {
        let (args, mut row) = self.start_row(state, task, iteration, retried).await?;

        let (status, mapped, error) = self
            .call_and_record(state, task, &args, &mut row, iteration)
            .await?;
        match loop_output {
            Some(target) => target.extend(mapped),
            None => self.context.extend(mapped),
        }
        Ok(TaskOutcome { status, error })
    }

    /// Evaluates a task's Input and writes its row as running: a new row, or the retried one
    /// updated in place under `IsRetryPersistModeUpdate`.
    async fn start_row(
        &mut self,
        state: &State,
        task: &Task,
        iteration: Option<&Iteration>,
        retried: Option<&StateInstanceRecord>,
    ) -> Result<(Vec<Value>, StateInstanceRecord), SagaError> {
        let root = self.task_root(iteration);
        let args = task
            .input
            .iter()
            .map(|template| values::evaluate_template(template, &root, &mut || new_id()))
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| self.value_error(&state.name, e))?;
        let mut input = json!({ "args": args });
        if let Some(it) = iteration {
            input["loop"] = json!({ "index": it.index, "element": it.element });
        }
        let update_in_place = retried.is_some() && self.machine.retry_persist_mode_update;
        let row = match (update_in_place, retried) {
            (true, Some(earlier)) => StateInstanceRecord {
                status: ExecutionStatus::Running,
                input: input.to_string(),
                output: None,
                error: None,
                ..earlier.clone()
            },
            _ => self.new_row(
                state,
                task,
                input.to_string(),
                retried.map(|r| r.id.clone()),
                None,
            ),
        };
        self.write_row(&row, !update_in_place).await?;
        Ok((args, row))
    }

    /// Calls the task with its Retry rule, decides the status, writes the row's end; returns
    /// the status, the mapped Output (empty unless it succeeded) and the error.
    async fn call_and_record(
        &mut self,
        state: &State,
        task: &Task,
        args: &[Value],
        row: &mut StateInstanceRecord,
        iteration: Option<&Iteration>,
    ) -> Result<(ExecutionStatus, Map<String, Value>, Option<ServiceError>), SagaError> {
        let mut attempt: u32 = 0;
        let result = loop {
            let result = self.invoke(state, args, row, iteration).await?;
            let Err(error) = &result else {
                break result;
            };
            let Some(wait) = retry_wait(&task.retry, error, attempt) else {
                break result;
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        };
        self.record_result(state, task, row, result).await
    }

    /// Decides a finished call's status, maps its Output, and writes the row's end.
    async fn record_result(
        &mut self,
        state: &State,
        task: &Task,
        row: &mut StateInstanceRecord,
        result: Result<Value, ServiceError>,
    ) -> Result<(ExecutionStatus, Map<String, Value>, Option<ServiceError>), SagaError> {
        let output = result.as_ref().ok();
        let status = self.decide_status(state, task, output, result.as_ref().err())?;
        let mapped = if status == ExecutionStatus::Succeed {
            self.map_output(state, task, output.unwrap_or(&Value::Null))?
        } else {
            Map::new()
        };
        row.status = status;
        row.output = output.map(|o| o.to_string());
        row.error = result.as_ref().err().map(|e| {
            let mut message = e.message.as_str();
            if message.len() > MAX_ERROR_MESSAGE_BYTES {
                let mut end = MAX_ERROR_MESSAGE_BYTES;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message = &message[..end];
            }
            json!({ "kind": e.kind, "message": message }).to_string()
        });
        self.write_row(row, false).await?;
        Ok((status, mapped, result.err()))
    }

    /// Runs a batch of loop iterations of a ServiceTask at once: rows written in index order,
    /// the calls (each with its Retry rule) concurrent, their ends written in index order.
    async fn execute_concurrently(
        &mut self,
        state: &State,
        task: &Task,
        batch: Vec<(Iteration, Option<StateInstanceRecord>)>,
    ) -> Result<Vec<(usize, TaskOutcome, Map<String, Value>)>, SagaError> {
        let StateKind::ServiceTask(service) = &state.kind else {
            return Err(self.definition_error(&state.name, "not a service task"));
        };
        let call = self
            .engine
            .service(&service.service_name, &service.service_method);
        let mut started = Vec::with_capacity(batch.len());
        for (iteration, earlier) in batch {
            let (args, row) = self
                .start_row(state, task, Some(&iteration), earlier.as_ref())
                .await?;
            started.push((iteration.index, args, row));
        }
        let mut calls = tokio::task::JoinSet::new();
        for (slot, (_, args, _)) in started.iter().enumerate() {
            let call = call.clone();
            let args = args.clone();
            let xid = self.xid.clone();
            let retries = task.retry.clone();
            let name = format!("{}.{}", service.service_name, service.service_method);
            calls.spawn(async move {
                let mut attempt: u32 = 0;
                let result = loop {
                    let once = call_service(call.clone(), &name, xid.clone(), args.clone()).await;
                    let Err(error) = &once else {
                        break once;
                    };
                    let Some(wait) = retry_wait(&retries, error, attempt) else {
                        break once;
                    };
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                };
                (slot, result)
            });
        }
        let mut results: Vec<Option<Result<Value, ServiceError>>> = vec![None; started.len()];
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((slot, result)) => {
                    if let Some(place) = results.get_mut(slot) {
                        *place = Some(result);
                    }
                }
                // A panicking service: its slot stays empty and counts as an error below.
                Err(error) => tracing::warn!(%error, "saga: a loop iteration's service panicked"),
            }
        }
        let mut outcomes = Vec::with_capacity(started.len());
        for ((index, _, mut row), result) in started.into_iter().zip(results) {
            let result = result.unwrap_or_else(|| {
                Err(ServiceError::new(
                    "ferrata.saga.Panic",
                    "the service panicked",
                ))
            });
            let (status, mapped, error) = self.record_result(state, task, &mut row, result).await?;
            outcomes.push((index, TaskOutcome { status, error }, mapped));
        }
        Ok(outcomes)
    }

    /// The root of a task's Input: the context, plus the loop variables in an iteration.
    fn task_root(&self, iteration: Option<&Iteration>) -> Value {
        let mut root = self.context.clone();
        if let Some(it) = iteration {
            root.insert(it.index_name.clone(), json!(it.index));
            root.insert(it.element_name.clone(), it.element.clone());
        }
        Value::Object(root)
    }

    /// Calls what the task stands for once: the service's result or error (outer `Err`: the
    /// engine itself failed).
    fn invoke<'a>(
        &'a mut self,
        state: &'a State,
        args: &'a [Value],
        row: &'a StateInstanceRecord,
        iteration: Option<&'a Iteration>,
    ) -> BoxFuture<'a, Result<Result<Value, ServiceError>, SagaError>> {
        Box::pin(async move {
            let result = match &state.kind {
                StateKind::ServiceTask(service) => {
                    let call = self
                        .engine
                        .service(&service.service_name, &service.service_method);
                    let name = format!("{}.{}", service.service_name, service.service_method);
                    call_service(call, &name, self.xid.clone(), args.to_vec()).await
                }
                StateKind::ScriptTask(script) => {
                    // The script sees the context, the entries of an Input map (as Seata binds
                    // them) and the whole argument list as `args`.
                    let mut root = self.task_root(iteration);
                    if let Value::Object(map) = &mut root {
                        if let Some(Value::Object(bindings)) = args.first() {
                            map.extend(bindings.clone());
                        }
                        map.insert("args".to_owned(), Value::Array(args.to_vec()));
                    }
                    crate::expr::Expression::parse(&script.script_content)
                        .and_then(|e| e.evaluate(&root))
                        .map_err(|e| ServiceError::new("ferrata.saga.ScriptError", e.to_string()))
                }
                StateKind::SubStateMachine(sub) => {
                    self.run_sub_machine(&sub.state_machine_name, args, row)
                        .await?
                }
                StateKind::CompensateSubMachine(_) => {
                    // Reached forward only if a machine routes to it; it compensates nothing.
                    Ok(Value::Null)
                }
                _ => return Err(self.definition_error(&state.name, "not a task")),
            };
            Ok(result)
        })
    }

    /// Runs a sub-machine as one step, in the same global transaction: its instance id is the
    /// parent's id and the first row of the calling step (so forward recovery finds it again).
    async fn run_sub_machine(
        &mut self,
        name: &str,
        args: &[Value],
        row: &StateInstanceRecord,
    ) -> Result<Result<Value, ServiceError>, SagaError> {
        let first_row = self.retry_root(row);
        let child_id = format!("{}:{}", self.record.id, first_row);
        if child_id.len() > MAX_INSTANCE_ID_CHARS {
            return Err(self.definition_error(
                &row.name,
                format!(
                    "sub-machines nested too deep: instance id {child_id:?} is longer than {MAX_INSTANCE_ID_CHARS}"
                ),
            ));
        }
        let existing = self.engine.inner.store.machine(&child_id).await?;
        let outcome = match existing {
            Some(_) => {
                Box::pin(forward_within(
                    self.engine,
                    &child_id,
                    true,
                    self.xid.clone(),
                ))
                .await?
            }
            None => {
                let (machine_id, machine) = self
                    .engine
                    .machine_by_name(name)
                    .ok_or_else(|| SagaError::UnknownMachine(name.to_owned()))?;
                let params = match args.first() {
                    Some(Value::Object(map)) => map.clone(),
                    _ => self.context.clone(),
                };
                let instance = NewInstance {
                    id: child_id,
                    parent_id: Some(self.record.id.clone()),
                    xid: self.xid.clone(),
                    business_key: None,
                };
                let mut child =
                    Run::begin(self.engine, machine, machine_id, instance, params).await?;
                let start = child.machine.start_state.clone();
                Box::pin(child.walk(Some(start))).await?
            }
        };
        // Seata's rule: a child that failed, or was compensated, leaves nothing to undo; one
        // that ended unknown (or whose compensation did not finish) is owed a compensation.
        let kind = match (outcome.status, outcome.compensation_status) {
            (ExecutionStatus::Succeed, None) => return Ok(Ok(Value::Object(outcome.context))),
            (_, Some(ExecutionStatus::Succeed)) | (ExecutionStatus::Failed, None) => {
                SUB_MACHINE_FAILED
            }
            _ => SUB_MACHINE_UNKNOWN,
        };
        Ok(Err(ServiceError::new(
            kind,
            format!(
                "sub-machine {name:?} ended {}{}",
                outcome.status.code(),
                outcome.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        )))
    }

    /// The id of the first execution in a chain of retries.
    fn retry_root(&self, row: &StateInstanceRecord) -> String {
        let mut id = row.retried_for.clone().unwrap_or_else(|| row.id.clone());
        for _ in 0..self.states.len() {
            match self
                .states
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| s.retried_for.clone())
            {
                Some(earlier) => id = earlier,
                None => break,
            }
        }
        id
    }

    /// Seata's status rule: the first Status condition that holds; without one, success unless
    /// the call failed, and then unknown for states that change data.
    fn decide_status(
        &self,
        state: &State,
        task: &Task,
        output: Option<&Value>,
        error: Option<&ServiceError>,
    ) -> Result<ExecutionStatus, SagaError> {
        let changes_data = task.for_update || task.for_compensation;
        if let (StateKind::SubStateMachine(_), Some(error), true) =
            (&state.kind, error, task.status.is_empty())
        {
            return Ok(match error.kind.as_str() {
                SUB_MACHINE_FAILED => ExecutionStatus::Failed,
                _ => ExecutionStatus::Unknown,
            });
        }
        if !task.status.is_empty() {
            for (condition, status) in &task.status {
                if values::status_condition(condition, output, error)
                    .map_err(|e| self.value_error(&state.name, e))?
                {
                    return Ok(*status);
                }
            }
            return Ok(if changes_data {
                ExecutionStatus::Unknown
            } else {
                ExecutionStatus::Failed
            });
        }
        Ok(match error {
            None => ExecutionStatus::Succeed,
            Some(e) if e.kind == CONNECTION_REFUSED => ExecutionStatus::Failed,
            Some(_) if changes_data => ExecutionStatus::Unknown,
            Some(_) => ExecutionStatus::Failed,
        })
    }

    fn map_output(
        &self,
        state: &State,
        task: &Task,
        output: &Value,
    ) -> Result<Map<String, Value>, SagaError> {
        let mut mapped = Map::new();
        for (name, template) in &task.output {
            let value = values::evaluate_template(template, output, &mut || new_id())
                .map_err(|e| self.value_error(&state.name, e))?;
            mapped.insert(name.clone(), value);
        }
        Ok(mapped)
    }

    fn new_row(
        &mut self,
        state: &State,
        task: &Task,
        input: String,
        retried_for: Option<String>,
        compensated_for: Option<String>,
    ) -> StateInstanceRecord {
        let id = format!("{:08}", self.next_seq);
        self.next_seq += 1;
        let (service_name, service_method, service_type) = match &state.kind {
            StateKind::ServiceTask(s) => (
                Some(s.service_name.clone()),
                Some(s.service_method.clone()),
                s.service_type.clone(),
            ),
            StateKind::SubStateMachine(s) => (Some(s.state_machine_name.clone()), None, None),
            _ => (None, None, None),
        };
        StateInstanceRecord {
            id,
            machine_instance_id: self.record.id.clone(),
            name: state.name.clone(),
            state_type: state.kind.type_name().to_owned(),
            service_name,
            service_method,
            service_type,
            business_key: self.record.business_key.clone(),
            compensated_for,
            retried_for,
            for_update: task.for_update,
            input,
            output: None,
            status: ExecutionStatus::Running,
            error: None,
        }
    }

    /// Inserts (`insert`) or updates a row, and keeps the in-memory copy in step.
    async fn write_row(
        &mut self,
        row: &StateInstanceRecord,
        insert: bool,
    ) -> Result<(), SagaError> {
        // Every execution is written, whatever a state's IsPersist says: recovery rebuilds the
        // context from these rows, so a step left out would be missing from it.
        if self.persist() {
            let store = &self.engine.inner.store;
            if insert {
                store.insert_state(row).await?;
            } else {
                store.update_state(row).await?;
            }
        }
        match self.states.iter_mut().find(|s| s.id == row.id) {
            Some(existing) => *existing = row.clone(),
            None => self.states.push(row.clone()),
        }
        Ok(())
    }

    /// Ids of executions that a later forward-recovery run replaced.
    fn superseded(&self) -> HashSet<String> {
        self.states
            .iter()
            .filter_map(|s| s.retried_for.clone())
            .collect()
    }

    /// Compensates, newest first, every forward execution that may have changed something and
    /// is not compensated yet. Stops at the first compensation that does not succeed.
    async fn compensate_all(&mut self) -> Result<ExecutionStatus, SagaError> {
        self.record.compensation_status = Some(ExecutionStatus::Running);
        self.save_machine().await?;
        let superseded = self.superseded();
        let compensated: HashSet<String> = self
            .states
            .iter()
            .filter(|s| s.status == ExecutionStatus::Succeed)
            .filter_map(|s| s.compensated_for.clone())
            .collect();
        let pending: Vec<StateInstanceRecord> = self
            .states
            .iter()
            .filter(|s| {
                s.compensated_for.is_none()
                    && s.status != ExecutionStatus::Failed
                    && !superseded.contains(&s.id)
                    && !compensated.contains(&s.id)
            })
            .cloned()
            .collect();
        for row in pending.into_iter().rev() {
            let state = self.state(&row.name)?.clone();
            let Some(task) = state.kind.task().cloned() else {
                continue;
            };
            if task.for_compensation {
                continue;
            }
            self.count_step(&state.name)?;
            let status = match (&task.compensate_state, &state.kind) {
                (Some(compensator), _) => {
                    let compensator = self.state(compensator)?.clone();
                    self.run_compensator(&compensator, &row).await?
                }
                (None, StateKind::SubStateMachine(_)) => {
                    let child_id = format!("{}:{}", self.record.id, self.retry_root(&row));
                    if self.engine.inner.store.machine(&child_id).await?.is_some() {
                        let outcome = Box::pin(compensate_within(
                            self.engine,
                            &child_id,
                            true,
                            self.xid.clone(),
                        ))
                        .await?;
                        outcome
                            .compensation_status
                            .unwrap_or(ExecutionStatus::Succeed)
                    } else {
                        ExecutionStatus::Succeed
                    }
                }
                (None, _) if task.for_update => {
                    let message = format!(
                        "state {:?} is IsForUpdate but has no CompensateState: compensation state not found",
                        state.name
                    );
                    self.record.error = Some(message);
                    return Ok(ExecutionStatus::Failed);
                }
                (None, _) => continue,
            };
            if status != ExecutionStatus::Succeed {
                return Ok(status);
            }
        }
        Ok(ExecutionStatus::Succeed)
    }

    /// Runs `compensator` for the forward execution `row` (its loop element restored).
    async fn run_compensator(
        &mut self,
        compensator: &State,
        row: &StateInstanceRecord,
    ) -> Result<ExecutionStatus, SagaError> {
        if let StateKind::CompensateSubMachine(_) = compensator.kind {
            let child_id = format!("{}:{}", self.record.id, self.retry_root(row));
            if self.engine.inner.store.machine(&child_id).await?.is_none() {
                return Ok(ExecutionStatus::Succeed);
            }
            let outcome = Box::pin(compensate_within(
                self.engine,
                &child_id,
                true,
                self.xid.clone(),
            ))
            .await?;
            return Ok(outcome
                .compensation_status
                .unwrap_or(ExecutionStatus::Succeed));
        }
        let task = compensator.kind.task().cloned().ok_or_else(|| {
            self.definition_error(&compensator.name, "a compensator must be a task")
        })?;
        let forward_loop = self
            .machine
            .state(&row.name)
            .and_then(|s| s.kind.task())
            .and_then(|t| t.loop_.clone());
        let iteration = Iteration::of_row(row, forward_loop.as_ref());
        let root = self.task_root(iteration.as_ref());
        let args = task
            .input
            .iter()
            .map(|template| values::evaluate_template(template, &root, &mut || new_id()))
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| self.value_error(&compensator.name, e))?;
        let mut input = json!({ "args": args });
        if let Some(it) = &iteration {
            input["loop"] = json!({ "index": it.index, "element": it.element });
        }
        let earlier = self
            .states
            .iter()
            .rev()
            .find(|s| s.compensated_for.as_deref() == Some(row.id.as_str()))
            .cloned();
        let in_place = self.machine.compensate_persist_mode_update && earlier.is_some();
        let mut comp_row = match (in_place, earlier) {
            (true, Some(earlier)) => StateInstanceRecord {
                status: ExecutionStatus::Running,
                input: input.to_string(),
                output: None,
                error: None,
                ..earlier
            },
            _ => self.new_row(
                compensator,
                &task,
                input.to_string(),
                None,
                Some(row.id.clone()),
            ),
        };
        self.write_row(&comp_row, !in_place).await?;
        let (status, mapped, _) = self
            .call_and_record(compensator, &task, &args, &mut comp_row, iteration.as_ref())
            .await?;
        self.context.extend(mapped);
        Ok(status)
    }
}

/// The definition an instance started with: the registered one when it is that row, else the
/// row's JSON.
pub(crate) async fn definition_of(
    engine: &SagaEngine,
    record: &MachineInstanceRecord,
) -> Result<Arc<StateMachine>, SagaError> {
    if let Some((_, machine)) = engine.machine_by_name_and_id(&record.machine_id) {
        return Ok(machine);
    }
    let definition = engine
        .inner
        .store
        .definition(&record.machine_id)
        .await?
        .ok_or_else(|| SagaError::UnknownMachine(format!("definition {}", record.machine_id)))?;
    Ok(Arc::new(crate::json::parse_state_machine(
        &definition.content,
    )?))
}

/// Calls a registered service once, with the saga's XID bound, on a task of its own: a
/// panicking service fails its step (`ferrata.saga.Panic`), not the run.
async fn call_service(
    call: Option<super::Service>,
    name: &str,
    xid: Option<String>,
    args: Vec<Value>,
) -> Result<Value, ServiceError> {
    let Some(call) = call else {
        return Err(ServiceError::new(
            "ferrata.saga.ServiceNotFound",
            format!("no service {name} is registered"),
        ));
    };
    let call = call(args);
    let handle = match xid {
        Some(xid) => tokio::spawn(ferrata::context::with_xid(xid, call)),
        None => tokio::spawn(call),
    };
    handle.await.unwrap_or_else(|_| {
        Err(ServiceError::new(
            "ferrata.saga.Panic",
            "the service panicked",
        ))
    })
}

/// The wait before retrying `error` after `attempt` retries, or `None` when no Retry entry
/// matches it or its attempts are used up. Seata's rule: the interval, then interval ×
/// backoff × n (linear, not exponential).
fn retry_wait(retries: &[Retry], error: &ServiceError, attempt: u32) -> Option<Duration> {
    let retry = retries.iter().find(|r| error.matches_any(&r.exceptions))?;
    if attempt >= retry.max_attempts {
        return None;
    }
    let wait_s = if attempt == 0 {
        retry.interval_seconds
    } else {
        retry.interval_seconds * retry.backoff_rate * f64::from(attempt)
    };
    Some(Duration::from_secs_f64(wait_s.clamp(0.0, 3600.0)))
}

/// A Loop's Collection is an expression with or without the `$.` prefix.
fn collection_reference(collection: &str) -> String {
    if collection.starts_with('$') {
        collection.to_owned()
    } else {
        format!("$.{collection}")
    }
}

/// The loop index a row's input carries, if it is a loop iteration.
fn loop_index(input: &str) -> Option<usize> {
    let input: Value = serde_json::from_str(input).ok()?;
    usize::try_from(input.get("loop")?.get("index")?.as_u64()?).ok()
}

impl SagaEngine {
    /// The registered machine whose definition row is `id`, if it is the registered one.
    pub(crate) fn machine_by_name_and_id(&self, id: &str) -> Option<(String, Arc<StateMachine>)> {
        super::read(&self.inner.machines)
            .values()
            .find(|(def, _)| def == id)
            .cloned()
    }
}
