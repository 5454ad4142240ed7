//! Checks a [`StateMachine`] before it is registered or run: names, references between states,
//! retry/loop numbers, status codes, and that every path can end. Expressions are not parsed
//! here (the engine compiles them).

use std::collections::{HashMap, VecDeque};

use crate::error::DefinitionError;
use crate::json::SCRIPT_TYPES;
use crate::model::{ExecutionStatus, StateKind, StateMachine, Task};

/// Most states a machine may have; a guard against hostile definitions (real ones have tens).
pub const MAX_STATES: usize = 1000;

/// Longest machine name, state name, `ServiceName`, `ServiceMethod` and `StateMachineName`, in
/// characters: the saga tables' `VARCHAR(128)` columns.
pub const MAX_NAME_CHARS: usize = 128;

/// Longest `Version` (`seata_state_machine_def.ver VARCHAR(16)`) and `ServiceType`
/// (`seata_state_inst.service_type VARCHAR(16)`).
pub const MAX_VERSION_CHARS: usize = 16;

/// Longest machine `Comment` (`seata_state_machine_def.comment_ VARCHAR(255)`).
pub const MAX_COMMENT_CHARS: usize = 255;

/// Largest `Retry.IntervalSeconds` (one day): a longer wait is a mistake, and bounding it keeps
/// every computed wait a valid `Duration`.
pub const MAX_INTERVAL_SECONDS: f64 = 86_400.0;

/// Largest `Retry.BackoffRate` (the wait grows linearly: interval × rate × attempt).
pub const MAX_BACKOFF_RATE: f64 = 1_000.0;

impl StateMachine {
    /// Checks the definition; [`crate::json::parse_state_machine`] and the builder call it.
    ///
    /// - `Name` is non-empty, at most [`MAX_NAME_CHARS`]; `Version` non-empty, at most
    ///   [`MAX_VERSION_CHARS`]; `Comment` at most [`MAX_COMMENT_CHARS`]; at most [`MAX_STATES`]
    ///   states, each stored under its own non-empty name.
    /// - `StartState` and every `Next`, `Default`, `Choices[i].Next`, `Catch[i].Next` and
    ///   `CompensateState` name a defined state; a `CompensateState` names a task state
    ///   (ServiceTask, ScriptTask, SubStateMachine, CompensateSubMachine) other than itself.
    /// - A Choice has at least one branch, each with an expression.
    /// - `Retry`: `IntervalSeconds` finite, 0 to [`MAX_INTERVAL_SECONDS`]; `BackoffRate` finite,
    ///   1 to [`MAX_BACKOFF_RATE`] (below 1 later waits would shrink); `MaxAttempts` any count
    ///   (0 = never retry).
    /// - `Loop`: `Parallel` ≥ 1; `Collection`, `ElementVariableName`, `ElementIndexName` and
    ///   `CompletionCondition` non-empty.
    /// - `Status` values are `SU`, `FA` or `UN`; ScriptType is `"ferrata"` or `"expression"`; a
    ///   SubStateMachine does not call its own machine.
    /// - Every state reachable from `StartState` can reach an end: Succeed, Fail, or a task or
    ///   CompensationTrigger without `Next` (Seata ends the machine there). A Choice without a
    ///   `Default` is not an end.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        Check { m: self }.run()
    }
}

struct Check<'a> {
    m: &'a StateMachine,
}

impl Check<'_> {
    fn run(&self) -> Result<(), DefinitionError> {
        let m = self.m;
        self.name(None, "Name", &m.name, MAX_NAME_CHARS)?;
        self.name(None, "Version", &m.version, MAX_VERSION_CHARS)?;
        if let Some(comment) = &m.comment
            && comment.chars().count() > MAX_COMMENT_CHARS
        {
            return Err(self.invalid(
                None,
                "Comment",
                format!("longer than {MAX_COMMENT_CHARS} characters"),
            ));
        }
        if m.states.len() > MAX_STATES {
            return Err(DefinitionError::TooManyStates {
                machine: m.name.clone(),
                count: m.states.len(),
                limit: MAX_STATES,
            });
        }
        self.name(None, "StartState", &m.start_state, MAX_NAME_CHARS)?;
        self.target(None, "StartState", &m.start_state)?;
        for (key, state) in &m.states {
            if *key != state.name {
                return Err(self.invalid(
                    Some(key),
                    "Name",
                    format!(
                        "the state is stored under {key:?} but named {:?}",
                        state.name
                    ),
                ));
            }
            self.name(Some(key), "Name", key, MAX_NAME_CHARS)?;
            self.state(key, &state.kind)?;
        }
        self.can_end()
    }

    fn state(&self, name: &str, kind: &StateKind) -> Result<(), DefinitionError> {
        let s = Some(name);
        match kind {
            StateKind::ServiceTask(t) => {
                self.name(s, "ServiceName", &t.service_name, MAX_NAME_CHARS)?;
                self.name(s, "ServiceMethod", &t.service_method, MAX_NAME_CHARS)?;
                if let Some(service_type) = &t.service_type
                    && service_type.chars().count() > MAX_VERSION_CHARS
                {
                    return Err(self.invalid(
                        s,
                        "ServiceType",
                        format!("longer than {MAX_VERSION_CHARS} characters"),
                    ));
                }
            }
            StateKind::ScriptTask(t) => {
                if !SCRIPT_TYPES.contains(&t.script_type.as_str()) {
                    return Err(DefinitionError::UnsupportedScriptType {
                        machine: self.m.name.clone(),
                        state: name.to_owned(),
                        script_type: t.script_type.clone(),
                    });
                }
                if t.script_content.trim().is_empty() {
                    return Err(self.invalid(s, "ScriptContent", "is empty"));
                }
            }
            StateKind::SubStateMachine(t) => {
                self.name(s, "StateMachineName", &t.state_machine_name, MAX_NAME_CHARS)?;
                if t.state_machine_name == self.m.name {
                    return Err(self.invalid(
                        s,
                        "StateMachineName",
                        "names this machine; a machine cannot run itself as a sub-machine",
                    ));
                }
            }
            StateKind::CompensateSubMachine(_) | StateKind::Succeed | StateKind::Fail(_) => {}
            StateKind::Choice(c) => {
                if c.choices.is_empty() {
                    return Err(self.invalid(s, "Choices", "a Choice needs at least one branch"));
                }
                for (i, branch) in c.choices.iter().enumerate() {
                    if branch.expression.trim().is_empty() {
                        return Err(self.invalid(
                            s,
                            &format!("Choices[{i}].Expression"),
                            "is empty",
                        ));
                    }
                    self.target(s, &format!("Choices[{i}].Next"), &branch.next)?;
                }
                if let Some(default) = &c.default {
                    self.target(s, "Default", default)?;
                }
            }
            StateKind::CompensationTrigger { next } => {
                if let Some(next) = next {
                    self.target(s, "Next", next)?;
                }
            }
        }
        if let Some(task) = kind.task() {
            self.task(name, task)?;
        }
        Ok(())
    }

    fn task(&self, name: &str, t: &Task) -> Result<(), DefinitionError> {
        let s = Some(name);
        if let Some(next) = &t.next {
            self.target(s, "Next", next)?;
        }
        for (i, catch) in t.catches.iter().enumerate() {
            self.target(s, &format!("Catch[{i}].Next"), &catch.next)?;
        }
        if let Some(compensator) = &t.compensate_state {
            let target = self.target(s, "CompensateState", compensator)?;
            if target.task().is_none() {
                return Err(DefinitionError::NotATask {
                    machine: self.m.name.clone(),
                    state: name.to_owned(),
                    property: "CompensateState".to_owned(),
                    target: compensator.clone(),
                    target_type: target.type_name(),
                });
            }
            if compensator == name {
                return Err(self.invalid(
                    s,
                    "CompensateState",
                    "names the state itself; a state cannot compensate itself",
                ));
            }
        }
        for (condition, status) in &t.status {
            let property = format!("Status[{condition:?}]");
            if condition.trim().is_empty() {
                return Err(self.invalid(s, &property, "the condition is empty"));
            }
            if matches!(status, ExecutionStatus::Running | ExecutionStatus::Skipped) {
                return Err(self.invalid(
                    s,
                    &property,
                    format!(
                        "{:?} is not a state status; use \"SU\", \"FA\" or \"UN\"",
                        status.code()
                    ),
                ));
            }
        }
        for (i, retry) in t.retry.iter().enumerate() {
            let interval = retry.interval_seconds;
            if !(interval.is_finite() && (0.0..=MAX_INTERVAL_SECONDS).contains(&interval)) {
                return Err(self.invalid(
                    s,
                    &format!("Retry[{i}].IntervalSeconds"),
                    format!("{interval} is not from 0 to {MAX_INTERVAL_SECONDS} seconds"),
                ));
            }
            let rate = retry.backoff_rate;
            if !(rate.is_finite() && (1.0..=MAX_BACKOFF_RATE).contains(&rate)) {
                return Err(self.invalid(
                    s,
                    &format!("Retry[{i}].BackoffRate"),
                    format!("{rate} is not from 1 to {MAX_BACKOFF_RATE}"),
                ));
            }
        }
        if let Some(l) = &t.loop_ {
            if l.parallel == 0 {
                return Err(self.invalid(s, "Loop.Parallel", "must be at least 1"));
            }
            for (property, value) in [
                ("Loop.Collection", &l.collection),
                ("Loop.ElementVariableName", &l.element_variable_name),
                ("Loop.ElementIndexName", &l.element_index_name),
                ("Loop.CompletionCondition", &l.completion_condition),
            ] {
                if value.trim().is_empty() {
                    return Err(self.invalid(s, property, "is empty"));
                }
            }
        }
        Ok(())
    }

    /// Every state reachable from the start can reach an end (see [`StateMachine::validate`]).
    fn can_end(&self) -> Result<(), DefinitionError> {
        let m = self.m;
        let index: HashMap<&str, usize> = m
            .states
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        let successors: Vec<Vec<usize>> = m
            .states
            .values()
            .map(|s| {
                s.kind
                    .successors()
                    .into_iter()
                    .filter_map(|next| index.get(next).copied())
                    .collect()
            })
            .collect();
        let mut predecessors = vec![Vec::new(); successors.len()];
        for (from, nexts) in successors.iter().enumerate() {
            for &to in nexts {
                predecessors[to].push(from);
            }
        }
        let mut ends = vec![false; successors.len()];
        let mut queue: VecDeque<usize> = VecDeque::new();
        for (i, state) in m.states.values().enumerate() {
            let is_end = match &state.kind {
                StateKind::Succeed | StateKind::Fail(_) => true,
                StateKind::CompensationTrigger { next } => next.is_none(),
                StateKind::Choice(_) => false,
                kind => kind.task().is_some_and(|t| t.next.is_none()),
            };
            if is_end {
                ends[i] = true;
                queue.push_back(i);
            }
        }
        while let Some(i) = queue.pop_front() {
            for &p in &predecessors[i] {
                if !ends[p] {
                    ends[p] = true;
                    queue.push_back(p);
                }
            }
        }
        let Some(&start) = index.get(m.start_state.as_str()) else {
            return Ok(());
        };
        let mut reached = vec![false; successors.len()];
        reached[start] = true;
        queue.push_back(start);
        while let Some(i) = queue.pop_front() {
            for &n in &successors[i] {
                if !reached[n] {
                    reached[n] = true;
                    queue.push_back(n);
                }
            }
        }
        let stuck: Vec<String> = m
            .states
            .keys()
            .enumerate()
            .filter(|&(i, _)| reached[i] && !ends[i])
            .map(|(_, name)| name.clone())
            .collect();
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(DefinitionError::NoWayOut {
                machine: m.name.clone(),
                states: stuck,
            })
        }
    }

    /// The state `target` names, or an error naming the referring property.
    fn target(
        &self,
        state: Option<&str>,
        property: &str,
        target: &str,
    ) -> Result<&StateKind, DefinitionError> {
        self.m
            .states
            .get(target)
            .map(|s| &s.kind)
            .ok_or_else(|| DefinitionError::UnknownState {
                machine: self.m.name.clone(),
                state: state.map(str::to_owned),
                property: property.to_owned(),
                target: target.to_owned(),
            })
    }

    fn name(
        &self,
        state: Option<&str>,
        property: &str,
        value: &str,
        max: usize,
    ) -> Result<(), DefinitionError> {
        if value.trim().is_empty() {
            return Err(self.invalid(state, property, "is empty"));
        }
        if value.chars().count() > max {
            return Err(self.invalid(state, property, format!("longer than {max} characters")));
        }
        Ok(())
    }

    fn invalid(
        &self,
        state: Option<&str>,
        property: &str,
        reason: impl Into<String>,
    ) -> DefinitionError {
        DefinitionError::InvalidValue {
            machine: self.m.name.clone(),
            state: state.map(str::to_owned),
            property: property.to_owned(),
            reason: reason.into(),
        }
    }
}
