//! A statement and its bind values, as the application hands it to an AT transaction:
//! `ferrata_at::query("UPDATE account SET money = money - ? WHERE id = ?").bind(10).bind(1)`.
//! The values stay readable (unlike sqlx's encoded arguments) because the before-image query
//! re-uses the statement's WHERE with the same values.

use crate::undo::Value;

/// SQL text with its bind values in placeholder order.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a query does nothing until it is executed"]
pub struct AtQuery {
    sql: String,
    params: Vec<Value>,
}

/// A statement to run through an AT transaction; bind its values with [`AtQuery::bind`].
pub fn query(sql: impl Into<String>) -> AtQuery {
    AtQuery {
        sql: sql.into(),
        params: Vec::new(),
    }
}

impl AtQuery {
    /// Appends the value of the next placeholder (`?` on MySQL, `$n` in order on PostgreSQL).
    pub fn bind(mut self, value: impl Into<Value>) -> AtQuery {
        self.params.push(value.into());
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn params(&self) -> &[Value] {
        &self.params
    }
}
