//! Undo-log vectors written by seata-all's own JacksonUndoLogParser and compressors
//! (tests/vectors/java2, java1) decode to the models below, and our encodings of the same
//! models (tests/vectors/rust, read back by Java in interop/java UndoLogVectorsTest) are
//! what the encoder writes today. FERRATA_UPDATE_VECTORS=1 rewrites tests/vectors/rust.

use std::path::PathBuf;

use ferrata_at::undo::{
    BranchUndoLog, CompressorType, Decimal, EpochTime, Field, Row, SqlType, SqlUndoLog,
    TableRecords, UndoContext, UndoSettings, Value, compress, decode_rollback_info, decompress,
    jackson, jdbc_type as t,
};

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(vectors().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dec(text: &str) -> Value {
    Value::Decimal(Decimal::parse(text).expect("decimal"))
}

fn ts(ms: i64, nanos: u32) -> EpochTime {
    EpochTime {
        seconds: ms.div_euclid(1000),
        nanos,
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

fn update(
    xid: &str,
    branch_id: i64,
    table: &str,
    before: Vec<Row>,
    after: Vec<Row>,
) -> BranchUndoLog {
    BranchUndoLog {
        xid: xid.into(),
        branch_id,
        sql_undo_logs: vec![SqlUndoLog {
            sql_type: SqlType::Update,
            table_name: table.into(),
            before_image: Some(TableRecords::new(table, before)),
            after_image: Some(TableRecords::new(table, after)),
        }],
    }
}

const T0_MS: i64 = 1_709_296_496_000;

fn mysql_types() -> BranchUndoLog {
    let f = Field::new;
    let before = Row::new(vec![
        Field::key("id", t::BIGINT, Value::Long(1)),
        f("c_tinyint", t::TINYINT, Value::Int(127)),
        f("c_tinyint_u", t::TINYINT, Value::Int(255)),
        f("c_smallint", t::SMALLINT, Value::Int(-32768)),
        f("c_smallint_u", t::SMALLINT, Value::Int(65535)),
        f("c_mediumint", t::INTEGER, Value::Int(8388607)),
        f("c_int", t::INTEGER, Value::Int(i32::MIN)),
        f("c_int_u", t::INTEGER, Value::Long(4294967295)),
        f("c_bigint", t::BIGINT, Value::Long(i64::MIN)),
        f(
            "c_bigint_u",
            t::BIGINT,
            Value::BigInteger(18446744073709551615),
        ),
        f("c_bit1", t::BIT, Value::Bool(true)),
        f("c_bool", t::BIT, Value::Bool(false)),
        f("c_decimal", t::DECIMAL, dec("12.50")),
        f(
            "c_decimal_big",
            t::DECIMAL,
            dec("-12345678901234567890123456789.123456789"),
        ),
        f("c_decimal_tiny", t::DECIMAL, dec("0.0000000001")),
        f("c_decimal_zero", t::DECIMAL, dec("0.00")),
        f("c_decimal_int", t::DECIMAL, dec("99999999999999999999")),
        f("c_float", t::REAL, Value::Float(1.5)),
        f("c_float_max", t::REAL, Value::Float(f32::MAX)),
        f("c_float_third", t::REAL, Value::Float(1.0f32 / 3.0)),
        f("c_double", t::DOUBLE, Value::Double(0.1)),
        f("c_double_big", t::DOUBLE, Value::Double(1.0e300)),
        f("c_double_small", t::DOUBLE, Value::Double(-2.5e-300)),
        f("c_double_int", t::DOUBLE, Value::Double(42.0)),
        f("c_char", t::CHAR, s("abc")),
        f(
            "c_varchar",
            t::VARCHAR,
            s("h\u{e9}llo \"quoted\" \\ /\n\ttab \u{6f22}\u{5b57} \u{1F600} \u{1}"),
        ),
        f("c_text", t::LONGVARCHAR, s(&"text ".repeat(20))),
        f("c_empty", t::VARCHAR, s("")),
        f(
            "c_json",
            t::LONGVARCHAR,
            s("{\"a\": [1, 2.50, null], \"b\": \"x\"}"),
        ),
        f("c_enum", t::CHAR, s("medium")),
        f("c_set", t::CHAR, s("a,b")),
        f(
            "c_blob",
            t::LONGVARBINARY,
            Value::Bytes(vec![0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]),
        ),
        f(
            "c_binary",
            t::BINARY,
            Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]),
        ),
        f("c_empty_blob", t::LONGVARBINARY, Value::Bytes(vec![])),
        f("c_date", t::DATE, Value::Date(1_709_251_200_000)),
        f("c_time", t::TIME, Value::Time("12:34:56".into())),
        f("c_year", t::DATE, Value::Date(1_704_067_200_000)),
        f(
            "c_datetime",
            t::TIMESTAMP,
            Value::LocalDateTime(ts(T0_MS, 0)),
        ),
        f(
            "c_datetime3",
            t::TIMESTAMP,
            Value::LocalDateTime(ts(T0_MS, 123_000_000)),
        ),
        f(
            "c_datetime6",
            t::TIMESTAMP,
            Value::LocalDateTime(ts(T0_MS, 123_456_000)),
        ),
        f(
            "c_datetime_old",
            t::TIMESTAMP,
            Value::LocalDateTime(ts(-1, 999_999_000)),
        ),
        f("c_timestamp", t::TIMESTAMP, Value::Timestamp(ts(T0_MS, 0))),
        f(
            "c_timestamp3",
            t::TIMESTAMP,
            Value::Timestamp(ts(T0_MS, 789_000_000)),
        ),
        f(
            "c_timestamp6",
            t::TIMESTAMP,
            Value::Timestamp(ts(T0_MS, 123_456_000)),
        ),
        f(
            "c_timestamp_old",
            t::TIMESTAMP,
            Value::Timestamp(ts(-1, 999_999_001)),
        ),
        f("c_null", t::VARCHAR, Value::Null),
        f("c_null_int", t::INTEGER, Value::Null),
    ]);
    let after = Row::new(vec![
        Field::key("id", t::BIGINT, Value::Long(1)),
        f("c_tinyint", t::TINYINT, Value::Int(-128)),
        f("c_int", t::INTEGER, Value::Int(0)),
        f("c_bigint", t::BIGINT, Value::Long(i64::MAX)),
        f("c_bigint_u", t::BIGINT, Value::BigInteger(0)),
        f("c_decimal", t::DECIMAL, dec("-0.01")),
        f("c_double", t::DOUBLE, Value::Double(-0.0)),
        f("c_varchar", t::VARCHAR, Value::Null),
    ]);
    update(
        "192.168.0.7:8091:2000042",
        2000043,
        "t_types",
        vec![before],
        vec![after],
    )
}

fn pg(type_name: &str, value: Option<&str>) -> Value {
    Value::PgObject {
        type_name: Some(type_name.into()),
        value: value.map(str::to_string),
    }
}

fn postgres_types() -> BranchUndoLog {
    let f = Field::new;
    let before = Row::new(vec![
        Field::key("id", t::INTEGER, Value::Int(7)),
        f("c_int2", t::SMALLINT, Value::Int(-32768)),
        f("c_int4", t::INTEGER, Value::Int(i32::MAX)),
        f("c_int8", t::BIGINT, Value::Long(i64::MAX)),
        f(
            "c_numeric",
            t::NUMERIC,
            dec("3.14159265358979323846264338327950288"),
        ),
        f("c_numeric_neg", t::NUMERIC, dec("-1000.000")),
        f("c_real", t::REAL, Value::Float(-1.25)),
        f("c_float8", t::DOUBLE, Value::Double(f64::MAX)),
        f("c_bool", t::BIT, Value::Bool(true)),
        f("c_char", t::CHAR, s("ab  ")),
        f("c_varchar", t::VARCHAR, s("varchar \u{fc}")),
        f("c_text", t::VARCHAR, s("line1\nline2")),
        f("c_bytea", t::BINARY, Value::Bytes(vec![0x00, 0x10, 0xff])),
        f("c_date", t::DATE, Value::Date(1_709_251_200_000)),
        f("c_time", t::TIME, Value::Time("12:34:56".into())),
        f(
            "c_timestamp",
            t::TIMESTAMP,
            Value::Timestamp(ts(T0_MS + 123, 123_456_000)),
        ),
        f(
            "c_timestamptz",
            t::TIMESTAMP,
            Value::Timestamp(ts(T0_MS, 1_000)),
        ),
        f("c_json", t::OTHER, pg("json", Some("{\"k\": [1, 2]}"))),
        f("c_jsonb", t::OTHER, pg("jsonb", Some("{\"k\": [1, 2]}"))),
        f("c_enum", t::VARCHAR, pg("mood", Some("happy"))),
        f("c_null", t::NUMERIC, Value::Null),
    ]);
    let after = Row::new(vec![
        Field::key("id", t::INTEGER, Value::Int(7)),
        f("c_int2", t::SMALLINT, Value::Int(1)),
        f("c_json", t::OTHER, pg("json", None)),
    ]);
    update(
        "10.0.0.5:8091:7001",
        7002,
        "public.t_pg",
        vec![before],
        vec![after],
    )
}

fn statements() -> BranchUndoLog {
    let account = |id: i64, money: i32| {
        Row::new(vec![
            Field::key("id", t::BIGINT, Value::Long(id)),
            Field::new("money", t::INTEGER, Value::Int(money)),
        ])
    };
    let item = |sql_type, table: &str, before, after| SqlUndoLog {
        sql_type,
        table_name: table.into(),
        before_image: Some(before),
        after_image: Some(after),
    };
    let line = Row::new(vec![
        Field::key("order_id", t::INTEGER, Value::Int(5)),
        Field::key("line_no", t::INTEGER, Value::Int(1)),
        Field::new("sku", t::VARCHAR, s("A-1")),
    ]);
    BranchUndoLog {
        xid: "127.0.0.1:8091:1".into(),
        branch_id: 2,
        sql_undo_logs: vec![
            item(
                SqlType::Insert,
                "account",
                TableRecords::empty(),
                TableRecords::new("account", vec![account(10, 100), account(11, 200)]),
            ),
            item(
                SqlType::Update,
                "account",
                TableRecords::new("account", vec![account(1, 100)]),
                TableRecords::new("account", vec![account(1, 90)]),
            ),
            item(
                SqlType::Delete,
                "order_line",
                TableRecords::new("order_line", vec![line]),
                TableRecords::empty(),
            ),
            item(
                SqlType::UpdateJoin,
                "account",
                TableRecords::new("account", vec![account(2, 5)]),
                TableRecords::new("account", vec![account(2, 6)]),
            ),
        ],
    }
}

fn misc_values() -> BranchUndoLog {
    let row = Row::new(vec![
        Field::key("id", t::SMALLINT, Value::Short(3)),
        Field::new("c_byte", t::TINYINT, Value::Byte(-7)),
        Field::new("c_short", t::SMALLINT, Value::Short(300)),
        Field::new("c_blob", t::BLOB, Value::Blob(b"blob bytes".to_vec())),
        Field::new("c_clob", t::CLOB, Value::Clob("clob \u{e9}".into())),
        Field::new("c_biginteger", t::NUMERIC, Value::BigInteger(i128::MIN)),
    ]);
    update("xid-misc", -1, "misc", vec![row.clone()], vec![row])
}

fn large() -> BranchUndoLog {
    let rows = |fraction: &str| -> Vec<Row> {
        (0..100i64)
            .map(|i| {
                Row::new(vec![
                    Field::key("id", t::BIGINT, Value::Long(i)),
                    Field::new(
                        "name",
                        t::VARCHAR,
                        s(&format!("customer-{i}-{}", "x".repeat((i % 50) as usize))),
                    ),
                    Field::new("balance", t::DECIMAL, dec(&format!("{i}.{fraction}"))),
                ])
            })
            .collect()
    };
    update(
        "172.16.1.1:8091:99",
        100,
        "customer",
        rows("25"),
        rows("75"),
    )
}

fn models() -> Vec<(&'static str, BranchUndoLog)> {
    vec![
        ("mysql_types", mysql_types()),
        ("postgres_types", postgres_types()),
        ("statements", statements()),
        ("misc_values", misc_values()),
        ("large", large()),
    ]
}

const COMPRESSORS: [CompressorType; 6] = [
    CompressorType::Gzip,
    CompressorType::Zip,
    CompressorType::Bzip2,
    CompressorType::Lz4,
    CompressorType::Deflater,
    CompressorType::Zstd,
];

#[test]
fn java_vectors_decode_to_the_models() {
    for (name, model) in models() {
        let decoded = jackson::decode(&read(&format!("java2/{name}.json"))).expect(name);
        assert_eq!(decoded, model, "{name}");
    }
}

#[test]
fn java_decimals_keep_scale() {
    let log = jackson::decode(&read("java2/mysql_types.json")).expect("decode");
    let before = log.sql_undo_logs[0].before_image.as_ref().expect("before");
    let value = |name: &str| {
        before.rows[0]
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.clone())
            .expect(name)
    };
    let Value::Decimal(d) = value("c_decimal") else {
        panic!("not a decimal")
    };
    assert_eq!((d.to_string().as_str(), d.scale()), ("12.50", 2));
    let Value::Decimal(d) = value("c_decimal_tiny") else {
        panic!("not a decimal")
    };
    assert_eq!((d.to_string().as_str(), d.scale()), ("0.0000000001", 10));
    assert_ne!(value("c_decimal"), dec("12.5"));
}

#[test]
fn java_compressed_vectors_decompress_to_the_large_log() {
    let plain = read("java2/large.json");
    assert!(plain.len() > 64 * 1024);
    for c in COMPRESSORS {
        let packed = read(&format!("java2/compressed/large.{}", c.name()));
        assert_eq!(
            decompress(c, &packed, 1 << 20).unwrap_or_else(|e| panic!("{c:?}: {e}")),
            plain,
            "{c:?}"
        );
        let context = format!("serializer=jackson&compressorType={}&map=", c.name());
        let log =
            decode_rollback_info(&context, &packed, &[], &UndoSettings::default()).expect("decode");
        assert_eq!(log, large());
    }
}

#[test]
fn java_global_finished_marker_is_an_empty_log() {
    let content = read("java2/global_finished.json");
    assert_eq!(
        jackson::decode(&content).expect("marker"),
        BranchUndoLog::default()
    );
    let marker = ferrata_at::undo::global_finished();
    assert_eq!(marker.rollback_info, content);
    // Java's own marker context is one of the recorded contexts.
    let contexts = String::from_utf8(read("java2/contexts.txt")).expect("utf8");
    assert!(
        contexts
            .lines()
            .any(|l| UndoContext::parse(l) == marker.context)
    );
}

#[test]
fn java_contexts_parse_to_the_written_pairs() {
    let contexts = String::from_utf8(read("java2/contexts.txt")).expect("utf8");
    let parsed: Vec<UndoContext> = contexts.lines().map(UndoContext::parse).collect();
    assert_eq!(parsed.len(), 5);
    assert_eq!(parsed[1].compressor().expect("zip"), CompressorType::Zip);
    assert_eq!(parsed[1].get("map"), Some("4194304"));
    assert_eq!(
        parsed[2].get("map"),
        None,
        "Java's `map=` is a malformed pair"
    );
    assert_eq!(parsed[4].sub_ids().expect("ids"), [11, 12]);
    assert_eq!(parsed[4].compressor().expect("zstd"), CompressorType::Zstd);
    // Ours, for the same inputs, parse to the same maps.
    let ours = ferrata_at::undo::encode_rollback_info(
        &statements(),
        &UndoSettings::default(),
        Some("4194304"),
    )
    .expect("encode");
    assert_eq!(UndoContext::parse(&ours.context.to_string()), parsed[0]);
}

/// Writes (with FERRATA_UPDATE_VECTORS=1) or checks tests/vectors/rust.
fn check_or_update(path: &str, bytes: &[u8]) {
    let file = vectors().join(path);
    if std::env::var_os("FERRATA_UPDATE_VECTORS").is_some() {
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, bytes).expect("write");
    }
    let committed = std::fs::read(&file)
        .unwrap_or_else(|e| panic!("{path}: {e} (FERRATA_UPDATE_VECTORS=1 writes it)"));
    assert!(
        committed == bytes,
        "{path} differs from what the encoder writes now"
    );
}

#[test]
fn rust_vectors_are_what_the_encoder_writes() {
    for (name, model) in models() {
        let encoded = jackson::encode(&model);
        assert_eq!(
            jackson::decode(&encoded).expect(name),
            model,
            "{name} round trip"
        );
        check_or_update(&format!("rust/{name}.json"), &encoded);
    }
    let plain = jackson::encode(&large());
    for c in COMPRESSORS {
        let path = format!("rust/compressed/large.{}", c.name());
        if std::env::var_os("FERRATA_UPDATE_VECTORS").is_some() {
            check_or_update(&path, &compress(c, &plain).expect("compress"));
        }
        // Compressed bytes may legitimately change with a library; their content may not.
        let committed = read(&path);
        assert_eq!(
            decompress(c, &committed, 1 << 20).unwrap_or_else(|e| panic!("{c:?}: {e}")),
            plain,
            "{path}"
        );
    }
}
