//! PostgreSQL rows and parameters as undo `Value`s, following PgJDBC's `getObject` classes;
//! NUMERIC is decoded and encoded here (binary format) to keep every digit and the scale.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use sqlx::postgres::types::{Oid, PgTimeTz};
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef,
};
use sqlx::{Arguments, Decode, Encode, Postgres, Row, Type, TypeInfo, ValueRef};

use super::values::{TimeText, integer};
use super::{TimeZone, ValueError};
use crate::meta::ColumnMeta;
use crate::undo::{Decimal, EpochTime, Value, jdbc_type};

type BoxError = sqlx::error::BoxDynError;

// Built-in type OIDs (pg_type.dat), for parameters sqlx has no Rust type for.
const OID_NAME: u32 = 19;
const OID_JSON: u32 = 114;
const OID_BPCHAR: u32 = 1042;
const OID_NUMERIC: u32 = 1700;
const OID_JSONB: u32 = 3802;
/// `unknown`: the server infers the type from the context, as for an untyped literal; used
/// for enums and other types known by name only (their binary input is the label text).
const OID_UNKNOWN: u32 = 705;

/// NUMERIC's sign word (`numeric.c`).
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// Largest display scale NUMERIC accepts.
const NUMERIC_MAX_DSCALE: i32 = 0x3FFF;

pub(super) fn decode_value(
    row: &PgRow,
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
    match decode(raw, column, zone) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(ValueError::unsupported(column)),
        Err(e) => Err(ValueError::read(column, e)),
    }
}

fn get<'r, T: Decode<'r, Postgres>>(raw: PgValueRef<'r>) -> Result<T, BoxError> {
    T::decode(raw)
}

/// `None`: a type with no mapping.
fn decode(
    raw: PgValueRef<'_>,
    column: &ColumnMeta,
    zone: TimeZone,
) -> Result<Option<Value>, BoxError> {
    let is_enum = matches!(raw.type_info().kind(), PgTypeKind::Enum(_));
    Ok(Some(match column.data_type.as_str() {
        "bool" => Value::Bool(get::<bool>(raw)?),
        // PgJDBC returns Integer for int2 as for int4.
        "int2" => Value::Int(i32::from(get::<i16>(raw)?)),
        "int4" => Value::Int(get::<i32>(raw)?),
        "int8" => Value::Long(get::<i64>(raw)?),
        "oid" => Value::Long(i64::from(get::<Oid>(raw)?.0)),
        "numeric" => numeric(raw)?,
        "float4" => Value::Float(get::<f32>(raw)?),
        "float8" => Value::Double(get::<f64>(raw)?),
        // Text types are their UTF-8 bytes in both formats; bpchar keeps its padding, as
        // PgJDBC's getString does.
        "bpchar" | "varchar" | "text" | "name" | "char" | "citext" => {
            Value::String(std::str::from_utf8(get::<&[u8]>(raw)?)?.to_owned())
        }
        "bytea" => Value::Bytes(get::<Vec<u8>>(raw)?),
        "date" => Value::Date(zone.date_to_epoch_ms(get::<NaiveDate>(raw)?)),
        "time" => Value::Time(TimeText::of(get::<NaiveTime>(raw)?).render()),
        // PgJDBC turns timetz into a java.sql.Time of the same instant in the JVM's zone.
        "timetz" => {
            let t = get::<PgTimeTz<NaiveTime, FixedOffset>>(raw)?;
            let shift = i64::from(zone.offset_seconds() - t.offset.local_minus_utc());
            let local = t.time + chrono::TimeDelta::seconds(shift);
            Value::Time(TimeText::of(local).render())
        }
        // A zone-less timestamp is a java.sql.Timestamp of that wall time in the JVM's zone.
        "timestamp" => Value::Timestamp(zone.wall_to_epoch(get::<NaiveDateTime>(raw)?)),
        "timestamptz" => {
            let t = get::<DateTime<Utc>>(raw)?;
            Value::Timestamp(EpochTime {
                seconds: t.timestamp(),
                nanos: t.timestamp_subsec_nanos(),
            })
        }
        "json" | "jsonb" => Value::PgObject {
            type_name: Some(column.data_type.clone()),
            value: Some(json_text(raw)?),
        },
        // Enums: PgJDBC's getObject gives a PGobject when it reports the column as OTHER, a
        // String when VARCHAR; follow what the metadata says.
        _ if is_enum => {
            let label = std::str::from_utf8(get::<&[u8]>(raw)?)?.to_owned();
            if column.jdbc_type == jdbc_type::OTHER {
                Value::PgObject {
                    type_name: Some(column.data_type.clone()),
                    value: Some(label),
                }
            } else {
                Value::String(label)
            }
        }
        _ => return Ok(None),
    }))
}

fn json_text(raw: PgValueRef<'_>) -> Result<String, BoxError> {
    let binary = raw.format() == PgValueFormat::Binary;
    let is_jsonb = raw.type_info().name().eq_ignore_ascii_case("jsonb");
    let mut bytes = get::<&[u8]>(raw)?;
    if binary && is_jsonb {
        // jsonb's binary form is a version byte (1) and the text.
        match bytes.split_first() {
            Some((1, rest)) => bytes = rest,
            _ => return Err("unknown jsonb binary version".into()),
        }
    }
    Ok(std::str::from_utf8(bytes)?.to_owned())
}

/// NUMERIC with its display scale (`12.50` stays `12.50`, as PgJDBC's BigDecimal); NaN and
/// the infinities become the Double PgJDBC returns for them.
fn numeric(raw: PgValueRef<'_>) -> Result<Value, BoxError> {
    if raw.format() == PgValueFormat::Text {
        let text = raw.as_str()?;
        return Ok(match text {
            "NaN" => Value::Double(f64::NAN),
            "Infinity" => Value::Double(f64::INFINITY),
            "-Infinity" => Value::Double(f64::NEG_INFINITY),
            _ => Value::Decimal(Decimal::parse(text)?),
        });
    }
    let bytes = raw.as_bytes()?;
    let word = |i: usize| -> Result<u16, BoxError> {
        let b = bytes.get(i * 2..i * 2 + 2).ok_or("truncated NUMERIC")?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = i64::from(word(3)?);
    match sign {
        NUMERIC_NAN => return Ok(Value::Double(f64::NAN)),
        NUMERIC_PINF => return Ok(Value::Double(f64::INFINITY)),
        NUMERIC_NINF => return Ok(Value::Double(f64::NEG_INFINITY)),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return Err("invalid NUMERIC sign".into()),
    }
    if bytes.len() != 8 + 2 * ndigits {
        return Err("NUMERIC length does not match its digit count".into());
    }
    // The base-10000 digits as decimal text: the value times 10^(4 * (ndigits - 1 - weight)).
    let mut digits = String::with_capacity(ndigits * 4 + 1);
    for i in 0..ndigits {
        let d = word(4 + i)?;
        if d > 9999 {
            return Err("NUMERIC digit out of range".into());
        }
        digits.push_str(&format!("{d:04}"));
    }
    if digits.is_empty() {
        digits.push('0');
    }
    let implied_scale = 4 * (ndigits as i64 - 1 - weight);
    if dscale >= implied_scale {
        digits.extend(std::iter::repeat_n('0', (dscale - implied_scale) as usize));
    } else {
        // Digits beyond the display scale are zeros of the last base-10000 group.
        let cut = (implied_scale - dscale) as usize;
        if cut > digits.len() || digits[digits.len() - cut..].bytes().any(|b| b != b'0') {
            return Err("NUMERIC has digits beyond its display scale".into());
        }
        digits.truncate(digits.len() - cut);
        if digits.is_empty() {
            digits.push('0');
        }
    }
    let sign = if sign == NUMERIC_NEG { "-" } else { "" };
    Ok(Value::Decimal(Decimal::parse(&format!(
        "{sign}{digits}E-{dscale}"
    ))?))
}

/// NUMERIC's binary form of `d`, with `d`'s scale as the display scale.
fn numeric_bytes(d: &Decimal) -> Result<Vec<u8>, BoxError> {
    let mut digits = d.unscaled_digits().to_owned();
    let mut scale = d.scale();
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        scale = 0;
    }
    if scale > NUMERIC_MAX_DSCALE {
        return Err("scale beyond NUMERIC's 16383".into());
    }
    let scale_len = scale as usize;
    // Split at the point, then pad both parts to whole base-10000 groups.
    let (int_part, frac_part) = if digits.len() > scale_len {
        let (i, f) = digits.split_at(digits.len() - scale_len);
        (i.to_owned(), f.to_owned())
    } else {
        (String::new(), format!("{digits:0>scale_len$}"))
    };
    let int_groups = int_part.len().div_ceil(4);
    let int_padded = format!("{int_part:0>width$}", width = int_groups * 4);
    let frac_padded = format!(
        "{frac_part:0<width$}",
        width = frac_part.len().div_ceil(4) * 4
    );
    let all = int_padded + &frac_padded;
    let mut groups: Vec<u16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0')))
        .collect();
    let mut weight = int_groups as i64 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let ndigits = u16::try_from(groups.len()).map_err(|_| "too many digits for NUMERIC")?;
    let weight = i16::try_from(weight).map_err(|_| "NUMERIC weight out of range")?;
    let sign = if d.is_negative() && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    // scale <= NUMERIC_MAX_DSCALE.
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

/// A parameter already in its binary form, declared with a type OID.
struct Raw {
    oid: u32,
    bytes: Vec<u8>,
}

impl Type<Postgres> for Raw {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(OID_UNKNOWN))
    }
}

impl Encode<'_, Postgres> for Raw {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<sqlx::encode::IsNull, BoxError> {
        buf.extend_from_slice(&self.bytes);
        Ok(sqlx::encode::IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(Oid(self.oid)))
    }
}

/// One parameter in the sqlx type that makes the server see the intended SQL type.
enum Param {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    TimeTz(PgTimeTz<NaiveTime, FixedOffset>),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Raw(Raw),
}

impl Param {
    fn add_to(self, args: &mut PgArguments) -> Result<(), BoxError> {
        match self {
            // Untyped NULL: the server takes the column's type.
            Param::Null => args.add(Option::<Raw>::None),
            Param::Bool(v) => args.add(v),
            Param::I16(v) => args.add(v),
            Param::I32(v) => args.add(v),
            Param::I64(v) => args.add(v),
            Param::F32(v) => args.add(v),
            Param::F64(v) => args.add(v),
            Param::Text(v) => args.add(v),
            Param::Bytes(v) => args.add(v),
            Param::Date(v) => args.add(v),
            Param::Time(v) => args.add(v),
            Param::TimeTz(v) => args.add(v),
            Param::Timestamp(v) => args.add(v),
            Param::TimestampTz(v) => args.add(v),
            Param::Raw(v) => args.add(v),
        }
    }
}

pub(super) fn bind_value(
    args: &mut PgArguments,
    value: &Value,
    column: Option<&ColumnMeta>,
    zone: TimeZone,
) -> Result<(), ValueError> {
    let fail = |reason: &dyn std::fmt::Display| ValueError::bind(value, column, reason);
    let param = match column {
        Some(c) => typed(value, &c.data_type, zone).map_err(|e| fail(&e))?,
        None => untyped(value, zone).map_err(|e| fail(&e))?,
    };
    param.add_to(args).map_err(|e| fail(&e))
}

fn typed(value: &Value, type_name: &str, zone: TimeZone) -> Result<Param, BoxError> {
    if let Value::Null = value {
        return Ok(Param::Null);
    }
    Ok(match type_name {
        "bool" => Param::Bool(match value {
            Value::Bool(b) => *b,
            other => integer(other)? != 0,
        }),
        "int2" => Param::I16(i16::try_from(integer(value)?)?),
        "int4" => Param::I32(i32::try_from(integer(value)?)?),
        "int8" => Param::I64(i64::try_from(integer(value)?)?),
        "numeric" => numeric_param(value)?,
        "float4" => Param::F32(match value {
            Value::Float(v) => *v,
            // Java binds a Double into a REAL column rounded the same way.
            Value::Double(v) => *v as f32,
            other => decimal(other)?.to_string().parse()?,
        }),
        "float8" => Param::F64(match value {
            Value::Float(v) => f64::from(*v),
            Value::Double(v) => *v,
            other => decimal(other)?.to_string().parse()?,
        }),
        // bpchar must arrive as bpchar: compared as text its padding would count.
        "bpchar" => Param::Raw(Raw {
            oid: OID_BPCHAR,
            bytes: text(value)?.into_bytes(),
        }),
        "name" => Param::Raw(Raw {
            oid: OID_NAME,
            bytes: text(value)?.into_bytes(),
        }),
        "varchar" | "text" | "char" | "citext" => Param::Text(text(value)?),
        "bytea" => Param::Bytes(match value {
            Value::Bytes(b) | Value::Blob(b) => b.clone(),
            Value::String(s) | Value::Clob(s) => s.as_bytes().to_vec(),
            _ => return Err("not a byte string".into()),
        }),
        "date" => Param::Date(match value {
            Value::Date(ms) => zone.epoch_ms_to_date(*ms).ok_or("date out of range")?,
            Value::Timestamp(_) | Value::LocalDateTime(_) => wall(value, zone)?.date(),
            Value::String(s) => s.parse()?,
            _ => return Err("not a date".into()),
        }),
        "time" => Param::Time(time(value)?),
        "timetz" => Param::TimeTz(PgTimeTz {
            time: time(value)?,
            offset: FixedOffset::east_opt(zone.offset_seconds()).ok_or("bad zone offset")?,
        }),
        "timestamp" => Param::Timestamp(wall(value, zone)?),
        "timestamptz" => Param::TimestampTz(instant(value)?),
        "json" | "jsonb" => json_param(type_name, &text(value)?),
        // Enums and other types known by name: their text, typed by the server.
        _ => Param::Raw(Raw {
            oid: OID_UNKNOWN,
            bytes: text(value)?.into_bytes(),
        }),
    })
}

fn untyped(value: &Value, zone: TimeZone) -> Result<Param, BoxError> {
    Ok(match value {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Bool(*b),
        // PostgreSQL has no one-byte integer.
        Value::Byte(v) => Param::I16(i16::from(*v)),
        Value::Short(v) => Param::I16(*v),
        Value::Int(v) => Param::I32(*v),
        Value::Long(v) => Param::I64(*v),
        Value::BigInteger(_) | Value::Decimal(_) => numeric_param(value)?,
        Value::Float(v) => Param::F32(*v),
        Value::Double(v) => Param::F64(*v),
        Value::String(s) | Value::Clob(s) => Param::Text(s.clone()),
        Value::Bytes(b) | Value::Blob(b) => Param::Bytes(b.clone()),
        Value::Date(ms) => Param::Date(zone.epoch_ms_to_date(*ms).ok_or("date out of range")?),
        Value::Time(_) => Param::Time(time(value)?),
        Value::LocalDateTime(_) => Param::Timestamp(wall(value, zone)?),
        Value::Timestamp(_) => Param::TimestampTz(instant(value)?),
        Value::PgObject {
            type_name,
            value: Some(text),
        } => match type_name.as_deref() {
            Some(name @ ("json" | "jsonb")) => json_param(name, text),
            _ => Param::Raw(Raw {
                oid: OID_UNKNOWN,
                bytes: text.clone().into_bytes(),
            }),
        },
        Value::PgObject { value: None, .. } => Param::Null,
        Value::Other { java_class, .. } => {
            return Err(format!("no PostgreSQL parameter type for Java class {java_class}").into());
        }
    })
}

fn json_param(type_name: &str, text: &str) -> Param {
    if type_name == "jsonb" {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.push(1);
        bytes.extend_from_slice(text.as_bytes());
        Param::Raw(Raw {
            oid: OID_JSONB,
            bytes,
        })
    } else {
        Param::Raw(Raw {
            oid: OID_JSON,
            bytes: text.as_bytes().to_vec(),
        })
    }
}

fn numeric_param(value: &Value) -> Result<Param, BoxError> {
    let bytes = match value {
        Value::Double(v) if !v.is_finite() => {
            let sign = if v.is_nan() {
                NUMERIC_NAN
            } else if *v > 0.0 {
                NUMERIC_PINF
            } else {
                NUMERIC_NINF
            };
            let mut b = vec![0, 0, 0, 0];
            b.extend_from_slice(&sign.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b
        }
        other => numeric_bytes(&decimal(other)?)?,
    };
    Ok(Param::Raw(Raw {
        oid: OID_NUMERIC,
        bytes,
    }))
}

fn decimal(value: &Value) -> Result<Decimal, BoxError> {
    Ok(match value {
        Value::Decimal(d) => d.clone(),
        Value::Float(v) => Decimal::parse(&v.to_string())?,
        Value::Double(v) => Decimal::parse(&v.to_string())?,
        Value::String(s) => Decimal::parse(s.trim())?,
        other => Decimal::parse(&integer(other)?.to_string())?,
    })
}

fn text(value: &Value) -> Result<String, BoxError> {
    Ok(match value {
        Value::String(s) | Value::Clob(s) | Value::Time(s) => s.clone(),
        Value::PgObject { value: Some(v), .. } => v.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Float(v) => v.to_string(),
        Value::Double(v) => v.to_string(),
        other => integer(other)?.to_string(),
    })
}

fn time(value: &Value) -> Result<NaiveTime, BoxError> {
    match value {
        Value::Time(s) | Value::String(s) => TimeText::parse(s)
            .and_then(TimeText::to_naive)
            .ok_or_else(|| "not a time of day".into()),
        _ => Err("not a time".into()),
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

fn instant(value: &Value) -> Result<DateTime<Utc>, BoxError> {
    let t = match value {
        Value::Timestamp(t) | Value::LocalDateTime(t) => *t,
        Value::Date(ms) => EpochTime::from_epoch_ms(*ms),
        Value::String(s) => return Ok(s.parse::<DateTime<FixedOffset>>()?.to_utc()),
        _ => return Err("not a point in time".into()),
    };
    DateTime::from_timestamp(t.seconds, t.nanos).ok_or_else(|| "time out of range".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_form_keeps_digits_and_scale() {
        for (text, expected) in [
            ("12.50", vec![2u16, 0, NUMERIC_POS, 2, 12, 5000]),
            ("0.00", vec![0, 0, NUMERIC_POS, 2]),
            ("-0.0001", vec![1, (-1i16) as u16, NUMERIC_NEG, 4, 1]),
            ("10000", vec![1, 1, NUMERIC_POS, 0, 1]),
            ("1E+5", vec![1, 1, NUMERIC_POS, 0, 10]),
        ] {
            let d = Decimal::parse(text).expect("decimal");
            let words: Vec<u16> = numeric_bytes(&d)
                .expect("encode")
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            assert_eq!(words, expected, "{text}");
        }
    }
}
