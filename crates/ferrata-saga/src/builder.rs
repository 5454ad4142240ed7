//! A typed way to write a [`StateMachine`] in Rust: the same model the JSON state language
//! gives (Seata's defaults applied the same way), validated by [`StateMachineBuilder::build`].

use serde_json::Value;

use crate::error::DefinitionError;
use crate::json::{DEFAULT_VERSION, apply_seata_defaults};
use crate::model::{
    Catch, Choice, ChoiceBranch, ExecutionStatus, Fail, Loop, RecoverStrategy, Retry, ScriptTask,
    ServiceTask, State, StateKind, StateMachine, SubStateMachine, Task,
};

impl StateMachine {
    /// Starts a machine definition named `name` (version [`DEFAULT_VERSION`], recovery by
    /// compensation, persisted).
    ///
    /// ```
    /// use ferrata_saga::model::{ExecutionStatus, RecoverStrategy, Retry, StateMachine};
    /// use serde_json::json;
    ///
    /// let machine = StateMachine::builder("purchase")
    ///     .version("1.0")
    ///     .recover_strategy(RecoverStrategy::Compensate)
    ///     .start_state("ReduceInventory")
    ///     .service_task("ReduceInventory", "inventoryAction", "reduce", |t| {
    ///         t.input(["$.[businessKey]", "$.[count]"])
    ///             .output("reduceInventoryResult", "$.#root")
    ///             .status("#root == true", ExecutionStatus::Succeed)
    ///             .status("$Exception{java.lang.Throwable}", ExecutionStatus::Unknown)
    ///             .compensate_state("CompensateReduceInventory")
    ///             .retry(Retry { max_attempts: 2, ..Retry::default() })
    ///             .catch(["java.lang.Throwable"], "CompensationTrigger")
    ///             .next("ChoiceState")
    ///     })
    ///     .choice("ChoiceState", |c| {
    ///         c.when("[reduceInventoryResult] == true", "ReduceBalance").otherwise("Fail")
    ///     })
    ///     .service_task("ReduceBalance", "balanceAction", "reduce", |t| {
    ///         t.input(["$.[businessKey]", "$.[amount]"])
    ///             .input_value(json!({ "throwException": "$.[mockReduceBalanceFail]" }))
    ///             .catch(["java.lang.Throwable"], "CompensationTrigger")
    ///             .next("Succeed")
    ///     })
    ///     .service_task("CompensateReduceInventory", "inventoryAction", "compensateReduce", |t| {
    ///         t.input(["$.[businessKey]"])
    ///     })
    ///     .compensation_trigger("CompensationTrigger", "Fail")
    ///     .succeed("Succeed")
    ///     .fail("Fail", Some("PURCHASE_FAILED"), Some("purchase failed"))
    ///     .build()?;
    ///
    /// // As the JSON loader does: a task with a compensator is for update, the compensator is
    /// // for compensation.
    /// let reduce = machine.state("ReduceInventory").and_then(|s| s.kind.task());
    /// assert!(reduce.is_some_and(|t| t.for_update));
    /// # Ok::<(), ferrata_saga::error::DefinitionError>(())
    /// ```
    pub fn builder(name: impl Into<String>) -> StateMachineBuilder {
        StateMachineBuilder {
            machine: StateMachine {
                name: name.into(),
                comment: None,
                version: DEFAULT_VERSION.to_owned(),
                start_state: String::new(),
                recover_strategy: RecoverStrategy::default(),
                persist: true,
                retry_persist_mode_update: false,
                compensate_persist_mode_update: false,
                states: Default::default(),
            },
            duplicate: None,
        }
    }
}

/// Builds a [`StateMachine`]; states keep the order they are added in. See
/// [`StateMachine::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct StateMachineBuilder {
    machine: StateMachine,
    /// The first state name added twice, reported by `build` (a builder chain has no other
    /// place to fail).
    duplicate: Option<String>,
}

impl StateMachineBuilder {
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.machine.comment = Some(comment.into());
        self
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.machine.version = version.into();
        self
    }

    pub fn recover_strategy(mut self, strategy: RecoverStrategy) -> Self {
        self.machine.recover_strategy = strategy;
        self
    }

    /// `IsPersist` (default true).
    pub fn persist(mut self, persist: bool) -> Self {
        self.machine.persist = persist;
        self
    }

    /// `IsRetryPersistModeUpdate`.
    pub fn retry_persist_mode_update(mut self, update: bool) -> Self {
        self.machine.retry_persist_mode_update = update;
        self
    }

    /// `IsCompensatePersistModeUpdate`.
    pub fn compensate_persist_mode_update(mut self, update: bool) -> Self {
        self.machine.compensate_persist_mode_update = update;
        self
    }

    /// `StartState`; without it the first state added starts the machine.
    pub fn start_state(mut self, name: impl Into<String>) -> Self {
        self.machine.start_state = name.into();
        self
    }

    /// A ServiceTask calling `service_name.service_method`, configured by `task`.
    pub fn service_task(
        self,
        name: impl Into<String>,
        service_name: impl Into<String>,
        service_method: impl Into<String>,
        task: impl FnOnce(ServiceTaskBuilder) -> ServiceTaskBuilder,
    ) -> Self {
        let t = task(TaskBuilder::default());
        let kind = StateKind::ServiceTask(ServiceTask {
            service_name: service_name.into(),
            service_method: service_method.into(),
            service_type: t.extra.service_type,
            parameter_types: t.extra.parameter_types,
            task: t.task,
        });
        self.add(name.into(), t.comment, kind)
    }

    /// A ScriptTask evaluating `script` in the expression language (`ScriptType: "ferrata"`).
    pub fn script_task(
        self,
        name: impl Into<String>,
        script: impl Into<String>,
        task: impl FnOnce(TaskBuilder) -> TaskBuilder,
    ) -> Self {
        let t = task(TaskBuilder::default());
        let kind = StateKind::ScriptTask(ScriptTask {
            script_type: "ferrata".to_owned(),
            script_content: script.into(),
            task: t.task,
        });
        self.add(name.into(), t.comment, kind)
    }

    /// A SubStateMachine running the machine named `machine_name`.
    pub fn sub_state_machine(
        self,
        name: impl Into<String>,
        machine_name: impl Into<String>,
        task: impl FnOnce(TaskBuilder) -> TaskBuilder,
    ) -> Self {
        let t = task(TaskBuilder::default());
        let kind = StateKind::SubStateMachine(SubStateMachine {
            state_machine_name: machine_name.into(),
            task: t.task,
        });
        self.add(name.into(), t.comment, kind)
    }

    /// An explicit CompensateSubMachine state (a SubStateMachine names it as `CompensateState`).
    pub fn compensate_sub_machine(
        self,
        name: impl Into<String>,
        task: impl FnOnce(TaskBuilder) -> TaskBuilder,
    ) -> Self {
        let t = task(TaskBuilder::default());
        self.add(
            name.into(),
            t.comment,
            StateKind::CompensateSubMachine(t.task),
        )
    }

    /// A Choice: the first branch whose expression holds is taken, else the default.
    pub fn choice(
        self,
        name: impl Into<String>,
        choice: impl FnOnce(ChoiceBuilder) -> ChoiceBuilder,
    ) -> Self {
        let c = choice(ChoiceBuilder::default());
        self.add(name.into(), c.comment, StateKind::Choice(c.choice))
    }

    /// A CompensationTrigger continuing at `next` after compensating (for one without `Next`,
    /// use [`StateMachineBuilder::state`]).
    pub fn compensation_trigger(self, name: impl Into<String>, next: impl Into<String>) -> Self {
        let kind = StateKind::CompensationTrigger {
            next: Some(next.into()),
        };
        self.add(name.into(), None, kind)
    }

    pub fn succeed(self, name: impl Into<String>) -> Self {
        self.add(name.into(), None, StateKind::Succeed)
    }

    pub fn fail(
        self,
        name: impl Into<String>,
        error_code: Option<&str>,
        message: Option<&str>,
    ) -> Self {
        let kind = StateKind::Fail(Fail {
            error_code: error_code.map(str::to_owned),
            message: message.map(str::to_owned),
        });
        self.add(name.into(), None, kind)
    }

    /// Adds a state written as a model value (for what the shorthands above do not cover,
    /// e.g. a state comment on Succeed).
    pub fn state(self, state: State) -> Self {
        self.add(state.name, state.comment, state.kind)
    }

    /// Applies Seata's parser defaults (a task with a `CompensateState` is for update, the
    /// state it names for compensation; a ScriptTask is not persisted) and validates
    /// ([`StateMachine::validate`]). A state name added twice is a
    /// [`DefinitionError::DuplicateState`].
    pub fn build(self) -> Result<StateMachine, DefinitionError> {
        let mut machine = self.machine;
        if let Some(state) = self.duplicate {
            return Err(DefinitionError::DuplicateState {
                machine: machine.name,
                state,
            });
        }
        if machine.start_state.is_empty()
            && let Some(first) = machine.states.keys().next()
        {
            machine.start_state = first.clone();
        }
        apply_seata_defaults(&mut machine);
        machine.validate()?;
        Ok(machine)
    }

    fn add(mut self, name: String, comment: Option<String>, kind: StateKind) -> Self {
        if self.machine.states.contains_key(&name) {
            self.duplicate.get_or_insert(name);
            return self;
        }
        let state = State {
            name: name.clone(),
            comment,
            kind,
        };
        self.machine.states.insert(name, state);
        self
    }
}

/// Configures a task state (ServiceTask, ScriptTask, SubStateMachine, CompensateSubMachine);
/// property names follow the state language (`input` = `Input`, `next` = `Next`, ...).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct TaskBuilder<X = ()> {
    comment: Option<String>,
    task: Task,
    extra: X,
}

/// What only a ServiceTask has (`ServiceType`, `ParameterTypes`).
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    service_type: Option<String>,
    parameter_types: Vec<String>,
}

/// The task builder of [`StateMachineBuilder::service_task`].
pub type ServiceTaskBuilder = TaskBuilder<ServiceOptions>;

impl<X> TaskBuilder<X> {
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// Appends call arguments (`Input`); strings starting with `$` are expressions.
    pub fn input<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        self.task.input.extend(args.into_iter().map(Into::into));
        self
    }

    /// Appends one call argument of any JSON shape (e.g. `json!({"k": "$.[v]"})`).
    pub fn input_value(mut self, arg: impl Into<Value>) -> Self {
        self.task.input.push(arg.into());
        self
    }

    /// Sets context variable `name` from the result (`Output`), e.g. `"$.#root"`.
    pub fn output(mut self, name: impl Into<String>, template: impl Into<Value>) -> Self {
        self.task.output.insert(name.into(), template.into());
        self
    }

    /// Adds a `Status` entry; entries are tried in the order added.
    pub fn status(mut self, condition: impl Into<String>, status: ExecutionStatus) -> Self {
        self.task.status.insert(condition.into(), status);
        self
    }

    /// `CompensateState`: the state that undoes this one (this state becomes for update).
    pub fn compensate_state(mut self, name: impl Into<String>) -> Self {
        self.task.compensate_state = Some(name.into());
        self
    }

    /// `IsForUpdate`.
    pub fn for_update(mut self, for_update: bool) -> Self {
        self.task.for_update = for_update;
        self
    }

    /// `IsForCompensation` (set anyway on every state some task names as `CompensateState`).
    pub fn for_compensation(mut self, for_compensation: bool) -> Self {
        self.task.for_compensation = for_compensation;
        self
    }

    /// `IsPersist` of this state (default: the machine's).
    pub fn persist(mut self, persist: bool) -> Self {
        self.task.persist = Some(persist);
        self
    }

    /// `IsAsync` (accepted; the engine runs the call synchronously).
    pub fn asynchronous(mut self, is_async: bool) -> Self {
        self.task.is_async = is_async;
        self
    }

    /// Adds a `Retry` entry; the first whose exceptions match applies.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.task.retry.push(retry);
        self
    }

    /// Adds a `Catch` entry routing matching errors to `next`.
    pub fn catch<I>(mut self, exceptions: I, next: impl Into<String>) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.task.catches.push(Catch {
            exceptions: exceptions.into_iter().map(Into::into).collect(),
            next: next.into(),
        });
        self
    }

    /// `Loop`: run the task once per element of a collection.
    pub fn loop_(mut self, config: Loop) -> Self {
        self.task.loop_ = Some(config);
        self
    }

    /// `Next`; without it the machine ends after this state.
    pub fn next(mut self, name: impl Into<String>) -> Self {
        self.task.next = Some(name.into());
        self
    }
}

impl TaskBuilder<ServiceOptions> {
    /// `ServiceType` (informational; `SpringBean` in Java definitions).
    pub fn service_type(mut self, service_type: impl Into<String>) -> Self {
        self.extra.service_type = Some(service_type.into());
        self
    }

    /// `ParameterTypes` (informational; Rust services take JSON values).
    pub fn parameter_types<I>(mut self, types: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.extra.parameter_types = types.into_iter().map(Into::into).collect();
        self
    }
}

/// Configures a Choice state.
#[derive(Debug, Clone)]
#[must_use]
pub struct ChoiceBuilder {
    comment: Option<String>,
    choice: Choice,
}

impl Default for ChoiceBuilder {
    fn default() -> Self {
        ChoiceBuilder {
            comment: None,
            choice: Choice {
                choices: Vec::new(),
                default: None,
            },
        }
    }
}

impl ChoiceBuilder {
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// A branch: go to `next` when `expression` holds (branches are tried in order).
    pub fn when(mut self, expression: impl Into<String>, next: impl Into<String>) -> Self {
        self.choice.choices.push(ChoiceBranch {
            expression: expression.into(),
            next: next.into(),
        });
        self
    }

    /// `Default`: where to go when no branch holds.
    pub fn otherwise(mut self, next: impl Into<String>) -> Self {
        self.choice.default = Some(next.into());
        self
    }
}
