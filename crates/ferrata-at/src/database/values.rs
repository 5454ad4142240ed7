//! What the per-database value bridges share: the time zone Java resource managers take epoch
//! values in, conversion errors, the `java.sql.Time` text, and type-aware value comparison.

// The helpers below serve the database features' bridges.
#![cfg_attr(not(any(feature = "mysql", feature = "postgres")), allow(dead_code))]

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::undo::jdbc_type;
use crate::undo::{EpochTime, Value};

const MS_PER_DAY: i64 = 86_400_000;

/// The JVM default zone of the Java RMs sharing this database, as a fixed UTC offset.
///
/// `java.sql.Date`, `java.time.LocalDateTime` and PostgreSQL `timestamp` images are zone-less
/// wall times that Java records as epoch values taken in that zone; reading and binding them
/// the same way keeps Rust- and Java-written logs interchangeable. Default: UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeZone {
    offset_seconds: i32,
}

impl TimeZone {
    pub const UTC: TimeZone = TimeZone { offset_seconds: 0 };

    /// East of UTC is positive; `None` beyond ±18 hours (Java's `ZoneOffset` range).
    pub const fn from_offset_seconds(offset_seconds: i32) -> Option<TimeZone> {
        if offset_seconds.abs() <= 18 * 3600 {
            Some(TimeZone { offset_seconds })
        } else {
            None
        }
    }

    pub const fn offset_seconds(&self) -> i32 {
        self.offset_seconds
    }

    /// The instant of wall time `wall` in this zone.
    pub fn wall_to_epoch(&self, wall: NaiveDateTime) -> EpochTime {
        let utc = wall.and_utc();
        EpochTime {
            seconds: utc.timestamp() - i64::from(self.offset_seconds),
            nanos: utc.timestamp_subsec_nanos(),
        }
    }

    /// The wall time of instant `time` in this zone (`None` outside chrono's range).
    pub fn epoch_to_wall(&self, time: EpochTime) -> Option<NaiveDateTime> {
        let seconds = time.seconds.checked_add(i64::from(self.offset_seconds))?;
        chrono::DateTime::from_timestamp(seconds, time.nanos).map(|t| t.naive_utc())
    }

    /// `java.sql.Date`'s epoch milliseconds for `date`: its midnight in this zone.
    pub fn date_to_epoch_ms(&self, date: NaiveDate) -> i64 {
        self.wall_to_epoch(date.and_time(NaiveTime::MIN)).epoch_ms()
    }

    /// The calendar date a `java.sql.Date` of `epoch_ms` shows in this zone (its
    /// `toLocalDate()`), `None` outside chrono's range.
    pub fn epoch_ms_to_date(&self, epoch_ms: i64) -> Option<NaiveDate> {
        let local_ms = epoch_ms.checked_add(i64::from(self.offset_seconds) * 1000)?;
        let days = local_ms.div_euclid(MS_PER_DAY);
        NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::TimeDelta::try_days(days)?)
    }

    /// A `java.sql.Date` value for `date`.
    pub fn date(&self, date: NaiveDate) -> Value {
        Value::Date(self.date_to_epoch_ms(date))
    }

    /// A `java.time.LocalDateTime` value for wall time `wall`.
    pub fn local_date_time(&self, wall: NaiveDateTime) -> Value {
        Value::LocalDateTime(self.wall_to_epoch(wall))
    }
}

/// Why a database value could not become a [`Value`], or a [`Value`] a parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("reading column {column} ({sql_type}): {reason}")]
    Read {
        column: String,
        sql_type: String,
        reason: String,
    },
    #[error("column {column} ({sql_type}): type not supported by AT (no Java class mapping)")]
    UnsupportedType { column: String, sql_type: String },
    #[error("binding {value} to {target}: {reason}")]
    Bind {
        /// The value's Java class and a short rendering of it.
        value: String,
        /// `column <name> (<type>)` or `a parameter of unknown column`.
        target: String,
        reason: String,
    },
}

impl ValueError {
    pub(crate) fn read(column: &crate::meta::ColumnMeta, reason: impl ToString) -> ValueError {
        ValueError::Read {
            column: column.name.clone(),
            sql_type: column.column_type.clone(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn unsupported(column: &crate::meta::ColumnMeta) -> ValueError {
        ValueError::UnsupportedType {
            column: column.name.clone(),
            sql_type: column.column_type.clone(),
        }
    }

    pub(crate) fn bind(
        value: &Value,
        column: Option<&crate::meta::ColumnMeta>,
        reason: impl ToString,
    ) -> ValueError {
        let mut shown = format!("{value:?}");
        if shown.len() > 80 {
            let mut cut = 77;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        ValueError::Bind {
            value: format!("{} {shown}", value.java_class().unwrap_or("null")),
            target: match column {
                Some(c) => format!("column {} ({})", c.name, c.column_type),
                None => "a parameter of unknown column".to_owned(),
            },
            reason: reason.to_string(),
        }
    }
}

/// A time of day or MySQL TIME duration as it parses from `java.sql.Time` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeText {
    pub negative: bool,
    pub hours: u32,
    pub minutes: u8,
    pub seconds: u8,
    pub nanos: u32,
}

impl TimeText {
    pub(crate) fn of(time: NaiveTime) -> TimeText {
        TimeText {
            negative: false,
            hours: time.hour(),
            // minute() < 60, second() < 60 (a leap second shows as nanos >= 1e9).
            minutes: time.minute() as u8,
            seconds: time.second() as u8,
            nanos: time.nanosecond().min(999_999_999),
        }
    }

    /// `HH:MM:SS` as `java.sql.Time.toString()`, plus `.fraction` (trailing zeros dropped) when
    /// there is one: Java's Time keeps whole seconds only, but dropping a TIME(6) column's
    /// fraction would make the undo restore a different value.
    pub(crate) fn render(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        let mut text = format!(
            "{sign}{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        );
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text
    }

    /// Parses `[-]H+:MM:SS[.fraction]`.
    pub(crate) fn parse(text: &str) -> Option<TimeText> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match rest.split_once('.') {
            Some((_, "")) => return None,
            Some((whole, fraction)) => (whole, fraction),
            None => (rest, ""),
        };
        let mut parts = whole.split(':');
        let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || m.len() != 2
            || s.len() != 2
            || h.is_empty()
            || h.len() > 4
        {
            return None;
        }
        let digits = |t: &str| -> Option<u32> {
            t.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let (hours, minutes, seconds) = (digits(h)?, digits(m)?, digits(s)?);
        if minutes > 59 || seconds > 59 {
            return None;
        }
        let nanos = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<9}").parse().ok()?
        };
        Some(TimeText {
            negative,
            hours,
            minutes: minutes as u8,
            seconds: seconds as u8,
            nanos,
        })
    }

    /// As a time of day (`None` for negative or ≥ 24 h MySQL durations).
    pub(crate) fn to_naive(self) -> Option<NaiveTime> {
        if self.negative {
            return None;
        }
        NaiveTime::from_hms_nano_opt(
            self.hours,
            u32::from(self.minutes),
            u32::from(self.seconds),
            self.nanos,
        )
    }
}

/// Whether two recorded values of one column are the same value (data validation before a
/// rollback compares the after image with the current row).
///
/// * Integers compare by value across widths (`Int(5)` = `Long(5)` = `BigInteger(5)`), and
///   with `Bool` in BIT/BOOLEAN/TINYINT columns (`true` = 1), as drivers differ there.
/// * `Decimal` against `Decimal` compares value *and* scale (`BigDecimal.equals`): both sides
///   are read from the database, and a DECIMAL(p,s) column returns every value with scale `s`,
///   so `1.50` vs `1.5` can only come from an unconstrained PostgreSQL NUMERIC, which stores
///   (and shows) the two differently — a real change. Against an integer it compares by value.
/// * Floats compare exactly (NaN equals NaN); a `Float` against a `Double` compares as `f32`
///   in REAL/FLOAT columns (a Java RM may record either), as `f64` otherwise.
/// * `Timestamp` and `LocalDateTime` compare by instant (each other too); `Time` text ignores
///   trailing fractional zeros.
/// * Byte strings compare `Bytes` and `Blob` alike, text `String` and `Clob` alike.
pub fn same_value(a: &Value, b: &Value, column_jdbc_type: i32) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Decimal(x), Decimal(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Bool(flag), other) | (other, Bool(flag)) => {
            matches!(
                column_jdbc_type,
                jdbc_type::BIT | jdbc_type::BOOLEAN | jdbc_type::TINYINT
            ) && exact_integer(other) == Some(i128::from(*flag))
        }
        (Float(x), Float(y)) => x.to_bits() == y.to_bits() || x == y,
        (Double(x), Double(y)) => x.to_bits() == y.to_bits() || x == y,
        (Float(x), Double(y)) | (Double(y), Float(x)) => {
            if matches!(column_jdbc_type, jdbc_type::REAL | jdbc_type::FLOAT) {
                let y = *y as f32;
                x.to_bits() == y.to_bits() || *x == y
            } else {
                f64::from(*x) == *y
            }
        }
        (String(x) | Clob(x), String(y) | Clob(y)) => x == y,
        (Bytes(x) | Blob(x), Bytes(y) | Blob(y)) => x == y,
        (Date(x), Date(y)) => x == y,
        (Time(x), Time(y)) => match (TimeText::parse(x), TimeText::parse(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Timestamp(x) | LocalDateTime(x), Timestamp(y) | LocalDateTime(y)) => x == y,
        (
            PgObject {
                type_name: tx,
                value: vx,
            },
            PgObject {
                type_name: ty,
                value: vy,
            },
        ) => {
            vx == vy
                && match (tx, ty) {
                    (Some(tx), Some(ty)) => tx.eq_ignore_ascii_case(ty),
                    (tx, ty) => tx == ty,
                }
        }
        (
            Other {
                java_class: cx,
                json: jx,
            },
            Other {
                java_class: cy,
                json: jy,
            },
        ) => cx == cy && jx == jy,
        (x, y) => match (number(x), number(y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// An integer-valued `Value` (also an integral `Decimal` or integer text) as a parameter.
pub(crate) fn integer(value: &Value) -> Result<i128, Box<dyn std::error::Error + Send + Sync>> {
    Ok(match value {
        Value::Decimal(d) if d.scale() <= 0 => d.to_string().parse()?,
        Value::String(s) => s.trim().parse()?,
        other => exact_integer(other).ok_or("not an integer")?,
    })
}

fn exact_integer(value: &Value) -> Option<i128> {
    match value {
        Value::Byte(v) => Some(i128::from(*v)),
        Value::Short(v) => Some(i128::from(*v)),
        Value::Int(v) => Some(i128::from(*v)),
        Value::Long(v) => Some(i128::from(*v)),
        Value::BigInteger(v) => Some(*v),
        _ => None,
    }
}

/// Integers and decimals as one exact form (`Decimal` with scale 0 for integers), compared by
/// value: (sign, significant digits, exponent of the last digit) after trailing zeros go.
fn number(value: &Value) -> Option<(bool, std::string::String, i64)> {
    let (negative, digits, scale) = match value {
        Value::Decimal(d) => (
            d.is_negative(),
            d.unscaled_digits().to_owned(),
            i64::from(d.scale()),
        ),
        other => {
            let v = exact_integer(other)?;
            (v < 0, v.unsigned_abs().to_string(), 0)
        }
    };
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, "0".to_owned(), 0));
    }
    let zeros = (digits.len() - trimmed.len()) as i64;
    Some((negative, trimmed.to_owned(), zeros - scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::undo::Decimal;

    #[test]
    fn zone_offsets_move_wall_times_not_instants() {
        let zone = TimeZone::from_offset_seconds(8 * 3600).expect("offset");
        let date = NaiveDate::from_ymd_opt(2024, 3, 1).expect("date");
        // Midnight in UTC+8 is 16:00 UTC the day before.
        assert_eq!(
            zone.date_to_epoch_ms(date),
            1_709_251_200_000 - 8 * 3_600_000
        );
        assert_eq!(
            zone.epoch_ms_to_date(zone.date_to_epoch_ms(date)),
            Some(date)
        );
        let wall = date.and_hms_micro_opt(1, 2, 3, 456_789).expect("wall");
        assert_eq!(zone.epoch_to_wall(zone.wall_to_epoch(wall)), Some(wall));
        assert!(TimeZone::from_offset_seconds(19 * 3600).is_none());
    }

    #[test]
    fn time_text_is_java_time_with_an_optional_fraction() {
        let t = TimeText::parse("12:34:56.120").expect("time");
        assert_eq!(t.render(), "12:34:56.12");
        assert_eq!(
            TimeText::parse("-838:59:59").expect("time").render(),
            "-838:59:59"
        );
        assert_eq!(TimeText::parse("01:02:03").expect("time").nanos, 0);
        for bad in ["1:2:3", "12:34", "12:60:00", "12:00:00.", "x"] {
            assert!(TimeText::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn comparison_is_type_aware() {
        let d = |t: &str| Value::Decimal(Decimal::parse(t).expect("decimal"));
        assert!(same_value(
            &Value::Int(5),
            &Value::Long(5),
            jdbc_type::INTEGER
        ));
        assert!(same_value(
            &Value::BigInteger(5),
            &Value::Byte(5),
            jdbc_type::BIGINT
        ));
        assert!(same_value(&d("1.50"), &d("1.50"), jdbc_type::DECIMAL));
        assert!(!same_value(&d("1.50"), &d("1.5"), jdbc_type::NUMERIC));
        assert!(same_value(&d("500"), &Value::Long(500), jdbc_type::DECIMAL));
        assert!(same_value(&d("5E+2"), &Value::Int(500), jdbc_type::DECIMAL));
        assert!(!same_value(&d("5.01"), &Value::Int(5), jdbc_type::DECIMAL));
        assert!(same_value(
            &Value::Bool(true),
            &Value::Int(1),
            jdbc_type::BIT
        ));
        assert!(!same_value(
            &Value::Bool(true),
            &Value::Int(1),
            jdbc_type::INTEGER
        ));
        assert!(same_value(
            &Value::Double(f64::NAN),
            &Value::Double(f64::NAN),
            8
        ));
        assert!(same_value(
            &Value::Float(0.1),
            &Value::Double(f64::from(0.1f32)),
            jdbc_type::REAL
        ));
        let t = EpochTime {
            seconds: 10,
            nanos: 5,
        };
        assert!(same_value(
            &Value::Timestamp(t),
            &Value::LocalDateTime(t),
            jdbc_type::TIMESTAMP
        ));
        assert!(same_value(
            &Value::Time("12:00:00".into()),
            &Value::Time("12:00:00.000".into()),
            jdbc_type::TIME
        ));
        assert!(!same_value(
            &Value::Null,
            &Value::Int(0),
            jdbc_type::INTEGER
        ));
        assert!(same_value(&Value::Null, &Value::Null, jdbc_type::INTEGER));
        assert!(!same_value(
            &Value::String("5".into()),
            &Value::Int(5),
            jdbc_type::VARCHAR
        ));
    }
}
