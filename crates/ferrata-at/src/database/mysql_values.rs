//! MySQL/MariaDB rows and parameters as undo `Value`s, following MySQL Connector/J 8's
//! `getObject` classes (`tinyInt1isBit`, `yearIsDateType` defaults; DATETIME as LocalDateTime).

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveDateTime};
use sqlx::mysql::types::{MySqlTime, MySqlTimeSign};
use sqlx::mysql::{MySqlArguments, MySqlRow, MySqlValueRef};
use sqlx::{Arguments, Decode, Row, ValueRef};

use super::values::{TimeText, integer};
use super::{TimeZone, ValueError};
use crate::meta::ColumnMeta;
use crate::undo::{Decimal, EpochTime, Value, jdbc_type};

/// How a column's values are read and bound, from information_schema's DATA_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// BIT(1), TINYINT(1) (Connector/J's `tinyInt1isBit`), BOOL.
    Bool,
    /// BIT(n > 1): Connector/J returns the bits as `byte[]`.
    Bits,
    /// TINYINT … BIGINT; `wide` is the integer class Java uses (`Long`/`BigInteger`).
    Integer {
        unsigned: bool,
        width: Width,
    },
    Decimal,
    Float,
    Double,
    Text,
    Binary,
    Date,
    Year,
    Time,
    /// DATETIME: a zone-less wall time (`LocalDateTime` in the Java RM's zone).
    DateTime,
    /// TIMESTAMP: an instant; sqlx sets the session `time_zone` to `+00:00`, so the server
    /// sends and takes UTC wall times.
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Small,
    Int,
    Big,
}

fn kind(column: &ColumnMeta) -> Option<Kind> {
    let column_type = column.column_type.to_ascii_lowercase();
    let unsigned = column_type.contains("unsigned");
    Some(match column.data_type.as_str() {
        "bool" | "boolean" => Kind::Bool,
        "bit" if column_type == "bit(1)" || column_type == "bit" => Kind::Bool,
        "bit" => Kind::Bits,
        "tinyint" if column.jdbc_type == jdbc_type::BIT => Kind::Bool,
        "tinyint" | "smallint" | "mediumint" => Kind::Integer {
            unsigned,
            width: Width::Small,
        },
        "int" | "integer" => Kind::Integer {
            unsigned,
            width: Width::Int,
        },
        "bigint" => Kind::Integer {
            unsigned,
            width: Width::Big,
        },
        "decimal" | "numeric" | "dec" | "fixed" => Kind::Decimal,
        "float" => Kind::Float,
        "double" | "real" | "double precision" => Kind::Double,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => Kind::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Binary,
        "date" => Kind::Date,
        "year" => Kind::Year,
        "time" => Kind::Time,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        _ => return None,
    })
}

pub(super) fn decode_value(
    row: &MySqlRow,
    index: usize,
    column: &ColumnMeta,
    zone: TimeZone,
) -> Result<Value, ValueError> {
    let raw = row
        .try_get_raw(index)
        .map_err(|e| ValueError::read(column, e))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = kind(column).ok_or_else(|| ValueError::unsupported(column))?;
    decode(raw, kind, column, zone).map_err(|e| ValueError::read(column, e))
}

type BoxError = sqlx::error::BoxDynError;

fn get<'r, T: Decode<'r, sqlx::MySql>>(raw: MySqlValueRef<'r>) -> Result<T, BoxError> {
    T::decode(raw)
}

fn decode(
    raw: MySqlValueRef<'_>,
    kind: Kind,
    column: &ColumnMeta,
    zone: TimeZone,
) -> Result<Value, BoxError> {
    Ok(match kind {
        // BIT arrives as big-endian bytes, TINYINT as an integer; both are "non-zero".
        Kind::Bool if column.data_type == "bit" => {
            Value::Bool(get::<&[u8]>(raw)?.iter().any(|b| *b != 0))
        }
        Kind::Bool => Value::Bool(get::<i64>(raw)? != 0),
        Kind::Bits => Value::Bytes(get::<&[u8]>(raw)?.to_vec()),
        Kind::Integer {
            unsigned: true,
            width,
        } => {
            // Read unsigned: a signed read would turn 255 into -1.
            let v = get::<u64>(raw)?;
            match width {
                Width::Small => Value::Int(i32::try_from(v)?),
                Width::Int => Value::Long(i64::try_from(v)?),
                Width::Big => Value::BigInteger(i128::from(v)),
            }
        }
        Kind::Integer {
            unsigned: false,
            width,
        } => {
            let v = get::<i64>(raw)?;
            match width {
                Width::Small | Width::Int => Value::Int(i32::try_from(v)?),
                Width::Big => Value::Long(v),
            }
        }
        // DECIMAL is text in both protocols: parsed as is, every digit and the scale kept.
        Kind::Decimal => Value::Decimal(Decimal::parse(std::str::from_utf8(get::<&[u8]>(raw)?)?)?),
        Kind::Float => Value::Float(get::<f32>(raw)?),
        Kind::Double => Value::Double(get::<f64>(raw)?),
        Kind::Text => Value::String(std::str::from_utf8(get::<&[u8]>(raw)?)?.to_owned()),
        Kind::Binary => Value::Bytes(get::<&[u8]>(raw)?.to_vec()),
        Kind::Date => Value::Date(zone.date_to_epoch_ms(get::<NaiveDate>(raw)?)),
        Kind::Year => {
            let year = i32::try_from(get::<i64>(raw)?)?;
            let date = NaiveDate::from_ymd_opt(year, 1, 1).ok_or("YEAR out of range")?;
            Value::Date(zone.date_to_epoch_ms(date))
        }
        Kind::Time => {
            let t = get::<MySqlTime>(raw)?;
            Value::Time(
                TimeText {
                    // Not `t.is_negative()`: sqlx 0.8.6's returns `is_positive()`.
                    negative: t.sign().is_negative(),
                    hours: t.hours(),
                    minutes: t.minutes(),
                    seconds: t.seconds(),
                    nanos: t.microseconds() * 1000,
                }
                .render(),
            )
        }
        Kind::DateTime => Value::LocalDateTime(zone.wall_to_epoch(get::<NaiveDateTime>(raw)?)),
        Kind::Timestamp => {
            Value::Timestamp(TimeZone::UTC.wall_to_epoch(get::<NaiveDateTime>(raw)?))
        }
    })
}

pub(super) fn bind_value(
    args: &mut MySqlArguments,
    value: &Value,
    column: Option<&ColumnMeta>,
    zone: TimeZone,
) -> Result<(), ValueError> {
    let fail = |reason: &dyn std::fmt::Display| ValueError::bind(value, column, reason);
    let param = match column {
        Some(c) => {
            let kind = kind(c).ok_or_else(|| fail(&"the column's type is not supported"))?;
            typed(value, kind, zone).map_err(|e| fail(&e))?
        }
        None => untyped(value, zone).map_err(|e| fail(&e))?,
    };
    param.add_to(args).map_err(|e| fail(&e))
}

/// One parameter in the sqlx type that makes the server see the intended SQL type.
enum Param {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    /// Sent as MYSQL_TYPE_NEWDECIMAL: a string parameter would compare as a double.
    Decimal(BigDecimal),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(MySqlTime),
    DateTime(NaiveDateTime),
}

impl Param {
    fn add_to(self, args: &mut MySqlArguments) -> Result<(), BoxError> {
        match self {
            Param::Null => args.add(Option::<String>::None),
            Param::Bool(v) => args.add(v),
            Param::I64(v) => args.add(v),
            Param::U64(v) => args.add(v),
            Param::Decimal(v) => args.add(v),
            Param::F32(v) => args.add(v),
            Param::F64(v) => args.add(v),
            Param::Text(v) => args.add(v),
            Param::Bytes(v) => args.add(v),
            Param::Date(v) => args.add(v),
            Param::Time(v) => args.add(v),
            Param::DateTime(v) => args.add(v),
        }
    }
}

fn typed(value: &Value, kind: Kind, zone: TimeZone) -> Result<Param, BoxError> {
    if let Value::Null = value {
        return Ok(Param::Null);
    }
    Ok(match kind {
        Kind::Bool => Param::I64(match value {
            Value::Bool(b) => i64::from(*b),
            other => i64::try_from(integer(other)?)?,
        }),
        // Bits as the unsigned number they spell (a binary string would compare as a string).
        Kind::Bits => match value {
            Value::Bytes(bytes) | Value::Blob(bytes) => {
                if bytes.len() > 8 {
                    return Err("more than 64 bits".into());
                }
                Param::U64(bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
            }
            Value::Bool(b) => Param::U64(u64::from(*b)),
            other => Param::U64(u64::try_from(integer(other)?)?),
        },
        Kind::Integer { unsigned, .. } => {
            let v = match value {
                Value::Bool(b) => i128::from(*b),
                other => integer(other)?,
            };
            if unsigned || v > i128::from(i64::MAX) {
                Param::U64(u64::try_from(v)?)
            } else {
                Param::I64(i64::try_from(v)?)
            }
        }
        Kind::Decimal => Param::Decimal(big_decimal(value)?),
        Kind::Float => match value {
            Value::Float(v) => Param::F32(*v),
            Value::Double(v) => Param::F64(*v),
            other => Param::Decimal(big_decimal(other)?),
        },
        Kind::Double => match value {
            Value::Float(v) => Param::F32(*v),
            Value::Double(v) => Param::F64(*v),
            other => Param::Decimal(big_decimal(other)?),
        },
        Kind::Text => Param::Text(text(value)?),
        Kind::Binary => match value {
            Value::Bytes(b) | Value::Blob(b) => Param::Bytes(b.clone()),
            Value::String(s) | Value::Clob(s) => Param::Bytes(s.as_bytes().to_vec()),
            _ => return Err("not a byte string".into()),
        },
        Kind::Date => Param::Date(date(value, zone)?),
        Kind::Year => match value {
            Value::Date(ms) => {
                use chrono::Datelike;
                let d = zone.epoch_ms_to_date(*ms).ok_or("date out of range")?;
                Param::I64(i64::from(d.year()))
            }
            other => Param::I64(i64::try_from(integer(other)?)?),
        },
        Kind::Time => Param::Time(time(value)?),
        Kind::DateTime => Param::DateTime(wall(value, zone)?),
        Kind::Timestamp => Param::DateTime(match value {
            // The instant as UTC wall time (the session zone); a LocalDateTime's instant is its
            // wall time in the Java RM's zone, as Connector/J would send it.
            Value::Timestamp(t) | Value::LocalDateTime(t) => {
                TimeZone::UTC.epoch_to_wall(*t).ok_or("time out of range")?
            }
            Value::Date(ms) => TimeZone::UTC
                .epoch_to_wall(EpochTime::from_epoch_ms(*ms))
                .ok_or("date out of range")?,
            Value::String(s) => s.parse()?,
            _ => return Err("not a point in time".into()),
        }),
    })
}

fn untyped(value: &Value, zone: TimeZone) -> Result<Param, BoxError> {
    Ok(match value {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Bool(*b),
        Value::Byte(_) | Value::Short(_) | Value::Int(_) | Value::Long(_) => {
            Param::I64(i64::try_from(integer(value)?)?)
        }
        Value::BigInteger(v) => match i64::try_from(*v) {
            Ok(v) => Param::I64(v),
            Err(_) => Param::U64(u64::try_from(*v)?),
        },
        Value::Decimal(_) => Param::Decimal(big_decimal(value)?),
        Value::Float(v) => Param::F32(*v),
        Value::Double(v) => Param::F64(*v),
        Value::String(_) | Value::Clob(_) | Value::PgObject { .. } => Param::Text(text(value)?),
        Value::Bytes(b) | Value::Blob(b) => Param::Bytes(b.clone()),
        Value::Date(_) => Param::Date(date(value, zone)?),
        Value::Time(_) => Param::Time(time(value)?),
        Value::LocalDateTime(_) => Param::DateTime(wall(value, zone)?),
        // An instant (e.g. a bound DateTime<Utc>): UTC wall time, like sqlx's own encoding.
        Value::Timestamp(t) => {
            Param::DateTime(TimeZone::UTC.epoch_to_wall(*t).ok_or("time out of range")?)
        }
        Value::Other { java_class, .. } => {
            return Err(format!("no MySQL parameter type for Java class {java_class}").into());
        }
    })
}

fn big_decimal(value: &Value) -> Result<BigDecimal, BoxError> {
    let text = match value {
        Value::Decimal(d) => d.to_json_number(),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::String(s) => Decimal::parse(s.trim())?.to_json_number(),
        other => integer(other)?.to_string(),
    };
    Ok(text.parse()?)
}

fn text(value: &Value) -> Result<String, BoxError> {
    Ok(match value {
        Value::String(s) | Value::Clob(s) | Value::Time(s) => s.clone(),
        Value::PgObject { value: Some(v), .. } => v.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        Value::Bytes(b) | Value::Blob(b) => String::from_utf8(b.clone())?,
        other => integer(other)?.to_string(),
    })
}

fn date(value: &Value, zone: TimeZone) -> Result<NaiveDate, BoxError> {
    match value {
        Value::Date(ms) => zone
            .epoch_ms_to_date(*ms)
            .ok_or_else(|| "date out of range".into()),
        Value::Timestamp(_) | Value::LocalDateTime(_) => Ok(wall(value, zone)?.date()),
        Value::String(s) => Ok(s.parse()?),
        _ => Err("not a date".into()),
    }
}

/// A zone-less wall time as a Java RM in `zone` would send it.
fn wall(value: &Value, zone: TimeZone) -> Result<NaiveDateTime, BoxError> {
    match value {
        Value::Timestamp(t) | Value::LocalDateTime(t) => zone
            .epoch_to_wall(*t)
            .ok_or_else(|| "time out of range".into()),
        Value::Date(ms) => zone
            .epoch_to_wall(EpochTime::from_epoch_ms(*ms))
            .ok_or_else(|| "date out of range".into()),
        Value::String(s) => Ok(s.parse()?),
        _ => Err("not a date and time".into()),
    }
}

fn time(value: &Value) -> Result<MySqlTime, BoxError> {
    let t = match value {
        Value::Time(s) | Value::String(s) => TimeText::parse(s).ok_or("not a TIME text")?,
        _ => return Err("not a time".into()),
    };
    if t.nanos % 1000 != 0 {
        return Err("MySQL TIME holds microseconds at most".into());
    }
    let sign = if t.negative {
        MySqlTimeSign::Negative
    } else {
        MySqlTimeSign::Positive
    };
    Ok(MySqlTime::new(
        sign,
        t.hours,
        t.minutes,
        t.seconds,
        t.nanos / 1000,
    )?)
}
