//! Column values of undo-log images, one variant per Java class Seata's Jackson parser writes
//! (the JDBC drivers pick the class); see `UNDO_FORMAT.md` for the SQL type mapping.

use super::decimal::Decimal;

/// A point in time as Java's `Timestamp`/`Instant` hold it: seconds since the epoch (floor)
/// and the nanoseconds within that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochTime {
    pub seconds: i64,
    /// 0..=999_999_999.
    pub nanos: u32,
}

impl EpochTime {
    /// From epoch milliseconds (floor division, as `new Timestamp(ms)`).
    pub fn from_epoch_ms(epoch_ms: i64) -> EpochTime {
        EpochTime {
            seconds: epoch_ms.div_euclid(1000),
            // rem_euclid(1000) is 0..=999.
            nanos: epoch_ms.rem_euclid(1000) as u32 * 1_000_000,
        }
    }

    /// Epoch milliseconds (`Timestamp.getTime()`); saturates far outside any SQL range.
    pub fn epoch_ms(&self) -> i64 {
        self.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// Whether the value has digits below the millisecond, which Java writes as `[ms, nanos]`.
    pub fn has_sub_ms(&self) -> bool {
        !self.nanos.is_multiple_of(1_000_000)
    }
}

/// A column value in an undo image.
///
/// Variants name the Java class they are written as, so a log read from Java and written
/// back is the same log. Times are kept in the form the log holds them (epoch values are
/// relative to the writing JVM's default time zone where the Java type is zone-less, see
/// `UNDO_FORMAT.md`); converting them to SQL parameters is the SQL layer's business.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// `java.lang.Boolean`, bare `true`/`false`.
    Bool(bool),
    /// `java.lang.Byte`: `["java.lang.Byte", n]`.
    Byte(i8),
    /// `java.lang.Short`: `["java.lang.Short", n]`.
    Short(i16),
    /// `java.lang.Integer`, a bare JSON integer.
    Int(i32),
    /// `java.lang.Long`: `["java.lang.Long", n]`.
    Long(i64),
    /// `java.math.BigInteger` (BIGINT UNSIGNED on MySQL): `["java.math.BigInteger", n]`;
    /// values beyond i128 are refused when decoding.
    BigInteger(i128),
    /// `java.math.BigDecimal`: `["java.math.BigDecimal", 12.50]`, exact digits and scale.
    Decimal(Decimal),
    /// `java.lang.Float`: `["java.lang.Float", 1.5]`.
    Float(f32),
    /// `java.lang.Double`, a bare JSON number with a fraction or exponent.
    Double(f64),
    /// `java.lang.String`, a bare JSON string.
    String(String),
    /// `byte[]`: `["[B", "<base64>"]`.
    Bytes(Vec<u8>),
    /// `java.sql.Date`: `["java.sql.Date", epoch_ms]` (midnight in the writer's zone).
    Date(i64),
    /// `java.sql.Time`: `["java.sql.Time", "HH:MM:SS"]` (Jackson writes `Time.toString()`).
    Time(String),
    /// `java.sql.Timestamp`: `["java.sql.Timestamp", ms]` or `[ms, nanos]` below a millisecond.
    Timestamp(EpochTime),
    /// `java.time.LocalDateTime`, same shapes as `Timestamp`; the instant is the wall time
    /// in the writing JVM's default zone.
    LocalDateTime(EpochTime),
    /// `javax.sql.rowset.serial.SerialBlob`: `[class, "<base64>"]`.
    Blob(Vec<u8>),
    /// `javax.sql.rowset.serial.SerialClob`: `[class, "text"]`.
    Clob(String),
    /// `org.postgresql.util.PGobject` (PostgreSQL json, jsonb, enums and other types PgJDBC
    /// has no class for): an object `{"@class", "type", "value", "null"}`.
    PgObject {
        type_name: Option<String>,
        value: Option<String>,
    },
    /// Any other Java class, kept as the exact JSON it was read as (wrapper included) so
    /// that it is written back unchanged.
    Other { java_class: String, json: String },
}

impl Value {
    /// The Java class this value is written as (`None` for null).
    pub fn java_class(&self) -> Option<&str> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => "java.lang.Boolean",
            Value::Byte(_) => "java.lang.Byte",
            Value::Short(_) => "java.lang.Short",
            Value::Int(_) => "java.lang.Integer",
            Value::Long(_) => "java.lang.Long",
            Value::BigInteger(_) => "java.math.BigInteger",
            Value::Decimal(_) => "java.math.BigDecimal",
            Value::Float(_) => "java.lang.Float",
            Value::Double(_) => "java.lang.Double",
            Value::String(_) => "java.lang.String",
            Value::Bytes(_) => "[B",
            Value::Date(_) => "java.sql.Date",
            Value::Time(_) => "java.sql.Time",
            Value::Timestamp(_) => "java.sql.Timestamp",
            Value::LocalDateTime(_) => "java.time.LocalDateTime",
            Value::Blob(_) => "javax.sql.rowset.serial.SerialBlob",
            Value::Clob(_) => "javax.sql.rowset.serial.SerialClob",
            Value::PgObject { .. } => "org.postgresql.util.PGobject",
            Value::Other { java_class, .. } => java_class,
        })
    }
}
