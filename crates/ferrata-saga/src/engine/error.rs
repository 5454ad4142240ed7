//! The engine's errors: what a service reports ([`ServiceError`]) and what a run can fail with
//! ([`SagaError`]).

use crate::expr::ExprError;
use crate::store::StoreError;

/// A service task's failure. `kind` plays the part of Java's exception class: `Retry` and
/// `Catch` entries and `$Exception{...}` status conditions match it by name (see
/// [`ServiceError::matches`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceError {
    pub kind: String,
    pub message: String,
}

/// Names that match every error, as `java.lang.Throwable` and `java.lang.Exception` do in
/// Seata's machines (Rust errors have no class hierarchy).
const MATCH_ALL: [&str; 6] = [
    "java.lang.Throwable",
    "java.lang.Exception",
    "java.lang.RuntimeException",
    "Throwable",
    "Exception",
    "*",
];

/// The kind of an error that says the service could not be reached at all, so the call surely
/// did nothing (Seata counts a refused connection as failed, not unknown).
pub const CONNECTION_REFUSED: &str = "java.net.ConnectException";

/// Kinds a SubStateMachine step fails with, by how its child ended: failed or compensated
/// (nothing of it is left to undo) vs. unknown (its compensation is owed).
pub const SUB_MACHINE_FAILED: &str = "ferrata.saga.SubMachineFailed";
pub const SUB_MACHINE_UNKNOWN: &str = "ferrata.saga.SubMachineUnknown";

/// Longest error message kept in a row: services' messages are theirs to size.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

impl ServiceError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// Whether an `Exceptions` entry names this error: the same kind, or a catch-all name.
    pub fn matches(&self, name: &str) -> bool {
        self.kind == name || MATCH_ALL.contains(&name)
    }

    pub(crate) fn matches_any(&self, names: &[String]) -> bool {
        names.iter().any(|name| self.matches(name))
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ServiceError {}

/// Why a Saga could not be started, recovered or compensated.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("no state machine named {0:?} is registered")]
    UnknownMachine(String),
    #[error("no state machine instance {0:?}")]
    UnknownInstance(String),
    #[error("state machine {machine:?}, state {state:?}: {message}")]
    Definition {
        machine: String,
        state: String,
        message: String,
    },
    #[error("state machine {machine:?}, state {state:?}: expression: {source}")]
    Expression {
        machine: String,
        state: String,
        #[source]
        source: ExprError,
    },
    #[error("saga input: {0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Boxed, as the TC's error is large and errors are rare.
    #[error(transparent)]
    Tc(Box<ferrata::Error>),
    #[error("saga definition: {0}")]
    Invalid(Box<crate::error::DefinitionError>),
}

impl SagaError {
    /// The machine itself is at fault (a definition, an expression, a limit): running the same
    /// step again fails the same way, so the instance is ended rather than retried.
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            SagaError::Definition { .. }
                | SagaError::Expression { .. }
                | SagaError::Invalid(_)
                | SagaError::UnknownMachine(_)
        )
    }
}

impl From<ferrata::Error> for SagaError {
    fn from(error: ferrata::Error) -> Self {
        SagaError::Tc(Box::new(error))
    }
}

impl From<crate::error::DefinitionError> for SagaError {
    fn from(error: crate::error::DefinitionError) -> Self {
        SagaError::Invalid(Box::new(error))
    }
}
