//! The `jackson` serializer: Seata's Java layout (default typing, `@class` properties,
//! `["java.util.ArrayList", [...]]` lists, `[class, value]` wrappers); writes the 2.x
//! `org.apache.seata.` names and reads those and 1.x's `io.seata.` ones.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::decimal::{Decimal, truncate};
use super::error::UndoError;
use super::json::{self, Json, write_string};
use super::model::{BranchUndoLog, Field, KeyType, Row, SqlType, SqlUndoLog, TableRecords};
use super::value::{EpochTime, Value};

/// Serializer name in the `context` column.
pub const SERIALIZER_NAME: &str = "jackson";

/// What the global-finished marker row holds, and what decodes to an empty log.
pub const GLOBAL_FINISHED_CONTENT: &[u8] = b"{}";

/// Largest JSON document [`decode`] accepts (before any other check).
pub const DEFAULT_MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

const PREFIX_V2: &str = "org.apache.seata.";
const PREFIX_V1: &str = "io.seata.";
const BRANCH_UNDO_LOG: &str = "rm.datasource.undo.BranchUndoLog";
const SQL_UNDO_LOG: &str = "rm.datasource.undo.SQLUndoLog";
const TABLE_RECORDS: &str = "rm.datasource.sql.struct.TableRecords";
const EMPTY_TABLE_RECORDS: &str = "rm.datasource.sql.struct.TableRecords$EmptyTableRecords";
const ROW: &str = "rm.datasource.sql.struct.Row";
const FIELD: &str = "rm.datasource.sql.struct.Field";
const ARRAY_LIST: &str = "java.util.ArrayList";
const PG_OBJECT: &str = "org.postgresql.util.PGobject";

/// Which Seata the undo log's class names are for: Java readers resolve them by name, and
/// 1.x (`io.seata.`) and 2.x (`org.apache.seata.`) readers each know only their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JavaPackage {
    /// seata-all 2.x, `org.apache.seata.` (the default).
    #[default]
    ApacheSeata,
    /// seata-all 1.x, `io.seata.`.
    IoSeata,
}

impl JavaPackage {
    fn prefix(self) -> &'static str {
        match self {
            JavaPackage::ApacheSeata => PREFIX_V2,
            JavaPackage::IoSeata => PREFIX_V1,
        }
    }
}

/// Encodes `log` the way seata-all 2.x's `JacksonUndoLogParser.encode` does.
pub fn encode(log: &BranchUndoLog) -> Vec<u8> {
    encode_for(log, JavaPackage::ApacheSeata)
}

/// Encodes `log` with the class names of `package`'s Seata.
pub fn encode_for(log: &BranchUndoLog, package: JavaPackage) -> Vec<u8> {
    let prefix = package.prefix();
    let mut out = String::with_capacity(256);
    out.push_str("{\"@class\":");
    class_name(&mut out, prefix, BRANCH_UNDO_LOG);
    out.push_str(",\"xid\":");
    write_string(&mut out, &log.xid);
    out.push_str(&format!(",\"branchId\":{}", log.branch_id));
    out.push_str(",\"sqlUndoLogs\":");
    list(&mut out, &log.sql_undo_logs, |out, item| {
        out.push_str("{\"@class\":");
        class_name(out, prefix, SQL_UNDO_LOG);
        out.push_str(",\"sqlType\":");
        write_string(out, item.sql_type.java_name());
        out.push_str(",\"tableName\":");
        write_string(out, &item.table_name);
        out.push_str(",\"beforeImage\":");
        image(out, prefix, item.before_image.as_ref());
        out.push_str(",\"afterImage\":");
        image(out, prefix, item.after_image.as_ref());
        out.push('}');
    });
    out.push('}');
    out.into_bytes()
}

fn class_name(out: &mut String, prefix: &str, suffix: &str) {
    write_string(out, &format!("{prefix}{suffix}"));
}

fn list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    write_string(out, ARRAY_LIST);
    out.push_str(",[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push_str("]]");
}

fn image(out: &mut String, prefix: &str, records: Option<&TableRecords>) {
    let Some(records) = records else {
        out.push_str("null");
        return;
    };
    out.push_str("{\"@class\":");
    class_name(
        out,
        prefix,
        if records.empty {
            EMPTY_TABLE_RECORDS
        } else {
            TABLE_RECORDS
        },
    );
    out.push_str(",\"tableName\":");
    match &records.table_name {
        Some(name) => write_string(out, name),
        None => out.push_str("null"),
    }
    out.push_str(",\"rows\":");
    list(out, &records.rows, |out, row| {
        out.push_str("{\"@class\":");
        class_name(out, prefix, ROW);
        out.push_str(",\"fields\":");
        list(out, &row.fields, |out, field| {
            out.push_str("{\"@class\":");
            class_name(out, prefix, FIELD);
            out.push_str(",\"name\":");
            write_string(out, &field.name);
            out.push_str(",\"keyType\":");
            write_string(out, field.key_type.java_name());
            out.push_str(&format!(",\"type\":{},\"value\":", field.jdbc_type));
            value(out, &field.value);
            out.push('}');
        });
        out.push('}');
    });
    out.push('}');
}

fn wrapped(out: &mut String, class: &str, inner: &str) {
    out.push('[');
    write_string(out, class);
    out.push(',');
    out.push_str(inner);
    out.push(']');
}

fn wrapped_string(out: &mut String, class: &str, text: &str) {
    let mut inner = String::new();
    write_string(&mut inner, text);
    wrapped(out, class, &inner);
}

/// A float as a JSON number; Jackson writes NaN and the infinities as strings (its default
/// `QUOTE_NON_NUMERIC_NUMBERS`), which Java then reads back as a String.
fn float_text(debug: String, finite: bool) -> String {
    if finite {
        return debug;
    }
    let named = match debug.as_str() {
        "NaN" => "NaN",
        "inf" => "Infinity",
        _ => "-Infinity",
    };
    format!("\"{named}\"")
}

fn epoch_time(t: &EpochTime) -> String {
    if t.has_sub_ms() {
        format!("[{},{}]", t.epoch_ms(), t.nanos)
    } else {
        t.epoch_ms().to_string()
    }
}

fn value(out: &mut String, v: &Value) {
    let class = v.java_class().unwrap_or("");
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Double(d) => out.push_str(&float_text(format!("{d:?}"), d.is_finite())),
        Value::String(s) => write_string(out, s),
        Value::Byte(n) => wrapped(out, class, &n.to_string()),
        Value::Short(n) => wrapped(out, class, &n.to_string()),
        Value::Long(n) => wrapped(out, class, &n.to_string()),
        Value::BigInteger(n) => wrapped(out, class, &n.to_string()),
        Value::Decimal(d) => wrapped(out, class, &d.to_json_number()),
        Value::Float(f) => wrapped(out, class, &float_text(format!("{f:?}"), f.is_finite())),
        Value::Bytes(b) | Value::Blob(b) => wrapped_string(out, class, &BASE64.encode(b)),
        Value::Date(ms) => wrapped(out, class, &ms.to_string()),
        Value::Time(text) | Value::Clob(text) => wrapped_string(out, class, text),
        Value::Timestamp(t) | Value::LocalDateTime(t) => wrapped(out, class, &epoch_time(t)),
        Value::PgObject { type_name, value } => {
            out.push_str("{\"@class\":");
            write_string(out, PG_OBJECT);
            out.push_str(",\"type\":");
            match type_name {
                Some(t) => write_string(out, t),
                None => out.push_str("null"),
            }
            out.push_str(",\"value\":");
            match value {
                Some(v) => write_string(out, v),
                None => out.push_str("null"),
            }
            out.push_str(if value.is_none() {
                ",\"null\":true}"
            } else {
                ",\"null\":false}"
            });
        }
        Value::Other { json, .. } => match json::parse(json.as_bytes()) {
            // Re-serialised so that a hand-built Other can never corrupt the document.
            Ok(parsed) => parsed.write(out),
            Err(_) => out.push_str("null"),
        },
    }
}

/// Decodes `bytes` as Java's `JacksonUndoLogParser.decode` does: `{}` is the empty log, and
/// both the 2.x and 1.x class names are accepted.
pub fn decode(bytes: &[u8]) -> Result<BranchUndoLog, UndoError> {
    decode_with_limit(bytes, DEFAULT_MAX_JSON_BYTES)
}

/// [`decode`] refusing documents longer than `max_json_bytes`.
pub fn decode_with_limit(bytes: &[u8], max_json_bytes: usize) -> Result<BranchUndoLog, UndoError> {
    if bytes.len() > max_json_bytes {
        return Err(UndoError::TooLarge {
            limit_bytes: max_json_bytes,
        });
    }
    if bytes == GLOBAL_FINISHED_CONTENT {
        return Ok(BranchUndoLog::default());
    }
    let doc = json::parse(bytes)?;
    branch_undo_log(&doc)
}

fn shape(path: &str, expected: &'static str) -> UndoError {
    UndoError::Shape {
        path: path.to_string(),
        expected,
    }
}

/// Checks an object's `@class` (when present) against the class `suffix`es allowed here.
fn check_class<'a>(
    obj: &Json,
    path: &str,
    suffixes: &[&'a str],
) -> Result<Option<&'a str>, UndoError> {
    let Json::Object(_) = obj else {
        return Err(shape(path, "an object"));
    };
    let Some(class) = obj.get("@class") else {
        return Ok(None);
    };
    let Json::String(class) = class else {
        return Err(shape(path, "a string @class"));
    };
    let suffix = class
        .strip_prefix(PREFIX_V2)
        .or_else(|| class.strip_prefix(PREFIX_V1));
    match suffix.and_then(|s| suffixes.iter().find(|want| **want == s)) {
        Some(found) => Ok(Some(found)),
        None => Err(UndoError::UnexpectedClass {
            path: path.to_string(),
            class: truncate(class),
        }),
    }
}

fn string_member(obj: &Json, name: &str, path: &str) -> Result<Option<String>, UndoError> {
    match obj.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(shape(&format!("{path}.{name}"), "a string")),
    }
}

fn integer<T: std::str::FromStr>(json: &Json, class: &'static str) -> Result<T, UndoError> {
    match json {
        Json::Number(n) if !n.contains(['.', 'e', 'E']) => {
            n.parse().map_err(|_| UndoError::OutOfRange {
                class,
                text: truncate(n),
            })
        }
        _ => Err(UndoError::InvalidValue {
            class,
            text: describe(json),
        }),
    }
}

fn describe(json: &Json) -> String {
    let mut out = String::new();
    json.write(&mut out);
    truncate(&out)
}

/// A list: Jackson's `["java.util.ArrayList", [...]]` (any collection class), a bare array,
/// or null (no elements).
fn list_items<'j>(json: Option<&'j Json>, path: &str) -> Result<&'j [Json], UndoError> {
    match json {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Array(items)) => match items.as_slice() {
            [Json::String(_), Json::Array(inner)] => Ok(inner),
            _ if items.iter().all(|i| matches!(i, Json::Object(_))) => Ok(items),
            _ => Err(shape(path, "[\"java.util.ArrayList\", [...]]")),
        },
        Some(_) => Err(shape(path, "a list")),
    }
}

fn branch_undo_log(doc: &Json) -> Result<BranchUndoLog, UndoError> {
    check_class(doc, "BranchUndoLog", &[BRANCH_UNDO_LOG])?;
    let branch_id = match doc.get("branchId") {
        None | Some(Json::Null) => 0,
        Some(n) => integer::<i64>(n, "branchId")?,
    };
    let mut sql_undo_logs = Vec::new();
    for (i, item) in list_items(doc.get("sqlUndoLogs"), "sqlUndoLogs")?
        .iter()
        .enumerate()
    {
        sql_undo_logs.push(sql_undo_log(item, &format!("sqlUndoLogs[{i}]"))?);
    }
    Ok(BranchUndoLog {
        xid: string_member(doc, "xid", "BranchUndoLog")?.unwrap_or_default(),
        branch_id,
        sql_undo_logs,
    })
}

fn sql_undo_log(json: &Json, path: &str) -> Result<SqlUndoLog, UndoError> {
    check_class(json, path, &[SQL_UNDO_LOG])?;
    let type_name =
        string_member(json, "sqlType", path)?.ok_or_else(|| shape(path, "a sqlType"))?;
    let sql_type = SqlType::from_java_name(&type_name)
        .ok_or_else(|| UndoError::UnknownSqlType(truncate(&type_name)))?;
    Ok(SqlUndoLog {
        sql_type,
        table_name: string_member(json, "tableName", path)?.unwrap_or_default(),
        before_image: table_records(json.get("beforeImage"), &format!("{path}.beforeImage"))?,
        after_image: table_records(json.get("afterImage"), &format!("{path}.afterImage"))?,
    })
}

fn table_records(json: Option<&Json>, path: &str) -> Result<Option<TableRecords>, UndoError> {
    let json = match json {
        None | Some(Json::Null) => return Ok(None),
        Some(j) => j,
    };
    let class = check_class(json, path, &[TABLE_RECORDS, EMPTY_TABLE_RECORDS])?;
    let mut rows = Vec::new();
    for (i, row_json) in list_items(json.get("rows"), path)?.iter().enumerate() {
        let row_path = format!("{path}.rows[{i}]");
        check_class(row_json, &row_path, &[ROW])?;
        let mut fields = Vec::new();
        for (j, f) in list_items(row_json.get("fields"), &row_path)?
            .iter()
            .enumerate()
        {
            fields.push(field(f, &format!("{row_path}.fields[{j}]"))?);
        }
        rows.push(Row { fields });
    }
    Ok(Some(TableRecords {
        table_name: string_member(json, "tableName", path)?,
        rows,
        empty: class == Some(EMPTY_TABLE_RECORDS),
    }))
}

fn field(json: &Json, path: &str) -> Result<Field, UndoError> {
    check_class(json, path, &[FIELD])?;
    let key_type = match string_member(json, "keyType", path)? {
        None => KeyType::Null,
        Some(k) => {
            KeyType::from_java_name(&k).ok_or_else(|| UndoError::UnknownKeyType(truncate(&k)))?
        }
    };
    let jdbc_type = match json.get("type") {
        None | Some(Json::Null) => 0,
        Some(n) => integer::<i32>(n, "type")?,
    };
    Ok(Field {
        name: string_member(json, "name", path)?.unwrap_or_default(),
        key_type,
        jdbc_type,
        value: match json.get("value") {
            None => Value::Null,
            Some(v) => field_value(v)?,
        },
    })
}

/// A bare JSON number: Jackson's natural mapping (Integer when it fits, else Long, else
/// BigInteger; Double for fractions and exponents).
fn natural_number(n: &str) -> Result<Value, UndoError> {
    if n.contains(['.', 'e', 'E']) {
        let d: f64 = n
            .parse()
            .map_err(|_| UndoError::InvalidNumber(truncate(n)))?;
        return Ok(Value::Double(d));
    }
    if let Ok(i) = n.parse::<i32>() {
        return Ok(Value::Int(i));
    }
    if let Ok(l) = n.parse::<i64>() {
        return Ok(Value::Long(l));
    }
    n.parse::<i128>()
        .map(Value::BigInteger)
        .map_err(|_| UndoError::OutOfRange {
            class: "java.math.BigInteger",
            text: truncate(n),
        })
}

fn field_value(json: &Json) -> Result<Value, UndoError> {
    match json {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::String(s) => Ok(Value::String(s.clone())),
        Json::Number(n) => natural_number(n),
        Json::Array(items) => match items.as_slice() {
            [Json::String(class), inner] => wrapped_value(class, inner, json),
            _ => Err(shape("Field.value", "[\"<java class>\", value]")),
        },
        Json::Object(_) => match json.get("@class") {
            Some(Json::String(class)) if class == PG_OBJECT => Ok(Value::PgObject {
                type_name: string_member(json, "type", PG_OBJECT)?,
                value: string_member(json, "value", PG_OBJECT)?,
            }),
            Some(Json::String(class)) => Ok(Value::Other {
                java_class: class.clone(),
                json: {
                    let mut out = String::new();
                    json.write(&mut out);
                    out
                },
            }),
            _ => Err(shape("Field.value", "an object with @class")),
        },
    }
}

fn number_text<'j>(inner: &'j Json, class: &'static str) -> Result<&'j str, UndoError> {
    match inner {
        Json::Number(n) => Ok(n),
        _ => Err(UndoError::InvalidValue {
            class,
            text: describe(inner),
        }),
    }
}

fn string_text<'j>(inner: &'j Json, class: &'static str) -> Result<&'j str, UndoError> {
    match inner {
        Json::String(s) => Ok(s),
        _ => Err(UndoError::InvalidValue {
            class,
            text: describe(inner),
        }),
    }
}

fn base64(inner: &Json, class: &'static str) -> Result<Vec<u8>, UndoError> {
    BASE64
        .decode(string_text(inner, class)?)
        .map_err(|_| UndoError::Base64 { class })
}

/// `["java.sql.Timestamp", ms]` or `[..., [ms, nanos]]`: `new Timestamp(ms)` then
/// `setNanos(nanos)`, which replaces the fraction of the second.
fn timestamp(inner: &Json) -> Result<EpochTime, UndoError> {
    const CLASS: &str = "java.sql.Timestamp";
    match inner {
        Json::Array(parts) => match parts.as_slice() {
            [ms, nanos, ..] => {
                let ms: i64 = integer(ms, CLASS)?;
                let nanos: i64 = integer(nanos, CLASS)?;
                let nanos = u32::try_from(nanos)
                    .ok()
                    .filter(|n| *n < 1_000_000_000)
                    .ok_or_else(|| UndoError::OutOfRange {
                        class: CLASS,
                        text: nanos.to_string(),
                    })?;
                Ok(EpochTime {
                    seconds: ms.div_euclid(1000),
                    nanos,
                })
            }
            [ms] => Ok(EpochTime::from_epoch_ms(integer(ms, CLASS)?)),
            [] => Err(UndoError::InvalidValue {
                class: CLASS,
                text: "[]".into(),
            }),
        },
        other => Ok(EpochTime::from_epoch_ms(integer(other, CLASS)?)),
    }
}

/// `["java.time.LocalDateTime", ms]` or `[..., [ms, nanos]]`: Java adds only the part of
/// `nanos` below a millisecond to the instant of `ms`.
fn local_date_time(inner: &Json) -> Result<EpochTime, UndoError> {
    const CLASS: &str = "java.time.LocalDateTime";
    let (ms, extra_nanos) = match inner {
        Json::Array(parts) => match parts.as_slice() {
            [ms, nanos, ..] => (
                integer::<i64>(ms, CLASS)?,
                integer::<i64>(nanos, CLASS)? % 1_000_000,
            ),
            [ms] => (integer::<i64>(ms, CLASS)?, 0),
            [] => {
                return Err(UndoError::InvalidValue {
                    class: CLASS,
                    text: "[]".into(),
                });
            }
        },
        other => (integer::<i64>(other, CLASS)?, 0),
    };
    let total_nanos = i128::from(ms) * 1_000_000 + i128::from(extra_nanos);
    let seconds = i64::try_from(total_nanos.div_euclid(1_000_000_000)).map_err(|_| {
        UndoError::OutOfRange {
            class: CLASS,
            text: ms.to_string(),
        }
    })?;
    Ok(EpochTime {
        seconds,
        // rem_euclid(10^9) is below 10^9.
        nanos: total_nanos.rem_euclid(1_000_000_000) as u32,
    })
}

fn wrapped_value(class: &str, inner: &Json, whole: &Json) -> Result<Value, UndoError> {
    Ok(match class {
        "java.lang.Long" => Value::Long(integer(inner, "java.lang.Long")?),
        "java.lang.Integer" => Value::Int(integer(inner, "java.lang.Integer")?),
        "java.lang.Short" => Value::Short(integer(inner, "java.lang.Short")?),
        "java.lang.Byte" => Value::Byte(integer(inner, "java.lang.Byte")?),
        "java.math.BigInteger" => Value::BigInteger(integer(inner, "java.math.BigInteger")?),
        "java.math.BigDecimal" => match inner {
            Json::Number(n) | Json::String(n) => Value::Decimal(Decimal::parse(n)?),
            _ => {
                return Err(UndoError::InvalidValue {
                    class: "java.math.BigDecimal",
                    text: describe(inner),
                });
            }
        },
        "java.lang.Float" => {
            let text = number_text(inner, "java.lang.Float")?;
            Value::Float(
                text.parse()
                    .map_err(|_| UndoError::InvalidNumber(truncate(text)))?,
            )
        }
        "java.lang.Double" => {
            let text = number_text(inner, "java.lang.Double")?;
            Value::Double(
                text.parse()
                    .map_err(|_| UndoError::InvalidNumber(truncate(text)))?,
            )
        }
        "java.lang.Boolean" => match inner {
            Json::Bool(b) => Value::Bool(*b),
            _ => {
                return Err(UndoError::InvalidValue {
                    class: "java.lang.Boolean",
                    text: describe(inner),
                });
            }
        },
        "java.lang.String" => Value::String(string_text(inner, "java.lang.String")?.to_string()),
        "[B" => Value::Bytes(base64(inner, "[B")?),
        "javax.sql.rowset.serial.SerialBlob" => Value::Blob(base64(inner, "SerialBlob")?),
        "javax.sql.rowset.serial.SerialClob" => {
            Value::Clob(string_text(inner, "SerialClob")?.to_string())
        }
        "java.sql.Date" => Value::Date(integer(inner, "java.sql.Date")?),
        "java.sql.Time" if matches!(inner, Json::String(_)) => {
            Value::Time(string_text(inner, "java.sql.Time")?.to_string())
        }
        "java.sql.Timestamp" => Value::Timestamp(timestamp(inner)?),
        "java.time.LocalDateTime" => Value::LocalDateTime(local_date_time(inner)?),
        _ => Value::Other {
            java_class: class.to_string(),
            json: {
                let mut out = String::new();
                whole.write(&mut out);
                out
            },
        },
    })
}
