//! The state machine as data: what Seata's JSON state language describes (machine, states,
//! retry, catch, loop), independent of how it was written (JSON or the builder) or run.

use indexmap::IndexMap;
use serde_json::Value;

/// A state machine definition: named states, one of which starts it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub name: String,
    pub comment: Option<String>,
    pub version: String,
    pub start_state: String,
    pub recover_strategy: RecoverStrategy,
    /// Whether instances are written to the saga tables (`IsPersist`, default true).
    pub persist: bool,
    /// Retries update the state row instead of adding one (`IsRetryPersistModeUpdate`).
    pub retry_persist_mode_update: bool,
    /// Compensations update the compensated row instead of adding one
    /// (`IsCompensatePersistModeUpdate`).
    pub compensate_persist_mode_update: bool,
    /// States in document order, by name.
    pub states: IndexMap<String, State>,
}

/// What the TC's recovery does with a Saga that timed out: compensate what ran (the default) or
/// retry forward from where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoverStrategy {
    #[default]
    Compensate,
    Forward,
}

impl RecoverStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoverStrategy::Compensate => "Compensate",
            RecoverStrategy::Forward => "Forward",
        }
    }
}

/// One state of a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub comment: Option<String>,
    pub kind: StateKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateKind {
    /// Calls a registered service method.
    ServiceTask(ServiceTask),
    /// Evaluates a script (only the expression language; Groovy is refused at load time).
    ScriptTask(ScriptTask),
    /// Runs another machine as one step.
    SubStateMachine(SubStateMachine),
    /// Compensates the sub-machine instance of the SubStateMachine state it compensates
    /// (`CompensateSubMachine`; the engine uses an implicit one when a SubStateMachine names
    /// no `CompensateState`).
    CompensateSubMachine(Task),
    /// Picks the next state by the first true expression.
    Choice(Choice),
    /// Compensates what ran so far, then continues at `next` (usually a Fail state).
    CompensationTrigger { next: Option<String> },
    /// Ends the machine successfully.
    Succeed,
    /// Ends the machine as failed.
    Fail(Fail),
}

impl StateKind {
    /// The type name of the state language (`"ServiceTask"`, `"Choice"`, ...), stored in
    /// `seata_state_inst.type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            StateKind::ServiceTask(_) => "ServiceTask",
            StateKind::ScriptTask(_) => "ScriptTask",
            StateKind::SubStateMachine(_) => "SubStateMachine",
            StateKind::CompensateSubMachine(_) => "CompensateSubMachine",
            StateKind::Choice(_) => "Choice",
            StateKind::CompensationTrigger { .. } => "CompensationTrigger",
            StateKind::Succeed => "Succeed",
            StateKind::Fail(_) => "Fail",
        }
    }

    /// The task part of the states that run something.
    pub fn task(&self) -> Option<&Task> {
        match self {
            StateKind::ServiceTask(s) => Some(&s.task),
            StateKind::ScriptTask(s) => Some(&s.task),
            StateKind::SubStateMachine(s) => Some(&s.task),
            StateKind::CompensateSubMachine(task) => Some(task),
            _ => None,
        }
    }

    /// The states this one can continue at (for validation and pictures).
    pub fn successors(&self) -> Vec<&str> {
        let mut next = Vec::new();
        if let Some(task) = self.task() {
            next.extend(task.next.as_deref());
            next.extend(task.catches.iter().map(|c| c.next.as_str()));
        }
        match self {
            StateKind::Choice(choice) => {
                next.extend(choice.choices.iter().map(|c| c.next.as_str()));
                next.extend(choice.default.as_deref());
            }
            StateKind::CompensationTrigger { next: n } => next.extend(n.as_deref()),
            _ => {}
        }
        next
    }
}

/// What ServiceTask, ScriptTask and SubStateMachine share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Task {
    /// The state that undoes this one (`CompensateState`).
    pub compensate_state: Option<String>,
    /// This state is some other state's compensation (`IsForCompensation`).
    pub for_compensation: bool,
    /// This state changes data (`IsForUpdate`): an unknown outcome stays unknown, and
    /// compensation needs a compensator.
    pub for_update: bool,
    /// `IsPersist` of the state; `None` follows the machine.
    pub persist: Option<bool>,
    /// `IsAsync`: accepted and run synchronously (the engine has no async-invocation mode).
    pub is_async: bool,
    /// Call arguments: each a value whose strings starting with `$` are expressions.
    pub input: Vec<Value>,
    /// Context variables set from the result: name → value template (strings starting with
    /// `$` are expressions over the result).
    pub output: IndexMap<String, Value>,
    /// Status decision: condition → status; the first true entry wins.
    pub status: IndexMap<String, ExecutionStatus>,
    pub retry: Vec<Retry>,
    pub catches: Vec<Catch>,
    pub loop_: Option<Loop>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTask {
    pub service_name: String,
    pub service_method: String,
    /// `ServiceType` (`SpringBean` in Java); informational here.
    pub service_type: Option<String>,
    /// `ParameterTypes`; informational here (Rust services take JSON values).
    pub parameter_types: Vec<String>,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptTask {
    /// Always `"ferrata"` or `"expression"` once loaded.
    pub script_type: String,
    pub script_content: String,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubStateMachine {
    pub state_machine_name: String,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub choices: Vec<ChoiceBranch>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceBranch {
    pub expression: String,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fail {
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// Re-invoke a task whose error matches `exceptions`, at most `max_attempts` times; before
/// retry n (from 0) wait `interval_seconds` (n = 0) or `interval_seconds × backoff_rate × n`
/// (Seata's rule: linear, not exponential).
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub exceptions: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            exceptions: Vec::new(),
            interval_seconds: 1.0,
            max_attempts: 3,
            backoff_rate: 1.5,
        }
    }
}

/// Route a task error matching `exceptions` to `next`.
#[derive(Debug, Clone, PartialEq)]
pub struct Catch {
    pub exceptions: Vec<String>,
    pub next: String,
}

/// Run the task once per element of a collection, up to `parallel` at a time, until the
/// completion condition holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Loop {
    pub parallel: u32,
    /// Expression naming the collection in the context (e.g. `$.[items]` or `[items]`).
    pub collection: String,
    pub element_variable_name: String,
    pub element_index_name: String,
    pub completion_condition: String,
}

impl Default for Loop {
    fn default() -> Self {
        Loop {
            parallel: 1,
            collection: String::new(),
            element_variable_name: "loopElement".to_owned(),
            element_index_name: "loopCounter".to_owned(),
            completion_condition: "[nrOfInstances] == [nrOfCompletedInstances]".to_owned(),
        }
    }
}

/// Status of a machine or state instance as stored (`RU`, `SU`, `FA`, `UN`, `SK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionStatus {
    Running,
    Succeed,
    Failed,
    Unknown,
    Skipped,
}

impl ExecutionStatus {
    pub fn code(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "RU",
            ExecutionStatus::Succeed => "SU",
            ExecutionStatus::Failed => "FA",
            ExecutionStatus::Unknown => "UN",
            ExecutionStatus::Skipped => "SK",
        }
    }

    pub fn from_code(code: &str) -> Option<ExecutionStatus> {
        Some(match code {
            "RU" => ExecutionStatus::Running,
            "SU" => ExecutionStatus::Succeed,
            "FA" => ExecutionStatus::Failed,
            "UN" => ExecutionStatus::Unknown,
            "SK" => ExecutionStatus::Skipped,
            _ => return None,
        })
    }
}

impl StateMachine {
    pub fn state(&self, name: &str) -> Option<&State> {
        self.states.get(name)
    }
}
