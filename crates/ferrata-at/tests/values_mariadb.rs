//! Values of every MariaDB column type through `decode_value` and `bind_value` against a real
//! server (FERRATA_MYSQL_URL): the exact `Value`, the same value written back, Jackson round trip.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use anyhow::Context;
use chrono::{NaiveDate, NaiveDateTime};
use ferrata_at::database::{TimeZone, bind_value, decode_value, same_value};
use ferrata_at::meta::{ColumnMeta, TableMeta, load_mysql};
use ferrata_at::undo::{
    BranchUndoLog, EpochTime, Field, Row as UndoRow, SqlType, SqlUndoLog, TableRecords, Value,
    jackson,
};
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::{Arguments, Connection, Row};

const TABLE: &str = "at_values_types";
/// UTC+8: a Java RM zone other than the session's UTC, so zone handling shows.
const ZONE_SECONDS: i32 = 8 * 3600;

fn zone() -> TimeZone {
    TimeZone::from_offset_seconds(ZONE_SECONDS).unwrap()
}

async fn connect() -> anyhow::Result<MySqlConnection> {
    let url = std::env::var("FERRATA_MYSQL_URL")
        .context("FERRATA_MYSQL_URL is not set: run scripts/services start")?;
    Ok(MySqlConnection::connect(&url).await?)
}

fn wall(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
}

/// Epoch ms of midnight of `date` in the test zone, as `java.sql.Date` holds it.
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

/// (column, DDL type, SQL literal of row 1, expected Value).
fn columns() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let dec = |t: &str| Value::decimal(t).unwrap();
    vec![
        ("c_tinyint", "TINYINT", "-128", Value::Int(-128)),
        ("c_tinyint_u", "TINYINT UNSIGNED", "255", Value::Int(255)),
        ("c_smallint", "SMALLINT", "-32768", Value::Int(-32768)),
        (
            "c_smallint_u",
            "SMALLINT UNSIGNED",
            "65535",
            Value::Int(65535),
        ),
        (
            "c_mediumint",
            "MEDIUMINT",
            "-8388608",
            Value::Int(-8_388_608),
        ),
        (
            "c_mediumint_u",
            "MEDIUMINT UNSIGNED",
            "16777215",
            Value::Int(16_777_215),
        ),
        ("c_int", "INT", "-2147483648", Value::Int(i32::MIN)),
        (
            "c_int_u",
            "INT UNSIGNED",
            "4294967295",
            Value::Long(4_294_967_295),
        ),
        (
            "c_bigint",
            "BIGINT",
            "-9223372036854775808",
            Value::Long(i64::MIN),
        ),
        (
            "c_bigint_u",
            "BIGINT UNSIGNED",
            "18446744073709551615",
            Value::BigInteger(18_446_744_073_709_551_615),
        ),
        ("c_decimal", "DECIMAL(10,2)", "12.5", dec("12.50")),
        (
            "c_decimal_big",
            "DECIMAL(65,30)",
            "-12345678901234567890123456789012345.123456789012345678901234567890",
            dec("-12345678901234567890123456789012345.123456789012345678901234567890"),
        ),
        ("c_decimal_int", "DECIMAL(5,0)", "-7", dec("-7")),
        ("c_float", "FLOAT", "0.1", Value::Float(0.1)),
        ("c_double", "DOUBLE", "0.1", Value::Double(0.1)),
        ("c_double_big", "DOUBLE", "1e300", Value::Double(1e300)),
        // CHAR's trailing spaces are gone on reading (MySQL's PAD semantics).
        ("c_char", "CHAR(5)", "'ab  '", Value::String("ab".into())),
        (
            "c_varchar",
            "VARCHAR(20)",
            "'héllo ✓ 😀'",
            Value::String("héllo ✓ 😀".into()),
        ),
        (
            "c_text",
            "TEXT",
            "'line\\nbreak'",
            Value::String("line\nbreak".into()),
        ),
        ("c_enum", "ENUM('a','b')", "'b'", Value::String("b".into())),
        (
            "c_set",
            "SET('x','y')",
            "'x,y'",
            Value::String("x,y".into()),
        ),
        (
            "c_json",
            "JSON",
            "'{\"a\": [1, 2.50]}'",
            Value::String("{\"a\": [1, 2.50]}".into()),
        ),
        (
            "c_binary",
            "BINARY(3)",
            "X'010203'",
            Value::Bytes(vec![1, 2, 3]),
        ),
        (
            "c_varbinary",
            "VARBINARY(10)",
            "X'00FF'",
            Value::Bytes(vec![0, 255]),
        ),
        (
            "c_blob",
            "BLOB",
            "X'DEADBEEF'",
            Value::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF]),
        ),
        ("c_date", "DATE", "'2024-02-29'", java_date("2024-02-29")),
        ("c_year", "YEAR", "2024", java_date("2024-01-01")),
        (
            "c_time",
            "TIME",
            "'12:34:56'",
            Value::Time("12:34:56".into()),
        ),
        (
            "c_time6",
            "TIME(6)",
            "'23:59:59.123456'",
            Value::Time("23:59:59.123456".into()),
        ),
        (
            "c_time_neg",
            "TIME(3)",
            "'-100:00:00.5'",
            Value::Time("-100:00:00.5".into()),
        ),
        (
            "c_datetime",
            "DATETIME",
            "'2024-02-29 12:34:56'",
            Value::LocalDateTime(epoch("2024-02-29 12:34:56", ZONE_SECONDS)),
        ),
        (
            "c_datetime6",
            "DATETIME(6)",
            "'2024-02-29 00:00:00.000001'",
            Value::LocalDateTime(epoch("2024-02-29 00:00:00.000001", ZONE_SECONDS)),
        ),
        // TIMESTAMP is an instant: the session (sqlx's +00:00) wall time is UTC.
        (
            "c_timestamp6",
            "TIMESTAMP(6) NULL",
            "'2024-02-29 12:34:56.789012'",
            Value::Timestamp(epoch("2024-02-29 12:34:56.789012", 0)),
        ),
        ("c_bool", "BOOL", "1", Value::Bool(true)),
        ("c_tinyint1", "TINYINT(1)", "0", Value::Bool(false)),
        ("c_bit1", "BIT(1)", "b'1'", Value::Bool(true)),
        (
            "c_bit12",
            "BIT(12)",
            "b'101010101010'",
            Value::Bytes(vec![0x0A, 0xAA]),
        ),
        ("c_null", "VARCHAR(5) NULL", "NULL", Value::Null),
    ]
}

async fn create_table(conn: &mut MySqlConnection, table: &str) -> anyhow::Result<TableMeta> {
    let cols = columns();
    let ddl: Vec<String> = cols.iter().map(|(n, t, _, _)| format!("{n} {t}")).collect();
    sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, {}) DEFAULT CHARSET = utf8mb4",
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
    Ok(load_mysql(conn, table).await?)
}

fn args_with(value: &Value, column: Option<&ColumnMeta>, id: i32) -> MySqlArguments {
    let mut args = MySqlArguments::default();
    bind_value::<sqlx::MySql>(&mut args, value, column, zone()).unwrap();
    args.add(id).unwrap();
    args
}

async fn matches_row2(
    conn: &mut MySqlConnection,
    name: &str,
    value: &Value,
    column: Option<&ColumnMeta>,
) -> anyhow::Result<bool> {
    let count: i64 = sqlx::query_scalar_with(
        &format!("SELECT COUNT(*) FROM {TABLE} WHERE {name} <=> ? AND id = ?"),
        args_with(value, column, 2),
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(count == 1)
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
        let value = decode_value::<sqlx::MySql>(&row, index, column, zone())
            .with_context(|| name.to_owned())?;
        assert_eq!(value, expected, "{name}: decoded value");

        // Written back into row 2 as a rollback would, the database holds the same value.
        sqlx::query_with(
            &format!("UPDATE {TABLE} SET {name} = ? WHERE id = ?"),
            args_with(&value, Some(column), 2),
        )
        .execute(&mut conn)
        .await
        .with_context(|| format!("{name}: update"))?;
        let same: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT a.{name} <=> b.{name} AND CAST(a.{name} AS CHAR) <=> CAST(b.{name} AS CHAR) \
             FROM {TABLE} a, {TABLE} b WHERE a.id = 1 AND b.id = 2"
        ))
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(same, Some(1), "{name}: row 2 holds row 1's value");
        // As a query parameter it finds that row, and reading row 2 gives the same Value.
        assert!(
            matches_row2(&mut conn, name, &value, Some(column)).await?,
            "{name}: typed parameter"
        );
        let row2 = sqlx::query(&format!("SELECT * FROM {TABLE} WHERE id = 2"))
            .fetch_one(&mut conn)
            .await?;
        let again = decode_value::<sqlx::MySql>(&row2, index, column, zone())?;
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

/// Values an application bound (no column known) find the row by their own type.
#[tokio::test]
async fn untyped_parameters_compare_as_the_column() -> anyhow::Result<()> {
    let mut conn = connect().await?;
    sqlx::query(&format!("DROP TABLE IF EXISTS {TABLE}_app"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!(
        "CREATE TABLE {TABLE}_app (id INT PRIMARY KEY, u BIGINT UNSIGNED, d DECIMAL(40,20), \
         s VARCHAR(10), b VARBINARY(4), dt DATE, t TIME(6), ldt DATETIME(6), ts TIMESTAMP(6) NULL)"
    ))
    .execute(&mut conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO {TABLE}_app VALUES (2, 18446744073709551615, \
         12345678901234567890.12345678901234567891, 'x', X'01', '2024-01-31', '01:02:03.5', \
         '2024-01-31 23:59:59.999999', '2024-01-31 23:59:59.999999')"
    ))
    .execute(&mut conn)
    .await?;
    let utc = TimeZone::UTC;
    let cases: Vec<(&str, Value)> = vec![
        ("id", Value::from(2i8)),
        ("u", Value::from(u64::MAX)),
        (
            "d",
            Value::decimal("12345678901234567890.12345678901234567891").unwrap(),
        ),
        ("s", Value::from("x")),
        ("b", Value::from(vec![1u8])),
        ("dt", zone().date("2024-01-31".parse().unwrap())),
        (
            "t",
            Value::from(chrono::NaiveTime::from_hms_milli_opt(1, 2, 3, 500).unwrap()),
        ),
        (
            "ldt",
            zone().local_date_time(wall("2024-01-31 23:59:59.999999")),
        ),
        (
            "ts",
            Value::from(wall("2024-01-31 23:59:59.999999").and_utc()),
        ),
    ];
    for (name, value) in cases {
        let mut args = MySqlArguments::default();
        bind_value::<sqlx::MySql>(&mut args, &value, None, zone())?;
        let count: i64 = sqlx::query_scalar_with(
            &format!("SELECT COUNT(*) FROM {TABLE}_app WHERE {name} = ?"),
            args,
        )
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(count, 1, "{name}: {value:?}");
    }
    // A neighbouring decimal (last digit off) finds nothing: no rounding through a double.
    let mut args = MySqlArguments::default();
    let near = Value::decimal("12345678901234567890.12345678901234567892").unwrap();
    bind_value::<sqlx::MySql>(&mut args, &near, None, utc)?;
    let count: i64 = sqlx::query_scalar_with(
        &format!("SELECT COUNT(*) FROM {TABLE}_app WHERE d = ?"),
        args,
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(count, 0);
    Ok(())
}

/// Errors name the column and its type.
#[tokio::test]
async fn unbindable_values_are_refused_with_the_column_named() -> anyhow::Result<()> {
    let mut conn = connect().await?;
    let meta = create_table(&mut conn, "at_values_refused").await?;
    let column = meta.column("c_int").unwrap();
    let mut args = MySqlArguments::default();
    let err = bind_value::<sqlx::MySql>(&mut args, &Value::from("abc"), Some(column), zone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("c_int") && err.contains("int(11)"), "{err}");
    let big = bind_value::<sqlx::MySql>(&mut args, &Value::from(u64::MAX), Some(column), zone());
    // The range is the server's to check (it refuses out-of-range values in strict mode);
    // binding an unsigned 64-bit value itself is fine.
    assert!(big.is_ok());
    Ok(())
}
