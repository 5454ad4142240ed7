//! The action context against applicationData produced by the real Java serializers (fastjson
//! and jackson, see fixtures/GenerateJavaContexts.java) and by Go's encoding/json (fixtures/
//! generate_go_context.go), and the shape of what this crate writes.
// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrata_tcc::BusinessActionContext;
use ferrata_tcc::context::{decode_application_data, encode_application_data, keys};
use serde::Deserialize;
use serde_json::{Value, json};

const JAVA_FASTJSON: &str = include_str!("fixtures/java_fastjson.json");
const JAVA_JACKSON: &str = include_str!("fixtures/java_jackson.json");
const GO: &str = include_str!("fixtures/go_context.json");

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: i64,
    tags: Vec<String>,
}

fn phase_two(data: &str) -> BusinessActionContext {
    BusinessActionContext::from_application_data("10.0.0.1:8091:77", 78, "accountTccAction", data)
        .unwrap()
}

#[test]
fn java_fastjson_context_is_read_with_every_framework_key() {
    let ctx = phase_two(JAVA_FASTJSON);
    assert_eq!(ctx.xid, "10.0.0.1:8091:77");
    assert_eq!(ctx.branch_id, 78);
    assert_eq!(ctx.action_name, "accountTccAction");
    assert_eq!(
        ctx.get::<i64>(keys::ACTION_START_TIME).unwrap(),
        Some(1732233412345)
    );
    assert_eq!(ctx.get_str(keys::PREPARE_METHOD), Some("prepare"));
    assert_eq!(ctx.get_str(keys::COMMIT_METHOD), Some("commit"));
    assert_eq!(ctx.get_str(keys::ROLLBACK_METHOD), Some("rollback"));
    assert_eq!(ctx.get_str(keys::ACTION_NAME), Some("accountTccAction"));
    assert_eq!(ctx.get_str(keys::HOST_NAME), Some("192.168.1.20"));
    assert!(ctx.use_tcc_fence());
    assert_eq!(
        ctx.get::<String>("userId").unwrap().as_deref(),
        Some("U100")
    );
    assert_eq!(ctx.get::<i32>("money").unwrap(), Some(30));
    assert_eq!(ctx.get::<f64>("amount").unwrap(), Some(30.5));
    assert_eq!(ctx.get::<Vec<i64>>("orderIds").unwrap(), Some(vec![1, 2]));
    let order = Order {
        id: 7,
        tags: vec!["x".into(), "y".into()],
    };
    assert_eq!(ctx.get::<Order>("order").unwrap().as_ref(), Some(&order));
    // Java's addContext stored this object as JSON text; it reads back as the object too.
    assert_eq!(ctx.get::<Order>("receipt").unwrap().as_ref(), Some(&order));
    assert!(ctx.get::<Order>("userId").is_err());
    assert_eq!(ctx.get::<String>("absent").unwrap(), None);
}

#[test]
fn java_jackson_typed_context_reads_the_same_as_fastjson() {
    assert!(JAVA_JACKSON.starts_with(ferrata_tcc::context::JACKSON_TYPED_PREFIX));
    let typed = decode_application_data(JAVA_JACKSON).unwrap();
    let plain = decode_application_data(JAVA_FASTJSON).unwrap();
    assert_eq!(typed, plain);
    assert!(!typed.contains_key("@class"));
    assert_eq!(typed["action-start-time"], json!(1732233412345_i64));
    assert_eq!(typed["orderIds"], json!([1, 2]));
}

#[test]
fn plain_json_that_looks_typed_is_left_alone() {
    // Only text starting with {"@class": is jackson's: a plain pair must survive.
    let data = r#"{"actionContext":{"pair":["java.lang.Long",5]}}"#;
    let map = decode_application_data(data).unwrap();
    assert_eq!(map["pair"], json!(["java.lang.Long", 5]));
}

#[test]
fn go_context_is_read() {
    let ctx = phase_two(GO);
    assert_eq!(
        ctx.get::<i64>(keys::ACTION_START_TIME).unwrap(),
        Some(1732233412345)
    );
    assert_eq!(ctx.get_str(keys::PREPARE_METHOD), Some("Prepare"));
    assert_eq!(ctx.get_str(keys::HOST_NAME), Some("192.168.1.30"));
    assert_eq!(ctx.get::<Vec<i64>>("orderIds").unwrap(), Some(vec![1, 2]));
    // seata-go does not write useTCCFence: such a branch never goes through the fence.
    assert!(!ctx.use_tcc_fence());
}

#[test]
fn written_context_has_java_shape_and_round_trips() {
    let mut ctx = phase_two("");
    assert!(ctx.action_context.is_empty());
    ctx.put("userId", "U100").unwrap();
    ctx.put("order", json!({"id": 7, "tags": ["x"]})).unwrap();
    ctx.put(keys::USE_TCC_FENCE, true).unwrap();
    let data = ctx.to_application_data();
    let parsed: Value = serde_json::from_str(&data).unwrap();
    let root = parsed.as_object().unwrap();
    assert_eq!(root.len(), 1, "only actionContext at the top: {data}");
    assert_eq!(root[keys::ACTION_CONTEXT]["userId"], "U100");
    assert_eq!(root[keys::ACTION_CONTEXT][keys::USE_TCC_FENCE], true);
    assert_eq!(
        decode_application_data(&data).unwrap(),
        ctx.action_context,
        "what we write reads back unchanged"
    );
    assert_eq!(encode_application_data(&ctx.action_context), data);
}

#[test]
fn fence_flag_must_be_the_boolean_true() {
    for (value, fenced) in [
        (json!(true), true),
        (json!(false), false),
        (json!("true"), false),
        (json!(1), false),
    ] {
        let mut ctx = phase_two("");
        ctx.put(keys::USE_TCC_FENCE, value).unwrap();
        assert_eq!(ctx.use_tcc_fence(), fenced);
    }
}

#[test]
fn malformed_application_data_is_an_error_that_says_what_is_wrong() {
    let err = BusinessActionContext::from_application_data("x", 1, "a", "{\"actionContext\":[1]}")
        .unwrap_err();
    assert!(err.to_string().contains("actionContext"), "{err}");
    let err = BusinessActionContext::from_application_data("x", 1, "a", "not json").unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}
