//! Errors of the Saga crate. [`DefinitionError`]: a state machine definition that cannot be
//! loaded (JSON) or built (builder), each naming the machine, the state and the property at fault.

use std::fmt::Write as _;

/// Why a state machine definition was refused. Validation errors carry the machine name, the
/// state (`None` for machine-level properties) and the property in Seata's spelling
/// (`Next`, `Retry[0].MaxAttempts`, `Choices[1].Next`, ...), whether the definition came from
/// JSON or from the builder.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The document is larger than [`crate::json::MAX_DEFINITION_BYTES`].
    #[error("state machine definition is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The machine has more than [`crate::validate::MAX_STATES`] states.
    #[error("{}: {count} states; the limit is {limit}", at(.machine, &None, None))]
    TooManyStates {
        machine: String,
        count: usize,
        limit: usize,
    },
    /// Not JSON, or not a JSON object at the top (the message has line and column).
    #[error("state machine definition is not valid JSON: {0}")]
    Malformed(String),
    /// A required property is absent (or `null`).
    #[error("{}: required property is missing", at(.machine, .state, Some(.property.as_str())))]
    Missing {
        machine: String,
        state: Option<String>,
        property: String,
    },
    /// A property has the wrong JSON type.
    #[error(
        "{}: expected {expected}, found {found}",
        at(.machine, .state, Some(.property.as_str()))
    )]
    WrongType {
        machine: String,
        state: Option<String>,
        property: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A property has a value outside what it allows (empty name, negative interval, unknown
    /// status code, ...); `reason` says what is allowed.
    #[error("{}: {reason}", at(.machine, .state, Some(.property.as_str())))]
    InvalidValue {
        machine: String,
        state: Option<String>,
        property: String,
        reason: String,
    },
    /// A state's `Type` is not one of the state language's types.
    #[error(
        "{}: unknown state type {type_name:?} (expected ServiceTask, ScriptTask, Choice, Succeed, \
         Fail, CompensationTrigger, SubStateMachine or CompensateSubMachine)",
        at(.machine, &Some(.state.clone()), Some("Type"))
    )]
    UnknownStateType {
        machine: String,
        state: String,
        type_name: String,
    },
    /// A ScriptTask in a language this engine cannot run (Groovy, JavaScript, ...).
    #[error(
        "{}: script type {script_type:?} is not supported; only ScriptType: \"ferrata\" (the \
         expression language) is",
        at(.machine, &Some(.state.clone()), Some("ScriptType"))
    )]
    UnsupportedScriptType {
        machine: String,
        state: String,
        script_type: String,
    },
    /// `StartState`, a `Next`, `Default`, `Catch` target or `CompensateState` names a state the
    /// machine does not define.
    #[error(
        "{}: names state {target:?}, which the machine does not define",
        at(.machine, .state, Some(.property.as_str()))
    )]
    UnknownState {
        machine: String,
        state: Option<String>,
        property: String,
        target: String,
    },
    /// A `CompensateState` names a state that cannot compensate (not a task state).
    #[error(
        "{}: names state {target:?}, a {target_type}; a compensation must be a ServiceTask, \
         ScriptTask, SubStateMachine or CompensateSubMachine",
        at(.machine, &Some(.state.clone()), Some(.property.as_str()))
    )]
    NotATask {
        machine: String,
        state: String,
        property: String,
        target: String,
        target_type: &'static str,
    },
    /// Two states with one name (the builder; JSON refuses duplicate keys as malformed).
    #[error("{}: defined twice", at(.machine, &Some(.state.clone()), None))]
    DuplicateState { machine: String, state: String },
    /// States reachable from `StartState` from which no path leads to an end (Succeed, Fail, or a
    /// state without `Next`): the machine would loop forever.
    #[error("{}: states {states:?} loop with no way to an end state", at(.machine, &None, None))]
    NoWayOut {
        machine: String,
        states: Vec<String>,
    },
}

/// `state machine "m", state "s", property "p"` — the common prefix of validation messages.
fn at(machine: &str, state: &Option<String>, property: Option<&str>) -> String {
    let mut out = if machine.is_empty() {
        "state machine (without Name)".to_owned()
    } else {
        format!("state machine {machine:?}")
    };
    // Writing to a String cannot fail; the results are ignored for that reason.
    if let Some(state) = state {
        let _ = write!(out, ", state {state:?}");
    }
    if let Some(property) = property {
        let _ = write!(out, ", property {property:?}");
    }
    out
}
