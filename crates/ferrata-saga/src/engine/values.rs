//! How a machine's strings become values: `$<Type>.<content>` / `$<Type>{<content>}` references
//! (Seata's syntax) over the expression language, value templates for Input/Output, and the
//! Status and Choice conditions.

use serde_json::{Map, Value};

use super::error::ServiceError;
use crate::expr::{ExprError, Expression};

/// What a `$...` string refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reference<'a> {
    /// The expression language (`$.[x]`, `${[x]}`, or a bare condition).
    Expression(&'a str),
    /// `$Sequence.<name>`: a fresh unique id.
    Sequence,
    /// `$Exception{<kind>}`: the current error is of that kind (Status conditions only).
    Exception(&'a str),
}

/// Splits a `$` string into its type and content; `None` for a plain literal.
pub(crate) fn reference(text: &str) -> Result<Option<Reference<'_>>, String> {
    let Some(rest) = text.strip_prefix('$') else {
        return Ok(None);
    };
    let (kind, content) = if let Some(dot) = rest.find(['.', '{']) {
        let (kind, tail) = rest.split_at(dot);
        if let Some(inner) = tail.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| format!("{text:?}: `{{` without a closing `}}`"))?;
            (kind, inner)
        } else {
            (kind, &tail[1..])
        }
    } else {
        return Err(format!(
            "{text:?}: a reference is `$<Type>.<content>` or `$<Type>{{<content>}}`"
        ));
    };
    match kind {
        "" | "Evaluation" | "el" => Ok(Some(Reference::Expression(content))),
        "Sequence" => Ok(Some(Reference::Sequence)),
        "Exception" => Ok(Some(Reference::Exception(content.trim()))),
        other => Err(format!(
            "{text:?}: unknown reference type {other:?} (supported: `$.`, `$Sequence.`, `$Exception{{}}`)"
        )),
    }
}

/// Why a value or condition could not be worked out.
#[derive(Debug)]
pub(crate) enum ValueError {
    Expression(ExprError),
    Reference(String),
}

impl From<ExprError> for ValueError {
    fn from(e: ExprError) -> Self {
        ValueError::Expression(e)
    }
}

/// Evaluates a template: strings starting with `$` are references evaluated against `root`,
/// arrays and objects are walked, everything else is itself.
pub(crate) fn evaluate_template(
    template: &Value,
    root: &Value,
    sequence: &mut dyn FnMut() -> String,
) -> Result<Value, ValueError> {
    Ok(match template {
        Value::String(text) => match reference(text).map_err(ValueError::Reference)? {
            None => template.clone(),
            Some(Reference::Expression(content)) => Expression::parse(content)?.evaluate(root)?,
            Some(Reference::Sequence) => Value::String(sequence()),
            Some(Reference::Exception(_)) => {
                return Err(ValueError::Reference(format!(
                    "{text:?}: `$Exception` is only meaningful as a Status condition"
                )));
            }
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| evaluate_template(item, root, sequence))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                out.insert(key.clone(), evaluate_template(value, root, sequence)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A boolean condition (Choice, Status, loop completion): a bare expression or a `$.` one.
pub(crate) fn condition(text: &str, root: &Value) -> Result<bool, ValueError> {
    match reference(text).map_err(ValueError::Reference)? {
        None => Ok(Expression::parse(text)?.evaluate_condition(root)?),
        Some(Reference::Expression(content)) => {
            Ok(Expression::parse(content)?.evaluate_condition(root)?)
        }
        Some(_) => Err(ValueError::Reference(format!(
            "{text:?}: a condition must be an expression"
        ))),
    }
}

/// Whether a Status condition holds: `$Exception{kind}` against the error, any other
/// condition against the result (and never when the call failed).
pub(crate) fn status_condition(
    text: &str,
    output: Option<&Value>,
    error: Option<&ServiceError>,
) -> Result<bool, ValueError> {
    if let Some(Reference::Exception(kind)) = reference(text).map_err(ValueError::Reference)? {
        return Ok(error.is_some_and(|e| e.matches(kind)));
    }
    match (output, error) {
        (Some(output), None) => condition(text, output),
        _ => Ok(false),
    }
}

/// The context as a JSON value (the root of Input and Choice expressions).
pub(crate) fn context_root(context: &Map<String, Value>) -> Value {
    Value::Object(context.clone())
}
