//! Fuzz target: arbitrary text through ferrata-expr (the saga expression language): parse, then evaluate
//! against a fixed context-like root (and as a condition, and against null). Nothing may panic
//! or overflow the stack, whatever is refused must be an error, and an accepted expression must
//! keep its source and evaluate the same way twice.
#![no_main]

use std::sync::LazyLock;

use ferrata_expr::{ExprError, Expression, MAX_EXPRESSION_LEN};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static ROOT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "businessKey": "order-1001",
        "count": 12,
        "price": 2.5,
        "big": u64::MAX,
        "min": i64::MIN,
        "ok": true,
        "missing": null,
        "empty": "",
        "tags": ["vip", "eu", 3, null],
        "loopResult": [{ "ok": true }, { "ok": false }],
        "order": { "id": 1001, "customer": { "name": "Ada", "email": null }, "items": [{ "qty": 2 }] },
        "nested": [[[1, [2, [3]]]]]
    })
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let expression = match Expression::parse(&text) {
        Ok(expression) => expression,
        Err(ExprError::Parse { position, .. }) => {
            assert!(position <= text.len(), "position {position} past the text");
            return;
        }
        Err(other) => panic!("parse returned a non-parse error: {other:?}"),
    };
    assert!(text.len() <= MAX_EXPRESSION_LEN);
    assert_eq!(expression.source(), text);
    assert_eq!(expression.to_string(), text);
    let first = expression.evaluate(&ROOT);
    assert_eq!(
        first,
        expression.evaluate(&ROOT),
        "evaluation is not deterministic"
    );
    if let Err(error) = &first {
        assert!(
            matches!(error, ExprError::Eval { .. }),
            "evaluate returned {error:?}"
        );
    }
    match (expression.evaluate_condition(&ROOT), &first) {
        (Ok(b), Ok(value)) => assert_eq!(value, &Value::Bool(b)),
        (Err(_), _) => {}
        (Ok(_), Err(_)) => panic!("a condition succeeded where evaluation failed"),
    }
    let _ = expression.evaluate(&Value::Null);
    let _ = expression.evaluate(&json!([0, "a"]));
});
