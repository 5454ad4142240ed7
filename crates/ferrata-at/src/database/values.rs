//! TEMPORARY STUB (replaced by the at-values branch): signatures only.

use crate::undo::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeZone {
    pub offset_seconds: i32,
}

impl TimeZone {
    pub const UTC: TimeZone = TimeZone { offset_seconds: 0 };
}

#[derive(Debug, thiserror::Error)]
#[error("value error: {0}")]
pub struct ValueError(pub String);

pub fn same_value(a: &Value, b: &Value, _column_jdbc_type: i32) -> bool {
    a == b
}
