//! Values of every PostgreSQL column type through `decode_value` and `bind_value` against a
//! real server (FERRATA_POSTGRES_URL): the exact `Value`, the same value written back, Jackson.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use anyhow::Context;
use chrono::{NaiveDate, NaiveDateTime};
use ferrata_at::database::{TimeZone, bind_value, decode_value, same_value};
use ferrata_at::meta::{ColumnMeta, TableMeta, load_postgres};
use ferrata_at::undo::{
    BranchUndoLog, EpochTime, Field, Row as UndoRow, SqlType, SqlUndoLog, TableRecords, Value,
    jackson,
};
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::{Arguments, Connection, Row};

const TABLE: &str = "at_values_types";
const ENUM: &str = "at_values_mood";
/// UTC-3:30: a Java RM zone other than UTC (and not whole hours), so zone handling shows.
const ZONE_SECONDS: i32 = -(3 * 3600 + 1800);

fn zone() -> TimeZone {
    TimeZone::from_offset_seconds(ZONE_SECONDS).unwrap()
}

async fn connect() -> anyhow::Result<PgConnection> {
    let url = std::env::var("FERRATA_POSTGRES_URL")
        .context("FERRATA_POSTGRES_URL is not set: run scripts/services start")?;
    Ok(PgConnection::connect(&url).await?)
}

fn wall(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

fn java_date(date: &str) -> Value {
    let d: NaiveDate = date.parse().unwrap();
    let utc_ms = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    Value::Date(utc_ms - i64::from(ZONE_SECONDS) * 1000)
}

fn epoch(wall_text: &str, offset_seconds: i32) -> EpochTime {
    let utc = wall(wall_text).and_utc();
    EpochTime {
        seconds: utc.timestamp() - i64::from(offset_seconds),
        nanos: utc.timestamp_subsec_nanos(),
    }
}

fn pg_object(type_name: &str, value: &str) -> Value {
    Value::PgObject {
        type_name: Some(type_name.into()),
        value: Some(value.into()),
    }
}

/// (column, DDL type, SQL literal of row 1, expected Value).
fn columns() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let dec = |t: &str| Value::decimal(t).unwrap();
    vec![
        ("c_int2", "int2", "-32768", Value::Int(-32768)),
        ("c_int4", "int4", "-2147483648", Value::Int(i32::MIN)),
        (
            "c_int8",
            "int8",
            "-9223372036854775808",
            Value::Long(i64::MIN),
        ),
        ("c_numeric", "numeric(10,2)", "12.5", dec("12.50")),
        ("c_numeric_zero", "numeric(10,3)", "0", dec("0.000")),
        (
            "c_numeric_small",
            "numeric",
            "-0.00012300",
            dec("-0.00012300"),
        ),
        (
            "c_numeric_big",
            "numeric",
            "123456789012345678901234567890.1234567890123456789000",
            dec("123456789012345678901234567890.1234567890123456789000"),
        ),
        (
            "c_numeric_e",
            "numeric",
            "1e20",
            dec("100000000000000000000"),
        ),
        ("c_float4", "real", "0.1", Value::Float(0.1)),
        ("c_float8", "double precision", "0.1", Value::Double(0.1)),
        (
            "c_float8_big",
            "double precision",
            "-1e300",
            Value::Double(-1e300),
        ),
        // bpchar keeps its padding, as PgJDBC's getString.
        ("c_char", "char(5)", "'ab'", Value::String("ab   ".into())),
        (
            "c_varchar",
            "varchar(20)",
            "'héllo ✓ 😀'",
            Value::String("héllo ✓ 😀".into()),
        ),
        (
            "c_text",
            "text",
            "E'line\\nbreak'",
            Value::String("line\nbreak".into()),
        ),
        (
            "c_bytea",
            "bytea",
            "'\\x00ff10'",
            Value::Bytes(vec![0x00, 0xFF, 0x10]),
        ),
        ("c_date", "date", "'2024-02-29'", java_date("2024-02-29")),
        (
            "c_time",
            "time(0)",
            "'12:34:56'",
            Value::Time("12:34:56".into()),
        ),
        (
            "c_time6",
            "time(6)",
            "'23:59:59.123456'",
            Value::Time("23:59:59.123456".into()),
        ),
        // timetz: the instant's time of day in the Java RM's zone (10:00+02 = 08:00Z = 04:30).
        (
            "c_timetz",
            "timetz",
            "'10:00:00.25+02'",
            Value::Time("04:30:00.25".into()),
        ),
        // A zone-less timestamp is that wall time in the Java RM's zone.
        (
            "c_timestamp",
            "timestamp(6)",
            "'2024-02-29 12:34:56.789012'",
            Value::Timestamp(epoch("2024-02-29 12:34:56.789012", ZONE_SECONDS)),
        ),
        (
            "c_timestamptz",
            "timestamptz(6)",
            "'2024-02-29 12:34:56.000001+05:45'",
            Value::Timestamp(epoch("2024-02-29 12:34:56.000001", 5 * 3600 + 45 * 60)),
        ),
        (
            "c_json",
            "json",
            "'{\"b\": 1,  \"a\": [2.50]}'",
            pg_object("json", "{\"b\": 1,  \"a\": [2.50]}"),
        ),
        (
            "c_jsonb",
            "jsonb",
            "'{\"b\": 1,  \"a\": [2.50]}'",
            pg_object("jsonb", "{\"a\": [2.50], \"b\": 1}"),
        ),
        ("c_enum", ENUM, "'happy'", pg_object(ENUM, "happy")),
        ("c_bool", "boolean", "true", Value::Bool(true)),
        ("c_bool_f", "boolean", "false", Value::Bool(false)),
        ("c_null", "text", "NULL", Value::Null),
    ]
}

async fn create_table(conn: &mut PgConnection, table: &str) -> anyhow::Result<TableMeta> {
    let cols = columns();
    let ddl: Vec<String> = cols.iter().map(|(n, t, _, _)| format!("{n} {t}")).collect();
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut *conn)
        .await?;
    // Tests run in parallel: the enum may be created by another one at the same moment.
    let _ = sqlx::query(&format!("CREATE TYPE {ENUM} AS ENUM ('sad', 'happy')"))
        .execute(&mut *conn)
        .await;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id int4 PRIMARY KEY, {})",
        ddl.join(", ")
    ))
    .execute(&mut *conn)
    .await?;
    let names: Vec<&str> = cols.iter().map(|(n, ..)| *n).collect();
    let literals: Vec<&str> = cols.iter().map(|(_, _, l, _)| *l).collect();
    sqlx::query(&format!(
        "INSERT INTO {table} (id, {}) VALUES (1, {})",
        names.join(", "),
        literals.join(", ")
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!("INSERT INTO {table} (id) VALUES (2)"))
        .execute(&mut *conn)
        .await?;
    Ok(load_postgres(conn, table).await?)
}

fn args_with(value: &Value, column: Option<&ColumnMeta>, id: i32) -> PgArguments {
    let mut args = PgArguments::default();
    bind_value::<sqlx::Postgres>(&mut args, value, column, zone()).unwrap();
    args.add(id).unwrap();
    args
}

/// `json` has no equality operator: compared as text there. A timetz comes back as the same
/// instant at the Java RM's offset (java.sql.Time has no offset; PgJDBC and Seata lose it the
/// same way): compared in UTC.
fn comparable(column: &ColumnMeta, expr: &str) -> String {
    match column.data_type.as_str() {
        "json" => format!("({expr})::text"),
        "timetz" => format!("(({expr}) AT TIME ZONE 'UTC')"),
        _ => expr.to_owned(),
    }
}

#[tokio::test]
async fn every_column_type_decodes_binds_back_and_survives_jackson() -> anyhow::Result<()> {
    let mut conn = connect().await?;
    let meta = create_table(&mut conn, TABLE).await?;
    let row = sqlx::query(&format!("SELECT * FROM {TABLE} WHERE id = 1"))
        .fetch_one(&mut conn)
        .await?;
    let mut fields = Vec::new();
    for (name, _, _, expected) in columns() {
        let index = meta.columns.iter().position(|c| c.name == name).unwrap();
        let column = &meta.columns[index];
        let value = decode_value::<sqlx::Postgres>(&row, index, column, zone())
            .with_context(|| name.to_owned())?;
        assert_eq!(value, expected, "{name}: decoded value");

        sqlx::query_with(
            &format!("UPDATE {TABLE} SET {name} = $1 WHERE id = $2"),
            args_with(&value, Some(column), 2),
        )
        .execute(&mut conn)
        .await
        .with_context(|| format!("{name}: update"))?;
        // The same value, and the same text (numeric scale, padding, json text included).
        let same: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT {a} IS NOT DISTINCT FROM {b} AND {a}::text IS NOT DISTINCT FROM {b}::text \
             FROM {TABLE} a, {TABLE} b WHERE a.id = 1 AND b.id = 2",
            a = comparable(column, &format!("a.{name}")),
            b = comparable(column, &format!("b.{name}")),
        ))
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(same, Some(true), "{name}: row 2 holds row 1's value");
        let count: i64 = sqlx::query_scalar_with(
            &format!(
                "SELECT COUNT(*) FROM {TABLE} WHERE {} IS NOT DISTINCT FROM {} AND id = $2",
                comparable(column, name),
                comparable(column, "$1"),
            ),
            args_with(&value, Some(column), 2),
        )
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("{name}: select"))?;
        assert_eq!(count, 1, "{name}: typed parameter");
        let row2 = sqlx::query(&format!("SELECT * FROM {TABLE} WHERE id = 2"))
            .fetch_one(&mut conn)
            .await?;
        let again = decode_value::<sqlx::Postgres>(&row2, index, column, zone())?;
        assert_eq!(again, value, "{name}: read back");
        assert!(same_value(&again, &value, column.jdbc_type), "{name}");
        fields.push(Field::new(name, column.jdbc_type, value));
    }
    assert_eq!(row.len(), fields.len() + 1);

    let log = BranchUndoLog {
        xid: "127.0.0.1:8091:1".into(),
        branch_id: 2,
        sql_undo_logs: vec![SqlUndoLog {
            sql_type: SqlType::Update,
            table_name: TABLE.into(),
            before_image: Some(TableRecords::new(TABLE, vec![UndoRow::new(fields.clone())])),
            after_image: Some(TableRecords::new(TABLE, vec![UndoRow::new(fields)])),
        }],
    };
    assert_eq!(jackson::decode(&jackson::encode(&log))?, log);
    Ok(())
}

/// NaN and the infinities of NUMERIC come back as PgJDBC's Double and bind back.
#[tokio::test]
async fn numeric_specials_are_doubles() -> anyhow::Result<()> {
    let mut conn = connect().await?;
    let table = "at_values_specials";
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id int4 PRIMARY KEY, n numeric)"
    ))
    .execute(&mut conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {table} VALUES (1, 'NaN'), (2, 'Infinity'), (3, '-Infinity')"
    ))
    .execute(&mut conn)
    .await?;
    let meta = load_postgres(&mut conn, table).await?;
    let column = meta.column("n").unwrap();
    let rows = sqlx::query(&format!("SELECT n FROM {table} ORDER BY id"))
        .fetch_all(&mut conn)
        .await?;
    let values: Vec<Value> = rows
        .iter()
        .map(|r| decode_value::<sqlx::Postgres>(r, 0, column, zone()).unwrap())
        .collect();
    assert!(matches!(values[0], Value::Double(v) if v.is_nan()));
    assert_eq!(
        values[1..],
        [
            Value::Double(f64::INFINITY),
            Value::Double(f64::NEG_INFINITY)
        ]
    );
    for (id, value) in (1..).zip(&values) {
        let count: i64 = sqlx::query_scalar_with(
            &format!("SELECT COUNT(*) FROM {table} WHERE n = $1 AND id = $2"),
            args_with(value, Some(column), id),
        )
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(count, 1, "{value:?}");
    }
    Ok(())
}

/// Values an application bound (no column known) find the row by their own type.
#[tokio::test]
async fn untyped_parameters_compare_as_the_column() -> anyhow::Result<()> {
    let mut conn = connect().await?;
    let table = "at_values_app";
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id int8 PRIMARY KEY, s int2, d numeric, t text, b bytea, \
         dt date, tm time, ts timestamp, tz timestamptz, j jsonb)"
    ))
    .execute(&mut conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {table} VALUES (2, 7, 1234567890123456789012345678901234.5, 'x', '\\x01', \
         '2024-01-31', '01:02:03.5', '2024-01-31 23:59:59.999999', '2024-01-31 23:59:59.999999Z', \
         '{{\"a\": 1}}')"
    ))
    .execute(&mut conn)
    .await?;
    let cases: Vec<(&str, Value)> = vec![
        ("id", Value::from(2i64)),
        ("s", Value::from(7i16)),
        (
            "d",
            Value::decimal("1234567890123456789012345678901234.50").unwrap(),
        ),
        ("t", Value::from("x")),
        ("b", Value::from(vec![1u8])),
        ("dt", zone().date("2024-01-31".parse().unwrap())),
        (
            "tm",
            Value::from(chrono::NaiveTime::from_hms_milli_opt(1, 2, 3, 500).unwrap()),
        ),
        (
            "ts",
            zone().local_date_time(wall("2024-01-31 23:59:59.999999")),
        ),
        (
            "tz",
            Value::from(wall("2024-01-31 23:59:59.999999").and_utc()),
        ),
        ("j", pg_object("jsonb", "{\"a\": 1}")),
    ];
    for (name, value) in cases {
        let mut args = PgArguments::default();
        bind_value::<sqlx::Postgres>(&mut args, &value, None, zone())?;
        let count: i64 = sqlx::query_scalar_with(
            &format!("SELECT COUNT(*) FROM {table} WHERE {name} = $1"),
            args,
        )
        .fetch_one(&mut conn)
        .await
        .with_context(|| name.to_owned())?;
        assert_eq!(count, 1, "{name}: {value:?}");
    }
    Ok(())
}
