//! The saga expression language (`ferrata_expr`): every documented form with exact values
//! and error kinds, every example of docs/guide/saga-expressions.md, and hostile input.

use ferrata_expr::{ExprError, Expression, MAX_EXPRESSION_LEN, MAX_NESTING};
use serde_json::{Value, json};

/// The guide's example root (`guide_examples` checks that the two agree).
fn root() -> Value {
    json!({
        "businessKey": "order-1001",
        "orderId": 1001,
        "count": 12,
        "price": 2.5,
        "reduceInventoryResult": true,
        "a": "x",
        "b": "x",
        "empty": "",
        "missing": null,
        "nrOfInstances": 3,
        "nrOfCompletedInstances": 3,
        "loopResult": [{ "ok": true }, { "ok": true }, { "ok": false }],
        "tags": ["vip", "eu"],
        "idx": 1,
        "order-id": 7,
        "order": {
            "id": 1001,
            "customer": { "name": "Ada", "email": null },
            "items": [{ "sku": "A-1", "qty": 2 }, { "sku": "B-7", "qty": 1 }]
        }
    })
}

fn parse(text: &str) -> Expression {
    Expression::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn eval_with(text: &str, root: &Value) -> Value {
    parse(text)
        .evaluate(root)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn eval(text: &str) -> Value {
    eval_with(text, &root())
}

/// Asserts an evaluation error and returns its message.
fn eval_err_with(text: &str, root: &Value) -> String {
    match parse(text).evaluate(root) {
        Err(ExprError::Eval {
            expression,
            message,
        }) => {
            assert_eq!(expression, text);
            message
        }
        other => panic!("{text}: expected an Eval error, got {other:?}"),
    }
}

fn eval_err(text: &str) -> String {
    eval_err_with(text, &root())
}

/// Asserts a parse error and returns its position and message.
fn parse_err(text: &str) -> (usize, String) {
    match Expression::parse(text) {
        Err(ExprError::Parse {
            expression,
            position,
            message,
        }) => {
            if text.len() <= MAX_EXPRESSION_LEN {
                assert_eq!(expression, text);
            }
            (position, message)
        }
        other => panic!("{text:?}: expected a Parse error, got {other:?}"),
    }
}

fn contains(message: &str, part: &str) {
    assert!(
        message.contains(part),
        "{message:?} should contain {part:?}"
    );
}

#[test]
fn seata_state_machine_examples() {
    let context = root();
    // Input "$.[businessKey]": the engine strips "$." and evaluates against the context.
    assert_eq!(eval_with("[businessKey]", &context), json!("order-1001"));
    // Output: root = the service's result.
    let result = json!({ "orderId": 1001 });
    assert_eq!(eval_with("#root", &result), result);
    assert_eq!(eval_with("#root.orderId", &result), json!(1001));
    assert_eq!(eval_with("[orderId]", &result), json!(1001));
    // Status keys.
    let status = |text: &str, root: Value| parse(text).evaluate_condition(&root).unwrap();
    assert!(status("#root == true", json!(true)));
    assert!(!status("#root == true", json!(false)));
    assert!(!status("#root == true", json!({ "success": true })));
    let both = "#root.success == true && #root.code == 'OK'";
    assert!(status(both, json!({ "success": true, "code": "OK" })));
    assert!(!status(both, json!({ "success": true, "code": "FAIL" })));
    assert!(!status(both, json!({ "success": false })));
    // Choice conditions against the context.
    let choice = |text: &str| parse(text).evaluate_condition(&context).unwrap();
    assert!(choice("[reduceInventoryResult] == true"));
    assert!(choice("[count] > 10"));
    assert!(choice("[a] != null and [b] == 'x'"));
    assert!(!choice("[missing] != null and [b] == 'x'"));
    // Loop completion conditions.
    assert!(choice("[nrOfInstances] == [nrOfCompletedInstances]"));
    assert!(choice("[loopResult].size() > 2"));
    assert!(!status(
        "[nrOfInstances] == [nrOfCompletedInstances]",
        json!({ "nrOfInstances": 3, "nrOfCompletedInstances": 2 })
    ));
}

#[test]
fn literals() {
    assert_eq!(eval("42"), json!(42));
    assert_eq!(eval("0"), json!(0));
    assert_eq!(eval("-7"), json!(-7));
    assert_eq!(eval("3.25"), json!(3.25));
    assert_eq!(eval("1e3"), json!(1000.0));
    assert_eq!(eval("2.5E-1"), json!(0.25));
    assert_eq!(eval("'it''s'"), json!("it's"));
    assert_eq!(eval("''"), json!(""));
    assert_eq!(eval("\"say \"\"hi\"\"\""), json!("say \"hi\""));
    assert_eq!(eval("\"it's\""), json!("it's"));
    assert_eq!(eval("'a\\nb'"), json!("a\\nb"));
    assert_eq!(eval("'日本'"), json!("日本"));
    assert_eq!(eval("true"), json!(true));
    assert_eq!(eval("TRUE"), json!(true));
    assert_eq!(eval("False"), json!(false));
    assert_eq!(eval("null"), Value::Null);
    assert_eq!(eval("NULL"), Value::Null);
    assert_eq!(eval("9223372036854775807"), json!(i64::MAX));
    assert_eq!(eval("-9223372036854775808"), json!(i64::MIN));
    // Integer literals stay integers, decimal ones decimals.
    assert!(eval("1").is_i64());
    assert!(eval("1.0").is_f64());
    contains(&parse_err("9223372036854775808").1, "out of range");
    contains(&parse_err("99999999999999999999").1, "out of range");
    contains(&parse_err("1e999").1, "out of range");
    assert_eq!(parse_err("'open").0, 0);
    contains(&parse_err("'open").1, "unterminated string");
    assert_eq!(parse_err("[a] == \"open").0, 7);
}

#[test]
fn root_and_this() {
    let root = root();
    assert_eq!(eval("#root"), root);
    assert_eq!(eval("#this"), root);
    assert_eq!(eval("#root.count"), json!(12));
    assert_eq!(eval("#this.count"), json!(12));
    assert_eq!(eval("#root[count]"), json!(12));
    assert_eq!(eval("#this['count']"), json!(12));
    assert_eq!(eval_with("#root", &json!("plain")), json!("plain"));
    assert_eq!(eval_with("#root", &Value::Null), Value::Null);
    assert_eq!(eval_with("#root[1]", &json!([10, 20])), json!(20));
    assert_eq!(eval_with("[0]", &json!([10, 20])), json!(10));
    assert_eq!(eval_with("#root + 1", &json!(41)), json!(42));
}

#[test]
fn properties_and_indexers() {
    assert_eq!(eval("[businessKey]"), json!("order-1001"));
    assert_eq!(eval("['businessKey']"), json!("order-1001"));
    assert_eq!(eval("[\"businessKey\"]"), json!("order-1001"));
    assert_eq!(eval("businessKey"), json!("order-1001"));
    assert_eq!(eval("order.customer.name"), json!("Ada"));
    assert_eq!(eval("[order].customer['name']"), json!("Ada"));
    assert_eq!(eval("[order][customer]['name']"), json!("Ada"));
    assert_eq!(eval("order.items[0].sku"), json!("A-1"));
    assert_eq!(eval("order.items[1]['qty']"), json!(1));
    // A bare name indexing an array is the root's property holding the index (SpEL).
    assert_eq!(eval("order.items[idx].sku"), json!("B-7"));
    assert_eq!(eval("order.items[[idx] - 1].qty"), json!(2));
    assert_eq!(
        eval("order.items[order.items.size() - 1].sku"),
        json!("B-7")
    );
    // x[expr]: the key is computed.
    assert_eq!(eval("order['cust' + 'omer'].name"), json!("Ada"));
    assert_eq!(eval("['order-id']"), json!(7));
    assert_eq!(eval("tags[1]"), json!("eu"));
    assert_eq!(eval("businessKey[0]"), json!("o"));
    assert_eq!(eval("'héllo'[1]"), json!("é"));
    assert_eq!(eval("{10, 20, 30}[2]"), json!(30));
    assert_eq!(eval("{a: {b: 5}}.a.b"), json!(5));
    // Missing keys are null, through every form.
    assert_eq!(eval("order.discount"), Value::Null);
    assert_eq!(eval("[nothing]"), Value::Null);
    assert_eq!(eval("nothing"), Value::Null);
    assert_eq!(eval("order['discount']"), Value::Null);
    // Property names after `.` may be words that are operators elsewhere.
    assert_eq!(
        eval_with("#root.and.or", &json!({ "and": { "or": 1 } })),
        json!(1)
    );

    contains(&eval_err("order.items[5]"), "index 5 is out of bounds");
    contains(&eval_err("order.items[-1]"), "index -1 is out of bounds");
    contains(&eval_err("businessKey[10]"), "out of bounds");
    contains(&eval_err("tags['vip']"), "index it with an integer");
    contains(&eval_err("tags[1.0]"), "index it with an integer");
    contains(&eval_err("order[1]"), "index it with a string key");
    contains(
        &eval_err("count.value"),
        "`count` is the number 12, which has no property `value`",
    );
    contains(&eval_err("count[0]"), "cannot be indexed");
    contains(&eval_err("tags.length"), "call length() for its length");
    // A bare name indexing an array must name an integer property of the root.
    contains(&eval_err("tags[businessKey]"), "index it with an integer");
    let message = eval_err_with("name", &json!("text"));
    contains(&message, "the root object is the string \"text\"");
}

#[test]
fn null_navigation_and_safe_navigation() {
    assert_eq!(eval("missing?.name"), Value::Null);
    assert_eq!(eval("missing?.[0]"), Value::Null);
    assert_eq!(eval("missing?.size()"), Value::Null);
    assert_eq!(eval("order?.customer?.name"), json!("Ada"));
    assert_eq!(eval("order.customer.email?.length()"), Value::Null);
    assert_eq!(eval("[order]?.['id']"), json!(1001));
    assert_eq!(eval("missing?.a?.b?.c"), Value::Null);

    let message = eval_err("missing.name");
    assert_eq!(
        message,
        "`missing` is null: cannot read its property `name` (use `?.` to get null instead)"
    );
    // `?.` guards its own step only (SpEL does the same).
    contains(&eval_err("missing?.name.first"), "`missing?.name` is null");
    contains(
        &eval_err("[missing][0]"),
        "`[missing]` is null: cannot index it",
    );
    contains(
        &eval_err("order.customer.email.length()"),
        "`order.customer.email` is null: cannot call length()",
    );
    contains(
        &eval_err_with("name", &Value::Null),
        "the root object is null",
    );
    contains(
        &eval_err_with("[0]", &Value::Null),
        "the root object is null",
    );
    // A bare name inside an indexer of an array is read from the root, which must be an object.
    let err = eval_err_with("#root[i]", &json!([1, 2]));
    contains(
        &err,
        "the root object is an array of 2 elements, which has no property `i`",
    );
}

#[test]
fn logical_operators_short_circuit_and_need_booleans() {
    assert_eq!(eval("true && true"), json!(true));
    assert_eq!(eval("true && false"), json!(false));
    assert_eq!(eval("false || true"), json!(true));
    assert_eq!(eval("false || false"), json!(false));
    assert_eq!(eval("!true"), json!(false));
    assert_eq!(eval("!!true"), json!(true));
    assert_eq!(eval("not false"), json!(true));
    assert_eq!(eval("![reduceInventoryResult]"), json!(false));
    assert_eq!(eval("true and false or true"), json!(true));
    assert_eq!(eval("true or false and false"), json!(true));
    assert_eq!(eval("(true or false) and false"), json!(false));
    // The right operand is not evaluated (nor type-checked) when the left decides.
    assert_eq!(eval("false && [missing].size() > 0"), json!(false));
    assert_eq!(eval("true || [missing].size() > 0"), json!(true));
    assert_eq!(eval("true or [count]"), json!(true));
    assert_eq!(eval("false and 1 / 0 == 1"), json!(false));

    assert_eq!(
        eval_err("[count] and true"),
        "`&&` needs a boolean, but `[count]` is the number 12"
    );
    contains(
        &eval_err("true && [a]"),
        "`&&` needs a boolean, but `[a]` is the string \"x\"",
    );
    contains(
        &eval_err("false || null"),
        "`||` needs a boolean, but `null` is null",
    );
    contains(&eval_err("![count]"), "`!` needs a boolean");
    contains(&eval_err("not 'true'"), "`!` needs a boolean");
}

#[test]
fn textual_operators_are_case_insensitive() {
    assert_eq!(eval("[count] gt 10 and [a] EQ 'x'"), json!(true));
    assert_eq!(eval("1 Lt 2 AND 2 LE 2 aNd 3 GE 3 and 4 GT 3"), json!(true));
    assert_eq!(eval("1 eq 1 OR 1 ne 1"), json!(true));
    assert_eq!(eval("NOT false"), json!(true));
    assert_eq!(eval("7 DIV 2"), json!(3));
    assert_eq!(eval("7 Mod 4"), json!(3));
    // Operator words are no names: quote them as keys.
    let (position, message) = parse_err("[and]");
    assert_eq!(position, 1);
    contains(&message, "found the operator `and`");
    assert_eq!(eval_with("['and']", &json!({ "and": 1 })), json!(1));
    assert_eq!(parse_err("or == 1").0, 0);
}

#[test]
fn precedence_follows_spel() {
    assert_eq!(eval("1 + 2 * 3"), json!(7));
    assert_eq!(eval("(1 + 2) * 3"), json!(9));
    assert_eq!(eval("10 - 4 - 3"), json!(3));
    assert_eq!(eval("100 / 10 / 5"), json!(2));
    assert_eq!(eval("2 * 3 % 4"), json!(2));
    assert_eq!(eval("2 + 3 == 5"), json!(true));
    assert_eq!(eval("-[count] + 2"), json!(-10));
    assert_eq!(eval("-2 * 3"), json!(-6));
    assert_eq!(eval("- -2"), json!(2));
    assert_eq!(eval("+3"), json!(3));
    assert_eq!(eval("-[order].items.size()"), json!(-2));
    // Unary binds tighter than comparison: `!x == y` is `(!x) == y`.
    assert_eq!(eval("!true == false"), json!(true));
    assert_eq!(eval("(1 < 2) == true"), json!(true));
    // One comparison per level, as in SpEL.
    let (position, message) = parse_err("[count] > 10 == true");
    assert_eq!(position, 13);
    contains(&message, "comparisons do not chain");
    contains(&parse_err("1 < [count] < 20").1, "comparisons do not chain");
    // Ternary and Elvis bind loosest and associate to the right.
    assert_eq!(eval("true ? 1 : 2 + 10"), json!(1));
    assert_eq!(eval("false || true ? 'y' : 'n'"), json!("y"));
    assert_eq!(eval("[missing] ?: [nothing] ?: 3"), json!(3));
}

#[test]
fn ternary_and_elvis() {
    assert_eq!(eval("[count] > 10 ? 'big' : 'small'"), json!("big"));
    assert_eq!(eval("[count] > 20 ? 'big' : 'small'"), json!("small"));
    assert_eq!(
        eval("[count] > 20 ? 'big' : [count] > 10 ? 'medium' : 'small'"),
        json!("medium")
    );
    // Only the chosen branch is evaluated.
    assert_eq!(eval("true ? 1 : 1 / 0"), json!(1));
    assert_eq!(eval("[missing] ?: 'default'"), json!("default"));
    assert_eq!(eval("[nothing] ?: 'default'"), json!("default"));
    // SpEL's Elvis takes the empty string as missing too.
    assert_eq!(eval("[empty] ?: 'default'"), json!("default"));
    assert_eq!(eval("[a] ?: 'default'"), json!("x"));
    assert_eq!(eval("0 ?: 1"), json!(0));
    assert_eq!(eval("false ?: true"), json!(false));
    assert_eq!(eval("{} ?: 1"), json!([]));
    assert_eq!(eval("[a] ?: 1 / 0"), json!("x"));

    contains(
        &eval_err("[count] ? 1 : 2"),
        "the ternary `?` needs a boolean, but `[count]` is the number 12",
    );
    contains(
        &eval_err("null ? 1 : 2"),
        "needs a boolean, but `null` is null",
    );
    contains(
        &parse_err("true ? 1").1,
        "expected `:` of the ternary, found the end of the expression",
    );
    contains(
        &parse_err("true ? 1 2").1,
        "expected `:` of the ternary, found number 2",
    );
    contains(&parse_err("1 : 2").1, "unexpected `:`");
}

#[test]
fn equality_compares_numbers_by_value_and_the_rest_structurally() {
    assert_eq!(eval("1 == 1.0"), json!(true));
    assert_eq!(eval("1.0 == 1"), json!(true));
    assert_eq!(eval("[price] == 2.5"), json!(true));
    assert_eq!(eval("0.1 + 0.2 == 0.3"), json!(false));
    assert_eq!(eval("'abc' == 'abc'"), json!(true));
    assert_eq!(eval("'abc' == 'ABC'"), json!(false));
    assert_eq!(eval("true == true"), json!(true));
    assert_eq!(eval("null == null"), json!(true));
    assert_eq!(eval("[missing] == null"), json!(true));
    assert_eq!(eval("[nothing] == null"), json!(true));
    assert_eq!(eval("[a] == null"), json!(false));
    // Mismatched types are simply not equal.
    assert_eq!(eval("1 == '1'"), json!(false));
    assert_eq!(eval("1 != '1'"), json!(true));
    assert_eq!(eval("true == 'true'"), json!(false));
    assert_eq!(eval("0 == null"), json!(false));
    assert_eq!(eval("0 == false"), json!(false));
    assert_eq!(eval("{} == {:}"), json!(false));
    // Arrays and objects element by element, numbers inside by value.
    assert_eq!(eval("{1, 2} == {1.0, 2}"), json!(true));
    assert_eq!(eval("{1, 2} == {2, 1}"), json!(false));
    assert_eq!(eval("{1, 2} == {1, 2, 3}"), json!(false));
    assert_eq!(
        eval("[order][customer] == {name: 'Ada', email: null}"),
        json!(true)
    );
    assert_eq!(eval("[order][customer] == {name: 'Ada'}"), json!(false));
    assert_eq!(eval("[tags] == {'vip', 'eu'}"), json!(true));
    // Exact across int and float: 2^53 + 1 is not the double 2^53.
    assert_eq!(eval("9007199254740993 == 9007199254740992.0"), json!(false));
    assert_eq!(eval("9007199254740992 == 9007199254740992.0"), json!(true));
    assert_eq!(
        eval("9223372036854775807 == 9223372036854775808.0"),
        json!(false)
    );
    // Textual forms.
    assert_eq!(eval("[a] eq 'x'"), json!(true));
    assert_eq!(eval("[a] ne 'x'"), json!(false));
    // Integers above i64 in the root (serde_json keeps them as u64) compare by value.
    let big = json!({ "n": u64::MAX });
    assert_eq!(
        eval_with("[n] == 18446744073709551615.0", &big),
        json!(true)
    );
    assert_eq!(eval_with("[n] > 9223372036854775807", &big), json!(true));
}

#[test]
fn ordering_needs_two_numbers_or_two_strings() {
    assert_eq!(eval("1 < 2"), json!(true));
    assert_eq!(eval("2 <= 2"), json!(true));
    assert_eq!(eval("3 > 2.5"), json!(true));
    assert_eq!(eval("[count] >= 12.0"), json!(true));
    assert_eq!(eval("[count] > 12.0"), json!(false));
    assert_eq!(eval("-1.5 < -1"), json!(true));
    assert_eq!(eval("9007199254740993 > 9007199254740992.0"), json!(true));
    assert_eq!(
        eval("-9223372036854775808 < -9223372036854775807.0"),
        json!(false)
    );
    assert_eq!(eval("1 < 1e300"), json!(true));
    assert_eq!(eval("'apple' < 'banana'"), json!(true));
    assert_eq!(eval("'b' > 'abc'"), json!(true));
    assert_eq!(eval("'Z' < 'a'"), json!(true));
    assert_eq!(eval("'' <= ''"), json!(true));
    assert_eq!(eval("[businessKey] ge 'order-'"), json!(true));

    assert_eq!(
        eval_err("[missing] > 1"),
        "`>` orders two numbers or two strings, but `[missing]` is null and `1` is the number 1"
    );
    contains(
        &eval_err("'10' > 9"),
        "`'10'` is the string \"10\" and `9` is the number 9",
    );
    contains(
        &eval_err("true < false"),
        "`<` orders two numbers or two strings",
    );
    contains(
        &eval_err("{1} <= {2}"),
        "`<=` orders two numbers or two strings",
    );
}

#[test]
fn integer_arithmetic_is_checked_and_truncates_like_java() {
    assert_eq!(eval("2 + 3"), json!(5));
    assert_eq!(eval("2 - 3"), json!(-1));
    assert_eq!(eval("6 * 7"), json!(42));
    assert_eq!(eval("7 / 2"), json!(3));
    assert_eq!(eval("-7 / 2"), json!(-3));
    assert_eq!(eval("7 / -2"), json!(-3));
    assert_eq!(eval("7 % 3"), json!(1));
    assert_eq!(eval("-7 % 3"), json!(-1));
    assert_eq!(eval("7 % -3"), json!(1));
    assert_eq!(eval("7 div 2"), json!(3));
    assert_eq!(eval("7 mod 4"), json!(3));
    assert_eq!(eval("[nrOfInstances] - [nrOfCompletedInstances]"), json!(0));
    assert_eq!(eval("-9223372036854775808 % -1"), json!(0));
    assert!(eval("6 / 3").is_i64());

    assert_eq!(
        eval_err("9223372036854775807 + 1"),
        "integer overflow: 9223372036854775807 + 1"
    );
    contains(&eval_err("-9223372036854775808 - 1"), "integer overflow");
    contains(&eval_err("4611686018427387904 * 2"), "integer overflow");
    contains(&eval_err("-9223372036854775808 / -1"), "integer overflow");
    contains(&eval_err("-(-9223372036854775808)"), "integer overflow");
    assert_eq!(eval_err("1 / 0"), "division by zero: 1 / 0");
    assert_eq!(eval_err("[count] % 0"), "modulo by zero: 12 % 0");
    contains(
        &eval_err("true + 1"),
        "`+` needs numbers (or a string, to concatenate), got the boolean true and the number 1",
    );
    contains(
        &eval_err("[tags] - 1"),
        "`-` needs numbers, got an array of 2 elements",
    );
    contains(
        &eval_err("null * 2"),
        "`*` needs numbers, got null and the number 2",
    );
    contains(
        &eval_err("-[a]"),
        "unary `-` needs a number, but `[a]` is the string \"x\"",
    );
    contains(&eval_err("+[a]"), "unary `+` needs a number");
}

#[test]
fn decimal_arithmetic() {
    assert_eq!(eval("7 / 2.0"), json!(3.5));
    assert_eq!(eval("[price] * 4"), json!(10.0));
    assert_eq!(eval("[count] + 0.5"), json!(12.5));
    assert_eq!(eval("1.5 + 1.5"), json!(3.0));
    assert!(eval("1.5 + 1.5").is_f64());
    assert_eq!(eval("7.5 % 2"), json!(1.5));
    assert_eq!(eval("-7.5 % 2"), json!(-1.5));
    assert_eq!(eval("-[price]"), json!(-2.5));
    assert_eq!(eval("0.5 - 1"), json!(-0.5));

    assert_eq!(eval_err("1.0 / 0"), "division by zero: 1 / 0");
    contains(&eval_err("1 / 0.0"), "division by zero");
    contains(&eval_err("1.5 % 0"), "modulo by zero");
    contains(
        &eval_err("1e308 * 10"),
        "out of the range of a decimal number",
    );
    contains(
        &eval_err("-1e308 - 1e308"),
        "out of the range of a decimal number",
    );
}

#[test]
fn plus_with_a_string_concatenates() {
    assert_eq!(eval("'order-' + [orderId]"), json!("order-1001"));
    assert_eq!(eval("[orderId] + '-x'"), json!("1001-x"));
    assert_eq!(eval("'a' + 'b'"), json!("ab"));
    assert_eq!(eval("'n=' + null"), json!("n=null"));
    assert_eq!(eval("'ok=' + true"), json!("ok=true"));
    assert_eq!(eval("'p=' + [price]"), json!("p=2.5"));
    assert_eq!(eval("'f=' + 1.0"), json!("f=1.0"));
    assert_eq!(eval("'tags: ' + [tags]"), json!("tags: [\"vip\",\"eu\"]"));
    assert_eq!(eval("'m=' + {a: 'b'}"), json!("m={\"a\":\"b\"}"));
    // Left to right: numbers add before the string appears.
    assert_eq!(eval("1 + 2 + '3'"), json!("33"));
    assert_eq!(eval("'1' + 2 + 3"), json!("123"));
    contains(&eval_err("'ab' * 2"), "`*` needs numbers");
    contains(&eval_err("'ab' - 'b'"), "`-` needs numbers");
}

#[test]
fn methods() {
    assert_eq!(eval("[loopResult].size()"), json!(3));
    assert_eq!(eval("[loopResult].size() > 2"), json!(true));
    assert_eq!(eval("[order].size()"), json!(3));
    assert_eq!(eval("[businessKey].size()"), json!(10));
    assert_eq!(eval("[businessKey].length()"), json!(10));
    assert_eq!(eval("'日本語'.length()"), json!(3));
    assert_eq!(eval("size()"), json!(16));
    assert_eq!(eval("#root.size()"), json!(16));
    assert_eq!(eval("[tags].isEmpty()"), json!(false));
    assert_eq!(eval("{}.isEmpty()"), json!(true));
    assert_eq!(eval("{:}.isEmpty()"), json!(true));
    assert_eq!(eval("[empty].isEmpty()"), json!(true));
    assert_eq!(eval("[tags].contains('vip')"), json!(true));
    assert_eq!(eval("[tags].contains('us')"), json!(false));
    assert_eq!(eval("{1, 2, 3}.contains([nrOfInstances])"), json!(true));
    assert_eq!(eval("{1, 2, 3}.contains(3.0)"), json!(true));
    assert_eq!(eval("{1, 2, 3}.contains('3')"), json!(false));
    assert_eq!(eval("[businessKey].contains('-10')"), json!(true));
    assert_eq!(eval("[order].contains('items')"), json!(true));
    assert_eq!(eval("[order].containsKey('total')"), json!(false));
    assert_eq!(eval("[order].containsKey('id')"), json!(true));
    assert_eq!(eval("[order].get('id')"), json!(1001));
    assert_eq!(eval("[order].get('total')"), Value::Null);
    assert_eq!(eval("[order].get('customer').name"), json!("Ada"));
    assert_eq!(eval("[tags].get(0)"), json!("vip"));
    assert_eq!(eval("{5, 6}.get(1)"), json!(6));
    assert_eq!(eval("{a: {b: 1}}.get('a')"), json!({ "b": 1 }));
    assert_eq!(eval("[orderId].equals(1001.0)"), json!(true));
    assert_eq!(eval("[a].equals('y')"), json!(false));
    assert_eq!(eval("[missing]?.equals(null)"), Value::Null);
    assert_eq!(eval("[orderId].toString()"), json!("1001"));
    assert_eq!(eval("[a].toString()"), json!("x"));
    assert_eq!(eval("[price].toString()"), json!("2.5"));
    assert_eq!(eval("true.toString()"), json!("true"));
    assert_eq!(eval("[tags].toString()"), json!("[\"vip\",\"eu\"]"));
    assert_eq!(eval("[businessKey].startsWith('order-')"), json!(true));
    assert_eq!(eval("[businessKey].startsWith('x')"), json!(false));
    assert_eq!(eval("[businessKey].endsWith('1001')"), json!(true));
    assert_eq!(eval("[a].toUpperCase()"), json!("X"));
    assert_eq!(eval("'MiXeD'.toLowerCase()"), json!("mixed"));
    assert_eq!(eval("'straße'.toUpperCase()"), json!("STRASSE"));
    // Arguments are evaluated against the root.
    assert_eq!(eval("[tags].get([idx] - 1)"), json!("vip"));
    assert_eq!(
        eval("[order].get('cust' + 'omer').get('name').toUpperCase()"),
        json!("ADA")
    );
    // Integer literals followed by a method call are not decimals.
    assert_eq!(eval("1.toString()"), json!("1"));
}

#[test]
fn method_errors() {
    let message = eval_err("[tags].substring(1)");
    assert_eq!(
        message,
        "unknown method `substring()`; supported: size(), length(), isEmpty(), contains(x), \
         containsKey(key), get(key), equals(x), toString(), startsWith(s), endsWith(s), \
         toUpperCase(), toLowerCase()"
    );
    // Method names are case-sensitive, as in Java.
    contains(&eval_err("[tags].Size()"), "unknown method `Size()`");
    assert_eq!(
        eval_err("[count].size()"),
        "size() does not apply to `[count]`, which is the number 12"
    );
    contains(
        &eval_err("[tags].length()"),
        "length() does not apply to `[tags]`, which is an array of 2 elements",
    );
    contains(
        &eval_err("[tags].get(5)"),
        "index 5 is out of bounds for `[tags]` (an array of length 2)",
    );
    contains(
        &eval_err("[tags].get('a')"),
        "get() on an array needs an integer index, not the string \"a\"",
    );
    contains(
        &eval_err("[order].get(1)"),
        "get() needs a string argument, not the number 1",
    );
    contains(
        &eval_err("[order].containsKey(1)"),
        "containsKey() needs a string argument",
    );
    contains(
        &eval_err("[a].startsWith(1)"),
        "startsWith() needs a string argument",
    );
    contains(
        &eval_err("[a].contains(null)"),
        "contains() needs a string argument, not null",
    );
    assert_eq!(
        eval_err("[tags].contains()"),
        "contains() takes 1 argument, got 0"
    );
    assert_eq!(
        eval_err("[tags].size(1)"),
        "size() takes 0 arguments, got 1"
    );
    contains(
        &eval_err("[missing].size()"),
        "`[missing]` is null: cannot call size() on it",
    );
    contains(
        &eval_err("[tags].toUpperCase()"),
        "toUpperCase() does not apply",
    );
    // An argument's error surfaces as it is.
    contains(&eval_err("[tags].get(1 / 0)"), "division by zero");
    contains(
        &parse_err("[tags].get(1,)").1,
        "expected a value, found `)`",
    );
    contains(
        &parse_err("[tags].get(1").1,
        "expected `,` or `)`, found the end of the expression",
    );
}

#[test]
fn inline_lists_and_maps() {
    assert_eq!(eval("{1, 2, 'x'}"), json!([1, 2, "x"]));
    assert_eq!(eval("{}"), json!([]));
    assert_eq!(eval("{:}"), json!({}));
    assert_eq!(eval("{a: 1, 'b': 2}"), json!({ "a": 1, "b": 2 }));
    assert_eq!(eval("{\"c\": 3}"), json!({ "c": 3 }));
    assert_eq!(
        eval("{id: [orderId], total: [count] * [price]}"),
        json!({ "id": 1001, "total": 30.0 })
    );
    assert_eq!(eval("{{1, 2}, {}}"), json!([[1, 2], []]));
    assert_eq!(eval("{1: 'one'}"), json!({ "1": "one" }));
    assert_eq!(eval("{1.5: 'x'}"), json!({ "1.5": "x" }));
    assert_eq!(eval("{'k' + 1: true}"), json!({ "k1": true }));
    assert_eq!(eval("{a: 1, a: 2}"), json!({ "a": 2 }));
    assert_eq!(eval("{true: 1}"), json!({ "true": 1 }));
    assert_eq!(eval("{null: 1}"), json!({ "null": 1 }));
    // A name as a key is the key itself, not the root's property of that name.
    assert_eq!(eval("{count: count}"), json!({ "count": 12 }));
    assert_eq!(
        eval("{x: {y: {z: null}}}"),
        json!({ "x": { "y": { "z": null } } })
    );
    assert_eq!(eval("{[a] == 'x' ? 1 : 2}"), json!([1]));
    assert_eq!(eval("{[missing] ?: 0}"), json!([0]));
    assert_eq!(eval("{[order].id, tags[0]}"), json!([1001, "vip"]));

    contains(
        &eval_err("{[missing]: 1}"),
        "an inline map key must be a string or a number, but `[missing]` is null",
    );
    contains(
        &eval_err("{{1}: 1}"),
        "an inline map key must be a string or a number",
    );
    contains(
        &parse_err("{1, 2").1,
        "expected `,` or `}`, found the end of the expression",
    );
    contains(
        &parse_err("{a: 1, 2}").1,
        "expected `:` after the map key, found `}`",
    );
    contains(&parse_err("{1, a: 2}").1, "expected `,` or `}`, found `:`");
    contains(&parse_err("{a:}").1, "expected a value, found `}`");
}

#[test]
fn conditions_must_be_booleans() {
    let context = root();
    assert!(parse("[count] > 10").evaluate_condition(&context).unwrap());
    assert!(!parse("[count] > 100").evaluate_condition(&context).unwrap());
    assert!(
        parse("[reduceInventoryResult]")
            .evaluate_condition(&context)
            .unwrap()
    );
    assert_eq!(
        parse("[count]").evaluate_condition(&context),
        Err(ExprError::Eval {
            expression: "[count]".into(),
            message: "a condition must evaluate to a boolean, but this gave the number 12".into(),
        })
    );
    let message = |text: &str| match parse(text).evaluate_condition(&context) {
        Err(ExprError::Eval { message, .. }) => message,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(
        message("[missing]"),
        "a condition must evaluate to a boolean, but this gave null"
    );
    contains(&message("[a]"), "but this gave the string \"x\"");
    contains(&message("[tags]"), "but this gave an array of 2 elements");
    contains(&message("[order]"), "but this gave an object with 3 keys");
    contains(&message("'true'"), "but this gave the string \"true\"");
    // Evaluation errors come first, unchanged.
    contains(&message("missing.x == 1"), "`missing` is null");
    let long = format!("'{}'", "y".repeat(100));
    contains(
        &message(&long),
        &format!("the string \"{}\"…", "y".repeat(40)),
    );
}

#[test]
fn parse_errors_give_the_position() {
    assert_eq!(parse_err(""), (0, "the expression is empty".into()));
    assert_eq!(parse_err("   "), (0, "the expression is empty".into()));
    assert_eq!(
        parse_err("[count] > "),
        (
            10,
            "expected a value, found the end of the expression".into()
        )
    );
    assert_eq!(
        parse_err("1 +* 2"),
        (3, "expected a value, found `*`".into())
    );
    assert_eq!(
        parse_err("(1 + 2"),
        (6, "expected `)`, found the end of the expression".into())
    );
    assert_eq!(
        parse_err("[a"),
        (2, "expected `]`, found the end of the expression".into())
    );
    assert_eq!(parse_err("[]"), (1, "expected a value, found `]`".into()));
    assert_eq!(
        parse_err("1 2"),
        (
            2,
            "unexpected number 2 after the end of the expression".into()
        )
    );
    assert_eq!(parse_err("a.").0, 2);
    contains(&parse_err("a.").1, "expected a property or method name");
    assert_eq!(
        parse_err("a.1").1,
        "expected a property or method name, found number 1"
    );
    assert_eq!(parse_err("[a] ~ 1"), (4, "unexpected character '~'".into()));
    // Positions are byte offsets.
    assert_eq!(parse_err("'é' ~").0, 5);
    assert_eq!(parse_err("$.[businessKey]").0, 2);
    let error = Expression::parse("1 +").unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot parse expression `1 +` at byte 3: expected a value, found the end of the expression"
    );
    let error = parse("missing.name").evaluate(&root()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot evaluate expression `missing.name`: `missing` is null: cannot read its property \
         `name` (use `?.` to get null instead)"
    );
}

#[test]
fn unsupported_spel_features_are_parse_errors() {
    let cases = [
        (
            "#order",
            "variables and functions (#order) are not supported: only #root and #this",
        ),
        (
            "#max(1, 2)",
            "variables and functions (#max) are not supported",
        ),
        ("#", "expected #root or #this after #"),
        ("#ROOT", "variables and functions (#ROOT) are not supported"),
        (
            "T(java.lang.Math).max(1, 2)",
            "type references (T(...)) are not supported",
        ),
        (
            "new java.util.Date()",
            "constructors (new ...) are not supported",
        ),
        (
            "@orderService.find(1)",
            "bean references (@name) are not supported",
        ),
        ("&orderService", "bean references (&name) are not supported"),
        (
            "[a] & [b]",
            "bean references (&name) are not supported; logical and is && or and",
        ),
        (
            "[a] | [b]",
            "a single | is not an operator; logical or is || or or",
        ),
        (
            "[count] = 1",
            "assignment (=) is not supported; compare with ==",
        ),
        (
            "[count]++",
            "increment and decrement (++) are not supported",
        ),
        (
            "--[count]",
            "increment and decrement (--) are not supported",
        ),
        (
            "2 ^ 10",
            "the power operator (^) and selection (.^[...]) are not supported",
        ),
        (
            "[a] instanceof T(String)",
            "the instanceof operator is not supported",
        ),
        (
            "[a] matches '[a-z]+'",
            "the matches operator is not supported",
        ),
        (
            "[count] between {1, 20}",
            "the between operator is not supported",
        ),
        (
            "[tags].?[#this == 'vip']",
            "collection selection and projection",
        ),
        ("[loopResult].![ok]", "collection selection and projection"),
        ("[tags].^[true]", "selection (.^[...]) are not supported"),
        ("[tags].$[true]", "collection selection and projection"),
        ("#{[count]}", "templates (#{...}) are not supported"),
        ("10L", "number suffixes and hexadecimal literals"),
        ("1.5d", "number suffixes and hexadecimal literals"),
        ("0xFF", "number suffixes and hexadecimal literals"),
        ("1 < [count] < 20", "comparisons do not chain"),
    ];
    for (text, expected) in cases {
        contains(&parse_err(text).1, expected);
    }
    // Those that parse fail when evaluated, with a message that says why.
    contains(
        &eval_err("[businessKey].substring(0, 5)"),
        "unknown method `substring()`",
    );
    contains(
        &eval_err("[tags].length"),
        "has no property `length`; call length()",
    );
    contains(
        &eval_err("[missing] < 1"),
        "orders two numbers or two strings",
    );
    contains(&eval_err("'true' && true"), "`&&` needs a boolean");
    contains(&eval_err("'ab' * 2"), "`*` needs numbers");
    contains(&eval_err("1.0 / 0"), "division by zero");
}

#[test]
fn overlong_expressions_are_refused() {
    let at_limit = format!("'{}'", "a".repeat(MAX_EXPRESSION_LEN - 2));
    assert_eq!(at_limit.len(), MAX_EXPRESSION_LEN);
    assert_eq!(eval(&at_limit), json!("a".repeat(MAX_EXPRESSION_LEN - 2)));
    let over = format!("'{}'", "a".repeat(MAX_EXPRESSION_LEN - 1));
    match Expression::parse(&over) {
        Err(ExprError::Parse {
            expression,
            position,
            message,
        }) => {
            assert_eq!(position, MAX_EXPRESSION_LEN);
            assert_eq!(
                message,
                "the expression is 4097 bytes long; the limit is 4096"
            );
            // The error keeps only the start of the text.
            assert_eq!(expression, format!("'{}…", "a".repeat(63)));
        }
        other => panic!("{other:?}"),
    }
    assert!(Expression::parse(&"é".repeat(5000)).is_err());
}

#[test]
fn nesting_deeper_than_the_limit_is_refused() {
    assert_eq!(MAX_NESTING, 64);
    let nest = |open: &str, inner: &str, close: &str, depth: usize| {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    };
    // (opening, innermost, closing, levels each repetition adds)
    let kinds = [
        ("(", "1", ")", 1),
        ("!", "true", "", 1),
        ("- ", "1", "", 1),
        ("{", "1", "}", 1),
        ("{0}.get(", "0", ")", 1),
        ("true ? ", "1", " : 0", 1),
        ("null ?: ", "1", "", 1),
        ("{0}[", "0", "]", 1),
        ("{0}[{", "0", "}.get(0)]", 2),
        ("(1 + -", "1", ")", 2),
    ];
    for (open, inner, close, levels) in kinds {
        let deepest = nest(open, inner, close, MAX_NESTING / levels);
        // The engine may parse and evaluate on small threads: the deepest accepted expression
        // fits in 1 MiB of stack even unoptimised (about half of that in fact).
        let text = deepest.clone();
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                parse(&text)
                    .evaluate(&root())
                    .unwrap_or_else(|e| panic!("{text}: {e}"))
            })
            .unwrap()
            .join()
            .unwrap();
        let deeper = nest(open, inner, close, MAX_NESTING / levels + 1);
        let message = parse_err(&deeper).1;
        assert_eq!(
            message, "the expression nests deeper than 64 levels",
            "{deeper}"
        );
    }
    assert_eq!(eval(&nest("(", "1", ")", MAX_NESTING)), json!(1));
    assert_eq!(eval(&nest("!", "true", "", MAX_NESTING)), json!(true));
    assert_eq!(eval(&nest("- ", "1", "", MAX_NESTING)), json!(1));
    // Long hostile nesting is refused without exhausting the stack.
    parse_err(&nest("(", "1", ")", 2000));
    parse_err(&nest("[", "0", "]", 2000));
    parse_err(&"!".repeat(4000));
    parse_err(&"{".repeat(4096));
}

#[test]
fn flat_chains_are_limited_only_by_length() {
    let terms = (MAX_EXPRESSION_LEN - 1) / 4;
    let sum = vec!["1"; terms].join(" + ");
    assert_eq!(eval(&sum), json!(terms));
    let conjunction = vec!["true"; 500].join(" && ");
    assert_eq!(eval(&conjunction), json!(true));
    let disjunction = vec!["false"; 400].join(" or ");
    assert_eq!(eval(&disjunction), json!(false));
    let path = format!("#root{}", "?.a".repeat(1300));
    assert_eq!(eval_with(&path, &json!({})), Value::Null);
    let calls = format!("'x'{}", ".toString()".repeat(350));
    assert_eq!(eval(&calls), json!("x"));
    let list = format!("{{{}}}.size()", vec!["1"; 1000].join(","));
    assert_eq!(eval(&list), json!(1000));
}

#[test]
fn expression_api() {
    let expression: Expression = "[count] > 10".parse().unwrap();
    assert_eq!(expression.source(), "[count] > 10");
    assert_eq!(expression.to_string(), "[count] > 10");
    assert_eq!(format!("{expression}"), "[count] > 10");
    let clone = expression.clone();
    assert_eq!(clone, expression);
    assert_ne!(parse("[count] > 11"), expression);
    assert_eq!(parse("[count] > 10"), expression);
    assert!("[count] >".parse::<Expression>().is_err());
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    shareable(&expression);
    shareable(&ExprError::Eval {
        expression: String::new(),
        message: String::new(),
    });
    // Evaluation leaves the expression and the root as they were, and repeats.
    let context = root();
    assert_eq!(expression.evaluate(&context), expression.evaluate(&context));
    assert_eq!(context, root());
}

/// A small deterministic generator (no proptest in this workspace): token soup from the
/// language's own pieces, so that most inputs get past the lexer.
#[test]
fn generated_input_never_panics() {
    const PIECES: [&str; 64] = [
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        ".",
        "?.",
        "?",
        ":",
        "?:",
        ",",
        "'",
        "\"",
        "#root",
        "#this",
        "#x",
        "a",
        "order",
        "items",
        "tags",
        "count",
        "size()",
        "get(",
        "contains(",
        "toString()",
        "1",
        "0",
        "-1",
        "9223372036854775807",
        "1.5",
        "1e308",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        ">=",
        "!",
        "&&",
        "||",
        "and",
        "not",
        "true",
        "null",
        "'x'",
        "{:}",
        " ",
        "é",
        "$",
        "^",
        "@",
        "=",
        "&",
        "|",
        "missing",
        "[idx]",
        "customer",
        "name",
        "length()",
        "div",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let context = root();
    let mut parsed = 0;
    for _ in 0..20_000 {
        let len = next() % 24 + 1;
        let mut text = String::new();
        for _ in 0..len {
            let piece = PIECES.get((next() % PIECES.len() as u64) as usize).unwrap();
            text.push_str(piece);
        }
        if let Ok(expression) = Expression::parse(&text) {
            parsed += 1;
            assert_eq!(expression.to_string(), text);
            assert_eq!(Expression::parse(&text).unwrap(), expression);
            let first = expression.evaluate(&context);
            assert_eq!(first, expression.evaluate(&context));
            let _ = expression.evaluate_condition(&context);
            let _ = expression.evaluate(&Value::Null);
            let _ = expression.evaluate(&json!([1, "a", null]));
        }
    }
    assert!(parsed > 500, "only {parsed} generated expressions parsed");
}

/// Every example in docs/guide/saga-expressions.md: each table with an `Expression` column and a
/// `Result` or `Error` column, against the guide's example root or the row's `Root`.
#[test]
fn guide_examples() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/guide/saga-expressions.md");
    let guide = std::fs::read_to_string(path).expect("docs/guide/saga-expressions.md");
    let lines: Vec<&str> = guide.lines().collect();

    let start = lines
        .iter()
        .position(|line| *line == "## The example root")
        .expect("an example root section");
    let json_start = start
        + lines[start..]
            .iter()
            .position(|line| *line == "```json")
            .expect("a json block");
    let json_end = json_start
        + lines[json_start..]
            .iter()
            .position(|line| *line == "```")
            .expect("the end of the json block");
    let example_root: Value =
        serde_json::from_str(&lines[json_start + 1..json_end].join("\n")).expect("example root");
    assert_eq!(
        example_root,
        root(),
        "the guide's example root and root() differ"
    );

    let mut checked = 0;
    let mut i = 0;
    while i + 1 < lines.len() {
        let is_table = lines[i].starts_with('|') && lines[i + 1].starts_with("|---");
        if !is_table {
            i += 1;
            continue;
        }
        let header = cells(lines[i]);
        let column = |name: &str| header.iter().position(|cell| cell == name);
        let (Some(expr_col), Some(result_col)) =
            (column("Expression"), column("Result").or(column("Error")))
        else {
            i += 2;
            continue;
        };
        let root_col = column("Root");
        i += 2;
        while i < lines.len() && lines[i].starts_with('|') {
            let row = cells(lines[i]);
            let text =
                code(&row[expr_col]).unwrap_or_else(|| panic!("no expression: {}", lines[i]));
            let row_root = match root_col.and_then(|c| code(&row[c])) {
                Some(json) => serde_json::from_str(&json).expect("a JSON root"),
                None => example_root.clone(),
            };
            let expected = &row[result_col];
            let outcome = Expression::parse(&text).and_then(|e| e.evaluate(&row_root));
            if expected.starts_with('`') {
                let value: Value = serde_json::from_str(&code(expected).unwrap())
                    .unwrap_or_else(|e| panic!("{expected}: {e}"));
                assert_eq!(outcome, Ok(value), "guide example {text}");
            } else if expected.starts_with("Parse error") {
                assert!(
                    matches!(outcome, Err(ExprError::Parse { .. })),
                    "guide example {text}: {outcome:?}"
                );
            } else if expected.starts_with("Eval error") {
                assert!(
                    matches!(outcome, Err(ExprError::Eval { .. })),
                    "guide example {text}: {outcome:?}"
                );
            } else {
                panic!("unrecognised result cell {expected:?} for {text}");
            }
            checked += 1;
            i += 1;
        }
    }
    assert!(checked >= 150, "only {checked} guide examples found");
}

/// The cells of a Markdown table row; `\|` is a `|` inside a cell.
fn cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => {
                cells.push(cell.trim().to_string());
                cell.clear();
            }
            c => cell.push(c),
        }
    }
    // The text before the first `|` and after the last one are not cells.
    cells.remove(0);
    cells
}

/// The first code span of a cell.
fn code(cell: &str) -> Option<String> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(cell[start..start + len].to_string())
}
