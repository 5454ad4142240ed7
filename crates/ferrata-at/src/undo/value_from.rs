//! `Value`s from what applications bind to their statements, as the Java class a JDBC
//! application binding the same Java value would have recorded.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::decimal::Decimal;
use super::error::UndoError;
use super::value::{EpochTime, Value};

impl Value {
    /// A `java.math.BigDecimal` from decimal text (`"12.50"` keeps scale 2).
    pub fn decimal(text: &str) -> Result<Value, UndoError> {
        Decimal::parse(text).map(Value::Decimal)
    }
}

macro_rules! from_as {
    ($($t:ty => $variant:ident($as:ty)),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(<$as>::from(v))
            }
        })*
    };
}

// Signed widths keep Java's class of the same width (setByte, setShort, …); unsigned ones
// take the class Connector/J reads the matching UNSIGNED column as.
from_as! {
    i8 => Byte(i8),
    i16 => Short(i16),
    i32 => Int(i32),
    i64 => Long(i64),
    u8 => Int(i32),
    u16 => Int(i32),
    u32 => Long(i64),
    u64 => BigInteger(i128),
    f32 => Float(f32),
    f64 => Double(f64),
    bool => Bool(bool),
    String => String(String),
    &str => String(String),
    Vec<u8> => Bytes(Vec<u8>),
    Decimal => Decimal(Decimal),
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// `java.sql.Date` of midnight UTC; for another Java zone use
/// `database::TimeZone::date`.
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Value {
        let utc = v.and_time(NaiveTime::MIN).and_utc();
        Value::Date(utc.timestamp_millis())
    }
}

/// `java.sql.Time` text (`HH:MM:SS`, plus the fraction when there is one).
impl From<NaiveTime> for Value {
    fn from(v: NaiveTime) -> Value {
        use chrono::Timelike;
        let mut text = v.format("%H:%M:%S").to_string();
        let nanos = v.nanosecond().min(999_999_999);
        if nanos != 0 {
            text.push('.');
            text.push_str(format!("{nanos:09}").trim_end_matches('0'));
        }
        Value::Time(text)
    }
}

/// `java.time.LocalDateTime` of that wall time in UTC; for another Java zone use
/// `database::TimeZone::local_date_time`.
impl From<NaiveDateTime> for Value {
    fn from(v: NaiveDateTime) -> Value {
        Value::from(v.and_utc()).into_local()
    }
}

/// `java.sql.Timestamp` of the instant.
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Value {
        Value::Timestamp(EpochTime {
            seconds: v.timestamp(),
            nanos: v.timestamp_subsec_nanos(),
        })
    }
}

impl Value {
    fn into_local(self) -> Value {
        match self {
            Value::Timestamp(t) => Value::LocalDateTime(t),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_values_take_java_classes() {
        assert_eq!(Value::from(5i8), Value::Byte(5));
        assert_eq!(Value::from(u32::MAX), Value::Long(4_294_967_295));
        assert_eq!(Value::from(u64::MAX), Value::BigInteger(u64::MAX.into()));
        assert_eq!(Value::from(Option::<i32>::None), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::String("x".into()));
        assert_eq!(Value::from(&b"ab"[..]), Value::Bytes(b"ab".to_vec()));
        let d = Value::decimal("12.50").expect("decimal");
        let Value::Decimal(inner) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(inner.scale(), 2);
        let date = NaiveDate::from_ymd_opt(1970, 1, 2).expect("date");
        assert_eq!(Value::from(date), Value::Date(86_400_000));
        let t = NaiveTime::from_hms_micro_opt(1, 2, 3, 500_000).expect("time");
        assert_eq!(Value::from(t), Value::Time("01:02:03.5".into()));
        let wall = date.and_hms_nano_opt(0, 0, 1, 7).expect("wall");
        assert_eq!(
            Value::from(wall),
            Value::LocalDateTime(EpochTime {
                seconds: 86_401,
                nanos: 7
            })
        );
        assert_eq!(
            Value::from(wall.and_utc()),
            Value::Timestamp(EpochTime {
                seconds: 86_401,
                nanos: 7
            })
        );
    }
}
