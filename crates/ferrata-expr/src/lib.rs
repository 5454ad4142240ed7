//! The saga expression language: the small, documented subset of Spring EL that Seata's state
//! language uses in Input, Output, Status, Choice and loop conditions, over JSON values.
//! Grammar, semantics and the SpEL features left out: `docs/guide/saga-expressions.md`.

mod eval;
mod lexer;
mod parser;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::Value;

/// Longest accepted expression, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 4096;

/// How deeply parentheses, brackets, braces, argument lists, ternary branches and unary
/// operators may nest.
pub const MAX_NESTING: usize = parser::MAX_DEPTH;

/// A parsed expression; cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: Arc<str>,
    ast: Arc<parser::Node>,
}

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ExprError {
    /// The text is not an expression of the language; `position` is a byte offset into it.
    #[error("cannot parse expression `{expression}` at byte {position}: {message}")]
    Parse {
        expression: String,
        position: usize,
        message: String,
    },
    /// The expression is well formed but failed on the values it met.
    #[error("cannot evaluate expression `{expression}`: {message}")]
    Eval { expression: String, message: String },
}

impl Expression {
    /// Parses `text`. Longer than [`MAX_EXPRESSION_LEN`] bytes or nested deeper than
    /// [`MAX_NESTING`] levels is a parse error.
    pub fn parse(text: &str) -> Result<Expression, ExprError> {
        let parse_error = |position: usize, message: String| ExprError::Parse {
            expression: text.to_owned(),
            position,
            message,
        };
        if text.len() > MAX_EXPRESSION_LEN {
            // The error keeps only the start of a hostile text, not all of it.
            let mut head: String = text.chars().take(64).collect();
            head.push('…');
            return Err(ExprError::Parse {
                expression: head,
                position: MAX_EXPRESSION_LEN,
                message: format!(
                    "the expression is {} bytes long; the limit is {MAX_EXPRESSION_LEN}",
                    text.len()
                ),
            });
        }
        let tokens = lexer::tokenize(text).map_err(|(at, message)| parse_error(at, message))?;
        let ast =
            parser::parse(tokens, text.len()).map_err(|(at, message)| parse_error(at, message))?;
        Ok(Expression {
            source: Arc::from(text),
            ast: Arc::new(ast),
        })
    }

    /// Evaluates against `root` (SpEL's root object): `#root` is root itself, `[key]` / `key` /
    /// `key.sub` navigate from it.
    pub fn evaluate(&self, root: &Value) -> Result<Value, ExprError> {
        eval::Evaluator::new(&self.source, root)
            .eval(&self.ast)
            .map(|value| value.into_owned())
            .map_err(|message| ExprError::Eval {
                expression: self.source.to_string(),
                message,
            })
    }

    /// Evaluates a Choice, Status or loop-completion condition: the result must be a JSON
    /// boolean (no truthiness, as in SpEL, which refuses to convert other values to a boolean).
    pub fn evaluate_condition(&self, root: &Value) -> Result<bool, ExprError> {
        match self.evaluate(root)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::Eval {
                expression: self.source.to_string(),
                message: format!(
                    "a condition must evaluate to a boolean, but this gave {}",
                    eval::describe(&other)
                ),
            }),
        }
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl FromStr for Expression {
    type Err = ExprError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Expression::parse(text)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
