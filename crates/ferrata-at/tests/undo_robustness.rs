//! Decoding reads hostile bytes: random input and mutations of valid logs must give an
//! error or a log, never a panic; MySQL chunk rows reassemble to the original log.

use ferrata_at::undo::{
    BranchUndoLog, CompressorType, Decimal, Field, JavaPackage, Row, SqlType, SqlUndoLog,
    TableRecords, UndoContext, UndoError, UndoSettings, Value, decode_rollback_info,
    encode_rollback_info, jackson, jdbc_type, split_mysql_chunks,
};
use proptest::prelude::*;

const JAVA_VECTOR: &[u8] = include_bytes!("vectors/java2/mysql_types.json");

fn sample(rows: usize) -> BranchUndoLog {
    let row = |i: usize| {
        Row::new(vec![
            Field::key("id", jdbc_type::BIGINT, Value::Long(i as i64)),
            Field::new(
                "note",
                jdbc_type::VARCHAR,
                Value::String(format!("row {i} {}", "n".repeat(i % 97))),
            ),
            Field::new(
                "amount",
                jdbc_type::DECIMAL,
                Value::Decimal(Decimal::parse(&format!("{i}.10")).expect("dec")),
            ),
        ])
    };
    BranchUndoLog {
        xid: "127.0.0.1:8091:5".into(),
        branch_id: 6,
        sql_undo_logs: vec![SqlUndoLog {
            sql_type: SqlType::Update,
            table_name: "t".into(),
            before_image: Some(TableRecords::new("t", (0..rows).map(row).collect())),
            after_image: Some(TableRecords::new("t", (0..rows).map(row).collect())),
        }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = jackson::decode(&bytes);
        let _ = decode_rollback_info("compressorType=ZIP", &bytes, &[], &UndoSettings::default());
    }

    #[test]
    fn mutated_java_logs_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = JAVA_VECTOR.to_vec();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = jackson::decode(&bytes);
    }

    #[test]
    fn truncated_java_logs_are_errors(cut in 0usize..JAVA_VECTOR.len()) {
        prop_assert!(jackson::decode(&JAVA_VECTOR[..cut]).is_err());
    }

    #[test]
    fn decimals_round_trip_with_their_scale(int in "-?[0-9]{1,30}", frac in "[0-9]{0,20}", exp in -30i32..30) {
        let text = if frac.is_empty() { format!("{int}E{exp}") } else { format!("{int}.{frac}E{exp}") };
        let d = Decimal::parse(&text).expect("valid");
        let again = Decimal::parse(&d.to_json_number()).expect("reparse");
        prop_assert_eq!(&again, &d);
        // The plain form denotes the same number (its scale is lost only for negative scales).
        let plain = Decimal::parse(&d.to_string()).expect("plain");
        prop_assert_eq!(plain.to_string(), d.to_string());
    }
}

#[test]
fn hostile_shapes_give_typed_errors() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        jackson::decode(deep.as_bytes()),
        Err(UndoError::TooDeep { .. })
    ));
    let huge_exponent = br#"{"sqlUndoLogs":["java.util.ArrayList",[{"sqlType":"UPDATE","beforeImage":{"rows":["java.util.ArrayList",[{"fields":["java.util.ArrayList",[{"name":"a","keyType":"NULL","type":3,"value":["java.math.BigDecimal",1E-999999999]}]]}]]}}]]}"#;
    assert!(matches!(
        jackson::decode(huge_exponent),
        Err(UndoError::InvalidNumber(_))
    ));
    let wrong_class = br#"{"@class":"com.evil.Gadget","xid":"x"}"#;
    assert!(matches!(
        jackson::decode(wrong_class),
        Err(UndoError::UnexpectedClass { .. })
    ));
    let bad_type = br#"{"sqlUndoLogs":["java.util.ArrayList",[{"sqlType":"DROP_TABLE"}]]}"#;
    assert!(matches!(
        jackson::decode(bad_type),
        Err(UndoError::UnknownSqlType(_))
    ));
    let bad_nanos = br#"{"sqlUndoLogs":["java.util.ArrayList",[{"sqlType":"UPDATE","afterImage":{"rows":["java.util.ArrayList",[{"fields":["java.util.ArrayList",[{"value":["java.sql.Timestamp",[0,1000000000]]}]]}]]}}]]}"#;
    assert!(matches!(
        jackson::decode(bad_nanos),
        Err(UndoError::OutOfRange { .. })
    ));
    let too_big = jackson::decode_with_limit(JAVA_VECTOR, 100);
    assert!(matches!(
        too_big,
        Err(UndoError::TooLarge { limit_bytes: 100 })
    ));
}

#[test]
fn io_seata_class_names_decode_too() {
    let v1 = String::from_utf8(JAVA_VECTOR.to_vec())
        .expect("utf8")
        .replace("org.apache.seata.", "io.seata.");
    assert_eq!(
        jackson::decode(v1.as_bytes()).expect("1.x"),
        jackson::decode(JAVA_VECTOR).expect("2.x")
    );
}

#[test]
fn logs_for_seata_1_carry_io_seata_class_names() {
    let log = jackson::decode(JAVA_VECTOR).expect("2.x");
    let v1 = jackson::encode_for(&log, JavaPackage::IoSeata);
    let expected = String::from_utf8(jackson::encode(&log))
        .expect("utf8")
        .replace("\"org.apache.seata.", "\"io.seata.");
    assert_eq!(String::from_utf8(v1.clone()).expect("utf8"), expected);
    assert!(!String::from_utf8_lossy(&v1).contains("org.apache.seata"));
    assert_eq!(jackson::decode(&v1).expect("1.x"), log);
    let settings = UndoSettings {
        java_package: JavaPackage::IoSeata,
        ..UndoSettings::default()
    };
    let row = encode_rollback_info(&log, &settings, None).expect("encode");
    assert_eq!(row.rollback_info, v1);
}

#[test]
fn compression_follows_javas_threshold_rule() {
    let settings = UndoSettings::default();
    let small = encode_rollback_info(&sample(2), &settings, Some("4194304")).expect("small");
    assert_eq!(
        small.context.compressor().expect("none"),
        CompressorType::None
    );
    assert_eq!(small.rollback_info, jackson::encode(&sample(2)));
    let big_log = sample(400);
    assert!(jackson::encode(&big_log).len() > 64 * 1024);
    let big = encode_rollback_info(&big_log, &settings, Some("4194304")).expect("big");
    assert_eq!(big.context.compressor().expect("zip"), CompressorType::Zip);
    assert_eq!(
        &big.rollback_info[..4],
        b"PK\x03\x04",
        "a zip archive, as Java's ZipUtil writes"
    );
    let back = decode_rollback_info(&big.context.to_string(), &big.rollback_info, &[], &settings)
        .expect("decode");
    assert_eq!(back, big_log);
    let off = UndoSettings {
        compress_enabled: false,
        ..UndoSettings::default()
    };
    let plain = encode_rollback_info(&big_log, &off, None).expect("uncompressed");
    assert_eq!(
        plain.context.to_string(),
        "serializer=jackson&compressorType=NONE"
    );
}

#[test]
fn mysql_chunks_reassemble_in_sub_id_order() {
    let settings = UndoSettings {
        compress_enabled: false,
        ..UndoSettings::default()
    };
    let log = sample(300);
    let encoded = encode_rollback_info(&log, &settings, Some("10000")).expect("encode");
    let mut next = 500;
    let split = split_mysql_chunks(&encoded, 6, || {
        next += 1;
        next
    })
    .expect("split");
    // (int) (10000 * 0.8) bytes per row.
    assert_eq!(split.main_content.len(), 8000);
    assert!(split.chunks.iter().all(|(_, c)| c.len() <= 8000));
    assert_eq!(split.chunk_context.to_string(), "branchId=6");
    let ids: Vec<i64> = split.chunks.iter().map(|(id, _)| *id).collect();
    assert_eq!(split.main_context.sub_ids().expect("ids"), ids);
    assert!(
        split
            .main_context
            .get("subId")
            .expect("subId")
            .ends_with(',')
    );
    let chunks: Vec<&[u8]> = split.chunks.iter().map(|(_, c)| c.as_slice()).collect();
    let ctx = split.main_context.to_string();
    let back =
        decode_rollback_info(&ctx, &split.main_content, &chunks, &settings).expect("reassembled");
    assert_eq!(back, log);
    // Out of order chunks corrupt the document; a missing one is refused up front.
    let mut reversed = chunks.clone();
    reversed.reverse();
    assert!(decode_rollback_info(&ctx, &split.main_content, &reversed, &settings).is_err());
    assert!(matches!(
        decode_rollback_info(&ctx, &split.main_content, &chunks[1..], &settings),
        Err(UndoError::ChunkCount { .. })
    ));
    // Small logs stay in one row with the context unchanged.
    let small = encode_rollback_info(&sample(1), &settings, Some("")).expect("small");
    let one = split_mysql_chunks(&small, 6, || unreachable!("no chunk rows")).expect("split");
    assert!(one.chunks.is_empty());
    assert_eq!(one.main_context, small.context);
}

#[test]
fn other_serializers_are_refused() {
    let err = decode_rollback_info(
        "serializer=kryo&compressorType=NONE",
        b"{}",
        &[],
        &UndoSettings::default(),
    );
    assert!(matches!(err, Err(UndoError::UnsupportedSerializer(s)) if s == "kryo"));
    let marker = decode_rollback_info(
        "serializer=jackson&compressorType=NONE",
        b"{}",
        &[],
        &UndoSettings::default(),
    );
    assert_eq!(marker.expect("marker"), BranchUndoLog::default());
    assert_eq!(
        UndoContext::parse("serializer=jackson").serializer(),
        "jackson"
    );
}
