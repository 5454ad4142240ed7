//! Seata's JSON state language ↔ [`StateMachine`]: [`parse_state_machine`] loads a definition
//! (document key order kept, unknown properties ignored, then validated); [`to_json`] and
//! [`to_json_string`] write one back with Seata's property names.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};

use crate::error::DefinitionError;
use crate::model::{
    Catch, Choice, ChoiceBranch, ExecutionStatus, Fail, Loop, RecoverStrategy, Retry, ScriptTask,
    ServiceTask, State, StateKind, StateMachine, SubStateMachine, Task,
};
use crate::validate::MAX_STATES;

/// Largest definition [`parse_state_machine`] reads (1 MiB): definitions come from files and
/// databases that others write, and a real machine is a few kilobytes.
pub const MAX_DEFINITION_BYTES: usize = 1 << 20;

/// `Version` of a definition that has none (Seata leaves it unset; the saga tables need one).
pub const DEFAULT_VERSION: &str = "0.0.1";

/// The script types a ScriptTask may name: both mean the crate's expression language.
pub const SCRIPT_TYPES: [&str; 2] = ["ferrata", "expression"];

/// Seata's ScriptType when the property is absent; refused here (no Groovy interpreter).
const SEATA_DEFAULT_SCRIPT_TYPE: &str = "groovy";

/// Loads a definition written in Seata's JSON state language and validates it
/// ([`StateMachine::validate`]).
///
/// Follows Seata's parser: unknown properties are ignored (the designer's `style`/`edge` keys),
/// `null` counts as absent, a task naming a `CompensateState` becomes `IsForUpdate` and the
/// state it names `IsForCompensation`, and a ScriptTask is never persisted. Stricter than Seata:
/// property values of the wrong JSON type, duplicate keys and unknown state types are errors,
/// and only `ScriptType` `"ferrata"`/`"expression"` is accepted.
///
/// ```
/// use ferrata_saga::json::parse_state_machine;
///
/// let machine = parse_state_machine(r#"{
///     "Name": "hello", "StartState": "Greet",
///     "States": {
///         "Greet": { "Type": "ServiceTask", "ServiceName": "greeter", "ServiceMethod": "greet",
///                    "Input": ["$.[name]"], "Next": "Done" },
///         "Done": { "Type": "Succeed" }
///     }
/// }"#)?;
/// assert_eq!(machine.version, "0.0.1");
/// assert_eq!(machine.states.len(), 2);
/// # Ok::<(), ferrata_saga::error::DefinitionError>(())
/// ```
pub fn parse_state_machine(json: &str) -> Result<StateMachine, DefinitionError> {
    if json.len() > MAX_DEFINITION_BYTES {
        return Err(DefinitionError::TooLarge {
            size: json.len(),
            limit: MAX_DEFINITION_BYTES,
        });
    }
    let root: Node =
        serde_json::from_str(json).map_err(|e| DefinitionError::Malformed(e.to_string()))?;
    let Node::Object(root) = root else {
        return Err(DefinitionError::Malformed(
            "the top level must be a JSON object (the state machine)".to_owned(),
        ));
    };
    let machine = read_machine(&root)?;
    machine.validate()?;
    Ok(machine)
}

/// The definition as a JSON value with Seata's property names.
///
/// `serde_json::Value` sorts object keys (this workspace does not enable serde_json's
/// `preserve_order`), so `States`, `Status` and `Output` come out alphabetically here; where
/// the order matters — storing the definition, `Status` (first match wins) — use
/// [`to_json_string`], which keeps it, and which [`parse_state_machine`] reads back equal.
pub fn to_json(machine: &StateMachine) -> Value {
    machine_node(machine).into_value()
}

/// The definition as pretty-printed JSON in Seata's state language, key order kept:
/// `parse_state_machine(&to_json_string(&m)) == Ok(m)` for every valid `m`.
pub fn to_json_string(machine: &StateMachine) -> String {
    // Serializing a tree of strings, numbers and string-keyed maps cannot fail.
    serde_json::to_string_pretty(&machine_node(machine)).unwrap_or_default()
}

/// Seata's parser post-processing, shared by the JSON loader and the builder so both give the
/// same model: a ScriptTask is never for update, for compensation or persisted; a task naming
/// a `CompensateState` is for update; the task state it names is for compensation.
pub(crate) fn apply_seata_defaults(machine: &mut StateMachine) {
    for state in machine.states.values_mut() {
        if let StateKind::ScriptTask(script) = &mut state.kind {
            script.task.for_compensation = false;
            script.task.for_update = false;
            script.task.persist = Some(false);
        }
    }
    let mut compensators = Vec::new();
    for state in machine.states.values_mut() {
        if let Some(task) = task_mut(&mut state.kind)
            && let Some(compensator) = &task.compensate_state
        {
            task.for_update = true;
            compensators.push(compensator.clone());
        }
    }
    for name in compensators {
        if let Some(task) = machine
            .states
            .get_mut(&name)
            .and_then(|s| task_mut(&mut s.kind))
        {
            task.for_compensation = true;
        }
    }
}

fn task_mut(kind: &mut StateKind) -> Option<&mut Task> {
    match kind {
        StateKind::ServiceTask(s) => Some(&mut s.task),
        StateKind::ScriptTask(s) => Some(&mut s.task),
        StateKind::SubStateMachine(s) => Some(&mut s.task),
        StateKind::CompensateSubMachine(task) => Some(task),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// An order-keeping JSON tree: serde_json::Value sorts object keys, and Seata's `States` and
// `Status` depend on document order.

type Obj = IndexMap<String, Node>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Obj),
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s),
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Object(map) => {
                Value::Object(map.into_iter().map(|(k, v)| (k, v.into_value())).collect())
            }
        }
    }

    fn from_value(value: &Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Number(n.clone()),
            Value::String(s) => Node::String(s.clone()),
            Value::Array(items) => Node::Array(items.iter().map(Node::from_value).collect()),
            Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Node::from_value(v)))
                    .collect(),
            ),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut obj = Obj::new();
        while let Some(key) = map.next_key::<String>()? {
            // Java's parsers keep the last of two equal keys; two states with one name are far
            // more likely a copy-paste slip than intent, so say so.
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            obj.insert(key, value);
        }
        Ok(Node::Object(obj))
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::String(s) => serializer.serialize_str(s),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(obj) => {
                let mut map = serializer.serialize_map(Some(obj.len()))?;
                for (k, v) in obj {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: JSON tree → model, every error naming machine, state and property.

/// Where in the definition a property is read, for error messages.
struct At<'a> {
    machine: &'a str,
    state: Option<&'a str>,
}

type Result<T, E = DefinitionError> = std::result::Result<T, E>;

impl At<'_> {
    fn state(&self) -> Option<String> {
        self.state.map(str::to_owned)
    }

    fn missing(&self, property: &str) -> DefinitionError {
        DefinitionError::Missing {
            machine: self.machine.to_owned(),
            state: self.state(),
            property: property.to_owned(),
        }
    }

    fn wrong_type(&self, property: &str, expected: &'static str, found: &Node) -> DefinitionError {
        DefinitionError::WrongType {
            machine: self.machine.to_owned(),
            state: self.state(),
            property: property.to_owned(),
            expected,
            found: found.type_name(),
        }
    }

    fn invalid(&self, property: &str, reason: impl Into<String>) -> DefinitionError {
        DefinitionError::InvalidValue {
            machine: self.machine.to_owned(),
            state: self.state(),
            property: property.to_owned(),
            reason: reason.into(),
        }
    }

    fn string(&self, node: Option<&Node>, property: &str) -> Result<Option<String>> {
        match present(node) {
            None => Ok(None),
            Some(Node::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(property, "a string", other)),
        }
    }

    fn required_string(&self, node: Option<&Node>, property: &str) -> Result<String> {
        self.string(node, property)?
            .ok_or_else(|| self.missing(property))
    }

    fn boolean(&self, node: Option<&Node>, property: &str) -> Result<Option<bool>> {
        match present(node) {
            None => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(property, "true or false", other)),
        }
    }

    fn array<'n>(&self, node: Option<&'n Node>, property: &str) -> Result<Option<&'n [Node]>> {
        match present(node) {
            None => Ok(None),
            Some(Node::Array(items)) => Ok(Some(items)),
            Some(other) => Err(self.wrong_type(property, "an array", other)),
        }
    }

    fn object<'n>(&self, node: Option<&'n Node>, property: &str) -> Result<Option<&'n Obj>> {
        match present(node) {
            None => Ok(None),
            Some(Node::Object(obj)) => Ok(Some(obj)),
            Some(other) => Err(self.wrong_type(property, "an object", other)),
        }
    }

    fn strings(&self, node: Option<&Node>, property: &str) -> Result<Vec<String>> {
        let Some(items) = self.array(node, property)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .map(|item| match item {
                Node::String(s) => Ok(s.clone()),
                other => Err(self.wrong_type(property, "an array of strings", other)),
            })
            .collect()
    }

    fn number(&self, node: Option<&Node>, property: &str) -> Result<Option<f64>> {
        match present(node) {
            None => Ok(None),
            Some(Node::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(self.wrong_type(property, "a number", other)),
        }
    }

    fn count(&self, node: Option<&Node>, property: &str) -> Result<Option<u32>> {
        match present(node) {
            None => Ok(None),
            Some(Node::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.invalid(property, "must be a whole number from 0 to 4294967295")
                }),
            Some(other) => Err(self.wrong_type(property, "a whole number", other)),
        }
    }
}

fn present(node: Option<&Node>) -> Option<&Node> {
    node.filter(|n| !matches!(n, Node::Null))
}

fn read_machine(root: &Obj) -> Result<StateMachine> {
    let name = match root.get("Name") {
        Some(Node::String(name)) => name.as_str(),
        _ => "",
    };
    let at = At {
        machine: name,
        state: None,
    };
    if root.contains_key("nodes") && root.contains_key("edges") && !root.contains_key("States") {
        return Err(at.invalid(
            "nodes",
            "this is the old saga designer's graph format (nodes/edges); export the state \
             language JSON (Name, StartState, States) instead",
        ));
    }
    let name = at.required_string(root.get("Name"), "Name")?;
    let comment = at.string(root.get("Comment"), "Comment")?;
    let version = at
        .string(root.get("Version"), "Version")?
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let start_state = at.required_string(root.get("StartState"), "StartState")?;
    // Seata: a blank strategy means the default; otherwise the enum's exact name.
    let recover_strategy = match at.string(root.get("RecoverStrategy"), "RecoverStrategy")? {
        None => RecoverStrategy::default(),
        Some(s) if s.trim().is_empty() => RecoverStrategy::default(),
        Some(s) if s == "Compensate" => RecoverStrategy::Compensate,
        Some(s) if s == "Forward" => RecoverStrategy::Forward,
        Some(s) => {
            return Err(at.invalid(
                "RecoverStrategy",
                format!("{s:?} is not a strategy; use \"Compensate\" or \"Forward\""),
            ));
        }
    };
    let persist = at
        .boolean(root.get("IsPersist"), "IsPersist")?
        .unwrap_or(true);
    let retry_persist_mode_update = at
        .boolean(
            root.get("IsRetryPersistModeUpdate"),
            "IsRetryPersistModeUpdate",
        )?
        .unwrap_or(false);
    let compensate_persist_mode_update = at
        .boolean(
            root.get("IsCompensatePersistModeUpdate"),
            "IsCompensatePersistModeUpdate",
        )?
        .unwrap_or(false);
    let states_node = at
        .object(root.get("States"), "States")?
        .ok_or_else(|| at.missing("States"))?;
    if states_node.len() > MAX_STATES {
        return Err(DefinitionError::TooManyStates {
            machine: name,
            count: states_node.len(),
            limit: MAX_STATES,
        });
    }
    let mut states = IndexMap::with_capacity(states_node.len());
    for (state_name, node) in states_node {
        let at = At {
            machine: &name,
            state: Some(state_name),
        };
        let Node::Object(obj) = node else {
            return Err(DefinitionError::WrongType {
                machine: name.clone(),
                state: Some(state_name.clone()),
                property: "States".to_owned(),
                expected: "an object (the state)",
                found: node.type_name(),
            });
        };
        states.insert(state_name.clone(), read_state(&at, state_name, obj)?);
    }
    let mut machine = StateMachine {
        name,
        comment,
        version,
        start_state,
        recover_strategy,
        persist,
        retry_persist_mode_update,
        compensate_persist_mode_update,
        states,
    };
    apply_seata_defaults(&mut machine);
    Ok(machine)
}

fn read_state(at: &At<'_>, name: &str, obj: &Obj) -> Result<State> {
    let type_name = at.required_string(obj.get("Type"), "Type")?;
    let comment = at.string(obj.get("Comment"), "Comment")?;
    let kind = match type_name.as_str() {
        "ServiceTask" => StateKind::ServiceTask(ServiceTask {
            service_name: at.required_string(obj.get("ServiceName"), "ServiceName")?,
            service_method: at.required_string(obj.get("ServiceMethod"), "ServiceMethod")?,
            service_type: at.string(obj.get("ServiceType"), "ServiceType")?,
            parameter_types: at.strings(obj.get("ParameterTypes"), "ParameterTypes")?,
            task: read_task(at, obj)?,
        }),
        "ScriptTask" => {
            let script_type = at
                .string(obj.get("ScriptType"), "ScriptType")?
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| SEATA_DEFAULT_SCRIPT_TYPE.to_owned());
            if !SCRIPT_TYPES.contains(&script_type.as_str()) {
                return Err(DefinitionError::UnsupportedScriptType {
                    machine: at.machine.to_owned(),
                    state: name.to_owned(),
                    script_type,
                });
            }
            StateKind::ScriptTask(ScriptTask {
                script_type,
                script_content: at.required_string(obj.get("ScriptContent"), "ScriptContent")?,
                task: read_task(at, obj)?,
            })
        }
        "SubStateMachine" => StateKind::SubStateMachine(SubStateMachine {
            state_machine_name: at
                .required_string(obj.get("StateMachineName"), "StateMachineName")?,
            task: read_task(at, obj)?,
        }),
        "CompensateSubMachine" => StateKind::CompensateSubMachine(read_task(at, obj)?),
        "Choice" => {
            let items = at
                .array(obj.get("Choices"), "Choices")?
                .ok_or_else(|| at.missing("Choices"))?;
            let mut choices = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let property = format!("Choices[{i}]");
                let branch = at
                    .object(Some(item), &property)?
                    .ok_or_else(|| at.wrong_type(&property, "an object", item))?;
                choices.push(ChoiceBranch {
                    expression: at.required_string(
                        branch.get("Expression"),
                        &format!("{property}.Expression"),
                    )?,
                    next: at.required_string(branch.get("Next"), &format!("{property}.Next"))?,
                });
            }
            StateKind::Choice(Choice {
                choices,
                default: at.string(obj.get("Default"), "Default")?,
            })
        }
        "CompensationTrigger" => StateKind::CompensationTrigger {
            next: at.string(obj.get("Next"), "Next")?,
        },
        "Succeed" => StateKind::Succeed,
        "Fail" => StateKind::Fail(Fail {
            error_code: at.string(obj.get("ErrorCode"), "ErrorCode")?,
            message: at.string(obj.get("Message"), "Message")?,
        }),
        _ => {
            return Err(DefinitionError::UnknownStateType {
                machine: at.machine.to_owned(),
                state: name.to_owned(),
                type_name,
            });
        }
    };
    Ok(State {
        name: name.to_owned(),
        comment,
        kind,
    })
}

fn read_task(at: &At<'_>, obj: &Obj) -> Result<Task> {
    let input = at
        .array(obj.get("Input"), "Input")?
        .map(|items| items.iter().cloned().map(Node::into_value).collect())
        .unwrap_or_default();
    let output = at
        .object(obj.get("Output"), "Output")?
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.clone().into_value()))
                .collect()
        })
        .unwrap_or_default();
    let mut status = IndexMap::new();
    if let Some(map) = at.object(obj.get("Status"), "Status")? {
        for (condition, code) in map {
            let property = format!("Status[{condition:?}]");
            let Node::String(code) = code else {
                return Err(at.wrong_type(&property, "a status code string (SU, FA or UN)", code));
            };
            status.insert(condition.clone(), status_code(at, &property, code)?);
        }
    }
    let mut retry = Vec::new();
    for (i, item) in at
        .array(obj.get("Retry"), "Retry")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let property = format!("Retry[{i}]");
        let map = at
            .object(Some(item), &property)?
            .ok_or_else(|| at.wrong_type(&property, "an object", item))?;
        let defaults = Retry::default();
        retry.push(Retry {
            exceptions: at.strings(map.get("Exceptions"), &format!("{property}.Exceptions"))?,
            interval_seconds: at
                .number(
                    map.get("IntervalSeconds"),
                    &format!("{property}.IntervalSeconds"),
                )?
                .unwrap_or(defaults.interval_seconds),
            max_attempts: at
                .count(map.get("MaxAttempts"), &format!("{property}.MaxAttempts"))?
                .unwrap_or(defaults.max_attempts),
            backoff_rate: at
                .number(map.get("BackoffRate"), &format!("{property}.BackoffRate"))?
                .unwrap_or(defaults.backoff_rate),
        });
    }
    let mut catches = Vec::new();
    for (i, item) in at
        .array(obj.get("Catch"), "Catch")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let property = format!("Catch[{i}]");
        let map = at
            .object(Some(item), &property)?
            .ok_or_else(|| at.wrong_type(&property, "an object", item))?;
        catches.push(Catch {
            exceptions: at.strings(map.get("Exceptions"), &format!("{property}.Exceptions"))?,
            next: at.required_string(map.get("Next"), &format!("{property}.Next"))?,
        });
    }
    let loop_ = match at.object(obj.get("Loop"), "Loop")? {
        None => None,
        Some(map) => Some(read_loop(at, map)?),
    };
    Ok(Task {
        // Seata treats a blank CompensateState as none.
        compensate_state: at
            .string(obj.get("CompensateState"), "CompensateState")?
            .filter(|s| !s.trim().is_empty()),
        for_compensation: at
            .boolean(obj.get("IsForCompensation"), "IsForCompensation")?
            .unwrap_or(false),
        for_update: at
            .boolean(obj.get("IsForUpdate"), "IsForUpdate")?
            .unwrap_or(false),
        persist: at.boolean(obj.get("IsPersist"), "IsPersist")?,
        is_async: at.boolean(obj.get("IsAsync"), "IsAsync")?.unwrap_or(false),
        input,
        output,
        status,
        retry,
        catches,
        loop_,
        next: at.string(obj.get("Next"), "Next")?,
    })
}

fn status_code(at: &At<'_>, property: &str, code: &str) -> Result<ExecutionStatus> {
    match ExecutionStatus::from_code(code) {
        Some(
            status
            @ (ExecutionStatus::Succeed | ExecutionStatus::Failed | ExecutionStatus::Unknown),
        ) => Ok(status),
        _ => Err(at.invalid(
            property,
            format!("{code:?} is not a state status; use \"SU\", \"FA\" or \"UN\""),
        )),
    }
}

fn read_loop(at: &At<'_>, map: &Obj) -> Result<Loop> {
    let defaults = Loop::default();
    // Seata reads Parallel with `NumberUtils.toInt(String.valueOf(..))`, so "3" works too.
    let parallel = match present(map.get("Parallel")) {
        None => defaults.parallel,
        Some(Node::String(s)) => s
            .trim()
            .parse::<u32>()
            .map_err(|_| at.invalid("Loop.Parallel", format!("{s:?} is not a whole number")))?,
        Some(node) => at
            .count(Some(node), "Loop.Parallel")?
            .unwrap_or(defaults.parallel),
    };
    Ok(Loop {
        parallel,
        collection: at.required_string(map.get("Collection"), "Loop.Collection")?,
        element_variable_name: at
            .string(map.get("ElementVariableName"), "Loop.ElementVariableName")?
            .unwrap_or(defaults.element_variable_name),
        element_index_name: at
            .string(map.get("ElementIndexName"), "Loop.ElementIndexName")?
            .unwrap_or(defaults.element_index_name),
        completion_condition: at
            .string(map.get("CompletionCondition"), "Loop.CompletionCondition")?
            .unwrap_or(defaults.completion_condition),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing: model → JSON tree. Optional properties are written only when they differ from what
// reading their absence gives, so a written definition reads back equal and stays short.

fn text(s: &str) -> Node {
    Node::String(s.to_owned())
}

fn texts(items: &[String]) -> Node {
    Node::Array(items.iter().map(|s| text(s)).collect())
}

fn float(v: f64) -> Node {
    Number::from_f64(v).map_or(Node::Null, Node::Number)
}

fn machine_node(m: &StateMachine) -> Node {
    let mut o = Obj::new();
    o.insert("Name".into(), text(&m.name));
    if let Some(comment) = &m.comment {
        o.insert("Comment".into(), text(comment));
    }
    o.insert("Version".into(), text(&m.version));
    o.insert("StartState".into(), text(&m.start_state));
    o.insert("RecoverStrategy".into(), text(m.recover_strategy.as_str()));
    if !m.persist {
        o.insert("IsPersist".into(), Node::Bool(false));
    }
    if m.retry_persist_mode_update {
        o.insert("IsRetryPersistModeUpdate".into(), Node::Bool(true));
    }
    if m.compensate_persist_mode_update {
        o.insert("IsCompensatePersistModeUpdate".into(), Node::Bool(true));
    }
    o.insert("Type".into(), text("STATE_LANG"));
    let states = m
        .states
        .iter()
        .map(|(name, state)| (name.clone(), state_node(state)))
        .collect();
    o.insert("States".into(), Node::Object(states));
    Node::Object(o)
}

fn state_node(state: &State) -> Node {
    let mut o = Obj::new();
    o.insert("Type".into(), text(state.kind.type_name()));
    if let Some(comment) = &state.comment {
        o.insert("Comment".into(), text(comment));
    }
    match &state.kind {
        StateKind::ServiceTask(s) => {
            o.insert("ServiceName".into(), text(&s.service_name));
            o.insert("ServiceMethod".into(), text(&s.service_method));
            if let Some(service_type) = &s.service_type {
                o.insert("ServiceType".into(), text(service_type));
            }
            if !s.parameter_types.is_empty() {
                o.insert("ParameterTypes".into(), texts(&s.parameter_types));
            }
            task_properties(&mut o, &s.task);
        }
        StateKind::ScriptTask(s) => {
            o.insert("ScriptType".into(), text(&s.script_type));
            o.insert("ScriptContent".into(), text(&s.script_content));
            task_properties(&mut o, &s.task);
        }
        StateKind::SubStateMachine(s) => {
            o.insert("StateMachineName".into(), text(&s.state_machine_name));
            task_properties(&mut o, &s.task);
        }
        StateKind::CompensateSubMachine(task) => task_properties(&mut o, task),
        StateKind::Choice(c) => {
            let choices = c
                .choices
                .iter()
                .map(|b| {
                    let mut branch = Obj::new();
                    branch.insert("Expression".into(), text(&b.expression));
                    branch.insert("Next".into(), text(&b.next));
                    Node::Object(branch)
                })
                .collect();
            o.insert("Choices".into(), Node::Array(choices));
            if let Some(default) = &c.default {
                o.insert("Default".into(), text(default));
            }
        }
        StateKind::CompensationTrigger { next } => {
            if let Some(next) = next {
                o.insert("Next".into(), text(next));
            }
        }
        StateKind::Succeed => {}
        StateKind::Fail(f) => {
            if let Some(code) = &f.error_code {
                o.insert("ErrorCode".into(), text(code));
            }
            if let Some(message) = &f.message {
                o.insert("Message".into(), text(message));
            }
        }
    }
    Node::Object(o)
}

fn task_properties(o: &mut Obj, t: &Task) {
    if t.is_async {
        o.insert("IsAsync".into(), Node::Bool(true));
    }
    if let Some(compensator) = &t.compensate_state {
        o.insert("CompensateState".into(), text(compensator));
    }
    if t.for_compensation {
        o.insert("IsForCompensation".into(), Node::Bool(true));
    }
    if t.for_update {
        o.insert("IsForUpdate".into(), Node::Bool(true));
    }
    if let Some(persist) = t.persist {
        o.insert("IsPersist".into(), Node::Bool(persist));
    }
    if !t.input.is_empty() {
        o.insert(
            "Input".into(),
            Node::Array(t.input.iter().map(Node::from_value).collect()),
        );
    }
    if !t.output.is_empty() {
        let output = t
            .output
            .iter()
            .map(|(k, v)| (k.clone(), Node::from_value(v)))
            .collect();
        o.insert("Output".into(), Node::Object(output));
    }
    if !t.status.is_empty() {
        let status = t
            .status
            .iter()
            .map(|(condition, status)| (condition.clone(), text(status.code())))
            .collect();
        o.insert("Status".into(), Node::Object(status));
    }
    if !t.retry.is_empty() {
        let retries = t
            .retry
            .iter()
            .map(|r| {
                let mut retry = Obj::new();
                retry.insert("Exceptions".into(), texts(&r.exceptions));
                retry.insert("IntervalSeconds".into(), float(r.interval_seconds));
                retry.insert("MaxAttempts".into(), Node::Number(r.max_attempts.into()));
                retry.insert("BackoffRate".into(), float(r.backoff_rate));
                Node::Object(retry)
            })
            .collect();
        o.insert("Retry".into(), Node::Array(retries));
    }
    if !t.catches.is_empty() {
        let catches = t
            .catches
            .iter()
            .map(|c| {
                let mut catch = Obj::new();
                catch.insert("Exceptions".into(), texts(&c.exceptions));
                catch.insert("Next".into(), text(&c.next));
                Node::Object(catch)
            })
            .collect();
        o.insert("Catch".into(), Node::Array(catches));
    }
    if let Some(l) = &t.loop_ {
        let mut lp = Obj::new();
        lp.insert("Parallel".into(), Node::Number(l.parallel.into()));
        lp.insert("Collection".into(), text(&l.collection));
        lp.insert("ElementVariableName".into(), text(&l.element_variable_name));
        lp.insert("ElementIndexName".into(), text(&l.element_index_name));
        lp.insert("CompletionCondition".into(), text(&l.completion_condition));
        o.insert("Loop".into(), Node::Object(lp));
    }
    if let Some(next) = &t.next {
        o.insert("Next".into(), text(next));
    }
}
