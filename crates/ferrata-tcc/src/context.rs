//! The business action context and its wire form in BranchRegister/BranchReport applicationData:
//! `{"actionContext":{...}}`, written as Java's default (fastjson) plain JSON and read from Java
//! (fastjson, or jackson's typed `{"@class":...}` form) and Go participants alike.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Context keys Seata's frameworks write (Java `org.apache.seata.common.Constants`, Go
/// `pkg/constant/context.go`); the spellings are the interoperability contract.
pub mod keys {
    /// Top-level applicationData key holding the action context map.
    pub const ACTION_CONTEXT: &str = "actionContext";
    /// Epoch milliseconds when the try began.
    pub const ACTION_START_TIME: &str = "action-start-time";
    /// Name of the phase-one (try) method.
    pub const PREPARE_METHOD: &str = "sys::prepare";
    /// Name of the phase-two commit method.
    pub const COMMIT_METHOD: &str = "sys::commit";
    /// Name of the phase-two rollback method.
    pub const ROLLBACK_METHOD: &str = "sys::rollback";
    /// The action name (also the branch resource id).
    pub const ACTION_NAME: &str = "actionName";
    /// Boolean: phase 2 must go through the TCC fence (Java checks `Boolean.TRUE.equals`).
    pub const USE_TCC_FENCE: &str = "useTCCFence";
    /// The participant's local IP address.
    pub const HOST_NAME: &str = "host-name";
    /// Java only: the transaction isolation level of an `@Transactional` try method.
    pub const ISOLATION: &str = "isolation";
}

/// Java's `JsonUtil` picks the jackson parser when the text starts with exactly this.
pub const JACKSON_TYPED_PREFIX: &str = "{\"@class\":";

/// Why applicationData could not be turned into a context, or a value not read or stored.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(
        "the branch applicationData is not JSON ({source}); it must be \
         {{\"actionContext\":{{...}}}} as Seata's TCC writes it: {data:.200}"
    )]
    NotJson {
        data: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the branch applicationData is JSON but not an object with an \"actionContext\" object \
         ({found}); it was not written by a Seata TCC participant: {data:.200}"
    )]
    WrongShape { data: String, found: &'static str },
    #[error(
        "action context value {key:?} does not have the requested type ({source}); read it \
         with the type the try stored, or as serde_json::Value"
    )]
    ValueType {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("action context value {key:?} cannot be stored as JSON ({source})")]
    NotSerializable {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// The participant's `Params` did not serialize as a JSON object.
    #[error("the action context parameters are not a JSON object ({found})")]
    ParamsNotAnObject { found: &'static str },
    /// The branch's action context does not hold the participant's `Params`.
    #[error("the action context does not match the participant's parameters: {source}")]
    Params {
        #[source]
        source: serde_json::Error,
    },
}

/// What a TCC participant sees in each phase: the branch identity and its typed action
/// context ([`crate::TccParticipant::Params`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TccContext<P> {
    pub xid: String,
    pub branch_id: i64,
    pub action_name: String,
    /// The action context values; the try may change them (they are reported to the TC).
    pub params: P,
    /// The whole context as registered, framework keys included.
    raw: Map<String, Value>,
}

impl<P: Serialize + DeserializeOwned> TccContext<P> {
    /// The context phase 2 sees for a branch with this applicationData (as the TC hands it
    /// back); for tests of a participant's phase 2.
    pub fn from_application_data(
        xid: &str,
        branch_id: i64,
        action_name: &str,
        application_data: &str,
    ) -> Result<TccContext<P>, ContextError> {
        let branch = BusinessActionContext::from_application_data(
            xid,
            branch_id,
            action_name,
            application_data,
        )?;
        TccContext::decode(&branch)
    }

    /// The context of a phase-2 call, from the branch's applicationData.
    pub(crate) fn decode(branch: &BusinessActionContext) -> Result<TccContext<P>, ContextError> {
        let params = P::deserialize(Value::Object(branch.action_context.clone()))
            .map_err(|source| ContextError::Params { source })?;
        Ok(TccContext {
            xid: branch.xid.clone(),
            branch_id: branch.branch_id,
            action_name: branch.action_name.clone(),
            params,
            raw: branch.action_context.clone(),
        })
    }

    /// The context a try starts with: `params` plus the framework keys in `raw`.
    pub(crate) fn new(
        xid: String,
        branch_id: i64,
        action_name: String,
        params: P,
        raw: Map<String, Value>,
    ) -> TccContext<P> {
        TccContext {
            xid,
            branch_id,
            action_name,
            params,
            raw,
        }
    }

    /// The whole context map as the TC holds it, with the framework keys Java and Go write
    /// ([`keys`]); for reading values a participant written in another language stored.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The map to register or report: the framework keys with the current `params` over them.
    pub(crate) fn to_map(&self) -> Result<Map<String, Value>, ContextError> {
        let mut map = self.raw.clone();
        map.extend(params_map(&self.params)?);
        Ok(map)
    }
}

/// `params` as the JSON object it must serialize to.
pub(crate) fn params_map(params: &impl Serialize) -> Result<Map<String, Value>, ContextError> {
    match serde_json::to_value(params) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ContextError::ParamsNotAnObject {
            found: json_kind(&other),
        }),
        Err(source) => Err(ContextError::NotSerializable {
            key: "(parameters)".to_owned(),
            source,
        }),
    }
}

/// What a TCC participant sees in every phase: the branch identity and the action context map
/// that the try registered (and possibly updated) with the TC.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BusinessActionContext {
    pub xid: String,
    pub branch_id: i64,
    pub action_name: String,
    pub action_context: Map<String, Value>,
}

impl BusinessActionContext {
    /// Rebuilds the context of a phase-2 request as Java's `BusinessActionContextUtil` does: a
    /// blank applicationData or a missing/null `actionContext` gives an empty map.
    pub fn from_application_data(
        xid: &str,
        branch_id: i64,
        action_name: &str,
        application_data: &str,
    ) -> Result<BusinessActionContext, ContextError> {
        Ok(BusinessActionContext {
            xid: xid.to_owned(),
            branch_id,
            action_name: action_name.to_owned(),
            action_context: decode_application_data(application_data)?,
        })
    }

    /// The applicationData for BranchRegister/BranchReport: `{"actionContext":{...}}`.
    pub fn to_application_data(&self) -> String {
        encode_application_data(&self.action_context)
    }

    /// Reads `key` as `T`. Java stores values that are neither strings, numbers nor booleans
    /// as JSON text when added during the try, so a string holding JSON is parsed as a fallback.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ContextError> {
        let Some(value) = self.action_context.get(key) else {
            return Ok(None);
        };
        match T::deserialize(value) {
            Ok(v) => Ok(Some(v)),
            Err(first) => {
                if let Value::String(text) = value
                    && let Ok(v) = serde_json::from_str::<T>(text)
                {
                    return Ok(Some(v));
                }
                Err(ContextError::ValueType {
                    key: key.to_owned(),
                    source: first,
                })
            }
        }
    }

    /// The string stored under `key`, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.action_context.get(key).and_then(Value::as_str)
    }

    /// Stores `value` under `key`. Changes made during the try are reported to the TC once the
    /// try returns, so phase 2 sees them.
    pub fn put(
        &mut self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<(), ContextError> {
        let key = key.into();
        let value =
            serde_json::to_value(value).map_err(|source| ContextError::NotSerializable {
                key: key.clone(),
                source,
            })?;
        self.action_context.insert(key, value);
        Ok(())
    }

    /// True only when the context holds the boolean `true` under `useTCCFence`, exactly what
    /// Java's TCCResourceManager tests before routing phase 2 through the fence.
    pub fn use_tcc_fence(&self) -> bool {
        self.action_context.get(keys::USE_TCC_FENCE) == Some(&Value::Bool(true))
    }
}

/// Encodes an action context map as Java's default (fastjson) serializer does. (A Java RM set to
/// `tcc.contextJsonParserType=jackson` could not read plain JSON, but an RM only ever reads the
/// context of branches its own resources registered.)
pub fn encode_application_data(action_context: &Map<String, Value>) -> String {
    let mut root = Map::with_capacity(1);
    root.insert(
        keys::ACTION_CONTEXT.to_owned(),
        Value::Object(action_context.clone()),
    );
    Value::Object(root).to_string()
}

/// Decodes applicationData written by any Seata TCC participant into its action context map.
pub fn decode_application_data(data: &str) -> Result<Map<String, Value>, ContextError> {
    if data.trim().is_empty() {
        return Ok(Map::new());
    }
    let parsed: Value = serde_json::from_str(data).map_err(|source| ContextError::NotJson {
        data: data.to_owned(),
        source,
    })?;
    // Java decides by the exact prefix, so do the same: plain JSON is never "untyped".
    let parsed = if data.starts_with(JACKSON_TYPED_PREFIX) {
        strip_jackson_types(parsed)
    } else {
        parsed
    };
    let Value::Object(mut root) = parsed else {
        return Err(ContextError::WrongShape {
            data: data.to_owned(),
            found: json_kind(&parsed),
        });
    };
    match root.remove(keys::ACTION_CONTEXT) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(ContextError::WrongShape {
            data: data.to_owned(),
            found: json_kind(&other),
        }),
    }
}

/// Removes jackson default-typing metadata (`ObjectMapper.DefaultTyping.NON_FINAL`,
/// `As.PROPERTY`): objects carry an `"@class"` property, and values that cannot hold one
/// (`Long`, `Date`, `BigDecimal`, collections, enums) are wrapped as `["java.class", value]`.
pub fn strip_jackson_types(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "@class")
                .map(|(k, v)| (k, strip_jackson_types(v)))
                .collect(),
        ),
        Value::Array(items) => match type_wrapper_payload(items) {
            // A collection's payload is its element list: strip each element, but do not take
            // the list itself for another wrapper.
            Ok(Value::Array(elements)) => {
                Value::Array(elements.into_iter().map(strip_jackson_types).collect())
            }
            Ok(payload) => strip_jackson_types(payload),
            Err(items) => Value::Array(items.into_iter().map(strip_jackson_types).collect()),
        },
        other => other,
    }
}

/// `Ok(payload)` when `items` is a jackson `[type id, value]` wrapper, else the items back.
fn type_wrapper_payload(mut items: Vec<Value>) -> Result<Value, Vec<Value>> {
    let is_wrapper = items.len() == 2 && items[0].as_str().is_some_and(looks_like_java_type);
    if is_wrapper {
        Ok(items.swap_remove(1))
    } else {
        Err(items)
    }
}

/// A Java binary class name such as `java.lang.Long`, `java.util.Collections$SingletonMap` or
/// an array type id like `[Ljava.lang.Object;`.
fn looks_like_java_type(s: &str) -> bool {
    let name = s.trim_start_matches('[');
    let name = name
        .strip_prefix('L')
        .and_then(|n| n.strip_suffix(';'))
        .unwrap_or(name);
    name.contains('.')
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_type_names() {
        assert!(looks_like_java_type("java.lang.Long"));
        assert!(looks_like_java_type("java.util.Collections$SingletonMap"));
        assert!(looks_like_java_type("[Ljava.lang.Object;"));
        assert!(!looks_like_java_type("hello"));
        assert!(!looks_like_java_type("a b.c"));
        assert!(!looks_like_java_type("1.5"));
    }

    #[test]
    fn blank_and_missing_context_are_empty() {
        assert!(decode_application_data("").unwrap_or_default().is_empty());
        assert!(decode_application_data("{}").unwrap_or_default().is_empty());
        assert!(
            decode_application_data(r#"{"actionContext":null}"#)
                .unwrap_or_default()
                .is_empty()
        );
        assert!(decode_application_data("[1]").is_err());
        assert!(decode_application_data(r#"{"actionContext":3}"#).is_err());
        assert!(decode_application_data("{not json").is_err());
    }
}
