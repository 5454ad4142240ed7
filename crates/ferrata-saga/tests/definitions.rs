//! Loading, validating, writing and building state machine definitions: the JSON machines in
//! `tests/machines/` (also run by the engine tests), every validation error, and hostile input.

use ferrata_saga::error::DefinitionError;
use ferrata_saga::json::{MAX_DEFINITION_BYTES, parse_state_machine, to_json, to_json_string};
use ferrata_saga::model::{
    ExecutionStatus, Loop, RecoverStrategy, Retry, State, StateKind, StateMachine, Task,
};
use ferrata_saga::validate::MAX_STATES;
use serde_json::{Value, json};

const MACHINES: [&str; 8] = [
    "purchase",
    "retry",
    "sub_machine_parent",
    "sub_machine_child",
    "loop",
    "script",
    "forward",
    "designer",
];

fn source(name: &str) -> String {
    let path = format!("{}/tests/machines/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(name: &str) -> StateMachine {
    parse_state_machine(&source(name)).unwrap_or_else(|e| panic!("{name}.json: {e}"))
}

fn task<'m>(m: &'m StateMachine, state: &str) -> &'m Task {
    m.state(state)
        .and_then(|s| s.kind.task())
        .unwrap_or_else(|| panic!("{state} is not a task"))
}

fn service<'m>(m: &'m StateMachine, state: &str) -> (&'m str, &'m str) {
    match &m.states[state].kind {
        StateKind::ServiceTask(s) => (&s.service_name, &s.service_method),
        other => panic!("{state} is a {}", other.type_name()),
    }
}

/// `IndexMap` equality ignores order; `States` and `Status` order is part of the definition.
fn assert_same_order(a: &StateMachine, b: &StateMachine) {
    assert!(
        a.states.keys().eq(b.states.keys()),
        "{}: state order",
        a.name
    );
    for (name, state) in &a.states {
        if let (Some(x), Some(y)) = (state.kind.task(), b.states[name].kind.task()) {
            assert!(x.status.keys().eq(y.status.keys()), "{name}: Status order");
            assert!(x.output.keys().eq(y.output.keys()), "{name}: Output order");
        }
    }
}

/// The purchase machine with `edit` applied to its JSON, parsed.
fn purchase_with(edit: impl FnOnce(&mut Value)) -> Result<StateMachine, DefinitionError> {
    let mut doc: Value = serde_json::from_str(&source("purchase")).expect("purchase.json is JSON");
    edit(&mut doc);
    parse_state_machine(&doc.to_string())
}

fn minimal(states: Value) -> String {
    json!({"Name": "m", "StartState": "A", "States": states}).to_string()
}

// ---- every machine ----------------------------------------------------------------------------

#[test]
fn every_machine_loads_validates_and_round_trips() {
    for name in MACHINES {
        let machine = load(name);
        machine.validate().unwrap();
        let written = to_json_string(&machine);
        let again = parse_state_machine(&written).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again, machine, "{name}: to_json_string round trip");
        assert_same_order(&again, &machine);
        // The Value form holds the same document (keys sorted) and also reads back.
        let value = to_json(&machine);
        assert_eq!(
            value,
            serde_json::from_str::<Value>(&written).unwrap(),
            "{name}"
        );
        assert_eq!(value["Type"], "STATE_LANG");
        let from_value = parse_state_machine(&value.to_string()).unwrap();
        assert_eq!(from_value.states.len(), machine.states.len(), "{name}");
        for (state, s) in &machine.states {
            assert_eq!(from_value.states[state], *s, "{name}.{state} via Value");
        }
    }
}

#[test]
fn written_json_keeps_document_order_and_seata_names() {
    let machine = load("purchase");
    let written = to_json_string(&machine);
    let order: Vec<&str> = machine.states.keys().map(String::as_str).collect();
    assert_eq!(
        order,
        [
            "ReduceInventory",
            "ChoiceState",
            "ReduceBalance",
            "CompensateReduceInventory",
            "CompensateReduceBalance",
            "CompensationTrigger",
            "Succeed",
            "Fail"
        ]
    );
    let positions: Vec<usize> = order
        .iter()
        .map(|s| written.find(&format!("\"{s}\": {{")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{written}");
    let first = written.find("\"#root == true\"").unwrap();
    let exception = written.find("\"$Exception{java.lang.Throwable}\"").unwrap();
    assert!(first < exception);
    for name in [
        "\"Name\"",
        "\"StartState\"",
        "\"RecoverStrategy\"",
        "\"ServiceName\"",
        "\"ServiceMethod\"",
        "\"CompensateState\"",
        "\"IsForCompensation\"",
        "\"IsForUpdate\"",
        "\"Choices\"",
        "\"Expression\"",
        "\"Default\"",
        "\"Catch\"",
        "\"Exceptions\"",
        "\"ErrorCode\"",
        "\"Message\"",
    ] {
        assert!(written.contains(name), "{name} missing in {written}");
    }
}

// ---- specific machines ------------------------------------------------------------------------

#[test]
fn purchase() {
    let m = load("purchase");
    assert_eq!(m.name, "purchase");
    assert_eq!(m.version, "1.0.0");
    assert_eq!(m.start_state, "ReduceInventory");
    assert_eq!(m.recover_strategy, RecoverStrategy::Compensate);
    assert!(m.persist);
    assert!(!m.retry_persist_mode_update && !m.compensate_persist_mode_update);
    assert_eq!(
        m.states["ReduceInventory"].comment.as_deref(),
        Some("take count items out of stock")
    );

    assert_eq!(
        service(&m, "ReduceInventory"),
        ("inventoryAction", "reduce")
    );
    let reduce = task(&m, "ReduceInventory");
    assert_eq!(
        reduce.input,
        vec![json!("$.[businessKey]"), json!("$.[count]")]
    );
    assert_eq!(reduce.output["reduceInventoryResult"], json!("$.#root"));
    let status: Vec<(&str, ExecutionStatus)> = reduce
        .status
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        status,
        [
            ("#root == true", ExecutionStatus::Succeed),
            ("#root == false", ExecutionStatus::Failed),
            ("$Exception{java.lang.Throwable}", ExecutionStatus::Unknown),
        ]
    );
    assert_eq!(
        reduce.compensate_state.as_deref(),
        Some("CompensateReduceInventory")
    );
    // Seata's parser: a task with a compensator is for update, the compensator for compensation.
    assert!(reduce.for_update && !reduce.for_compensation);
    assert_eq!(reduce.persist, None);
    assert!(task(&m, "CompensateReduceInventory").for_compensation);
    assert!(task(&m, "CompensateReduceBalance").for_compensation);
    assert!(!task(&m, "CompensateReduceBalance").for_update);

    let balance = task(&m, "ReduceBalance");
    assert_eq!(service(&m, "ReduceBalance"), ("balanceAction", "reduce"));
    assert_eq!(
        balance.input[2],
        json!({"throwException": "$.[mockReduceBalanceFail]"})
    );
    assert_eq!(balance.catches.len(), 1);
    assert_eq!(balance.catches[0].exceptions, ["java.lang.Throwable"]);
    assert_eq!(balance.catches[0].next, "CompensationTrigger");
    assert_eq!(balance.next.as_deref(), Some("Succeed"));

    let StateKind::Choice(choice) = &m.states["ChoiceState"].kind else {
        panic!("ChoiceState")
    };
    assert_eq!(
        choice.choices[0].expression,
        "[reduceInventoryResult] == true"
    );
    assert_eq!(choice.choices[0].next, "ReduceBalance");
    assert_eq!(choice.default.as_deref(), Some("Fail"));
    assert_eq!(
        m.states["CompensationTrigger"].kind,
        StateKind::CompensationTrigger {
            next: Some("Fail".into())
        }
    );
    let StateKind::Fail(fail) = &m.states["Fail"].kind else {
        panic!("Fail")
    };
    assert_eq!(fail.error_code.as_deref(), Some("PURCHASE_FAILED"));
    assert_eq!(fail.message.as_deref(), Some("purchase failed"));
}

#[test]
fn retry() {
    let m = load("retry");
    let flaky = task(&m, "CallFlaky");
    let StateKind::ServiceTask(s) = &m.states["CallFlaky"].kind else {
        panic!("CallFlaky")
    };
    assert_eq!(s.service_type.as_deref(), Some("SpringBean"));
    assert_eq!(s.parameter_types, ["java.lang.String", "int"]);
    assert_eq!(
        flaky.retry,
        vec![
            Retry {
                exceptions: vec!["java.lang.IllegalStateException".into()],
                interval_seconds: 0.05,
                max_attempts: 3,
                backoff_rate: 2.0,
            },
            // Absent numbers take the defaults.
            Retry {
                exceptions: vec!["java.net.ConnectException".into()],
                ..Retry::default()
            },
        ]
    );
    assert_eq!(Retry::default().interval_seconds, 1.0);
    assert_eq!(Retry::default().max_attempts, 3);
    assert_eq!(Retry::default().backoff_rate, 1.5);
    assert!(flaky.for_update);
}

#[test]
fn sub_machine() {
    let parent = load("sub_machine_parent");
    let child = load("sub_machine_child");
    let StateKind::SubStateMachine(call) = &parent.states["CallChild"].kind else {
        panic!("CallChild")
    };
    assert_eq!(call.state_machine_name, child.name);
    // No CompensateState: the engine compensates it with an implicit CompensateSubMachine.
    assert_eq!(call.task.compensate_state, None);
    assert_eq!(
        call.task.input,
        vec![json!({
            "businessKey": "$.[businessKey]",
            "amount": "$.[amount]",
            "mockReduceBalanceFail": "$.[mockReduceBalanceFail]"
        })]
    );
    assert_eq!(call.task.catches[0].next, "CompensationTrigger");
    assert_eq!(
        service(&child, "ReduceBalance"),
        ("balanceAction", "reduce")
    );
}

#[test]
fn explicit_compensate_sub_machine() {
    let m = parse_state_machine(
        &json!({
            "Name": "explicit", "StartState": "Sub",
            "States": {
                "Sub": {"Type": "SubStateMachine", "StateMachineName": "child",
                        "CompensateState": "UndoSub", "Next": "Done"},
                "UndoSub": {"Type": "CompensateSubMachine", "Input": [{"reason": "$.[reason]"}]},
                "Done": {"Type": "Succeed"}
            }
        })
        .to_string(),
    )
    .unwrap();
    let StateKind::CompensateSubMachine(undo) = &m.states["UndoSub"].kind else {
        panic!("UndoSub")
    };
    assert!(undo.for_compensation);
    assert_eq!(undo.input, vec![json!({"reason": "$.[reason]"})]);
    assert!(task(&m, "Sub").for_update);
}

#[test]
fn loop_() {
    let m = load("loop");
    assert_eq!(
        task(&m, "ProcessItems").loop_,
        Some(Loop {
            parallel: 3,
            collection: "$.[items]".into(),
            element_variable_name: "item".into(),
            element_index_name: "index".into(),
            completion_condition: "[nrOfInstances] == [nrOfCompletedInstances]".into(),
        })
    );
    assert_eq!(
        task(&m, "NotifyItems").loop_,
        Some(Loop {
            collection: "$.[items]".into(),
            ..Loop::default()
        })
    );
    // Seata reads Parallel with toInt, so a numeric string is a count too.
    let m = parse_state_machine(&minimal(json!({
        "A": {"Type": "ServiceTask", "ServiceName": "s", "ServiceMethod": "m",
              "Loop": {"Parallel": "4", "Collection": "[xs]"}}
    })))
    .unwrap();
    assert_eq!(task(&m, "A").loop_.as_ref().map(|l| l.parallel), Some(4));
}

#[test]
fn script() {
    let m = load("script");
    let StateKind::ScriptTask(check) = &m.states["CheckAmount"].kind else {
        panic!("CheckAmount")
    };
    assert_eq!(check.script_type, "ferrata");
    assert_eq!(check.script_content, "[amount] > 100");
    assert_eq!(check.task.input, vec![json!({"amount": "$.[amount]"})]);
    // Seata never persists a ScriptTask.
    assert_eq!(check.task.persist, Some(false));
    let StateKind::ScriptTask(label) = &m.states["Label"].kind else {
        panic!("Label")
    };
    assert_eq!(label.script_type, "expression");
}

#[test]
fn forward() {
    let m = load("forward");
    assert_eq!(m.recover_strategy, RecoverStrategy::Forward);
    assert!(m.persist);
    assert!(m.retry_persist_mode_update);
    assert!(m.compensate_persist_mode_update);
    assert_eq!(task(&m, "ReduceInventory").persist, Some(true));
    assert_eq!(task(&m, "ReduceBalance").catches, vec![]);
    let v = to_json(&m);
    assert_eq!(v["RecoverStrategy"], "Forward");
    assert_eq!(v["IsRetryPersistModeUpdate"], true);
    assert_eq!(v["IsCompensatePersistModeUpdate"], true);
}

#[test]
fn designer_keys_are_ignored() {
    let m = load("designer");
    assert_eq!(m.states.len(), 6);
    let reduce = task(&m, "ReduceInventory");
    assert!(reduce.status.is_empty() && reduce.retry.is_empty());
    assert_eq!(reduce.catches[0].next, "CompensationTrigger");
    assert_eq!(reduce.next.as_deref(), Some("ChoiceState"));
    assert!(task(&m, "CompensateReduceInventory").for_compensation);
    let written = to_json_string(&m);
    for key in ["\"style\"", "\"edge\"", "\"catch\"", "\"waypoints\""] {
        assert!(!written.contains(key), "{key} written back");
    }
    // The old designer's graph format (nodes/edges) gets a pointed message.
    let err = parse_state_machine(r#"{"nodes": [], "edges": []}"#).unwrap_err();
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "nodes"),
        "{err}"
    );
}

#[test]
fn defaults_when_absent() {
    let m = parse_state_machine(&minimal(json!({"A": {"Type": "Succeed"}}))).unwrap();
    assert_eq!(m.version, "0.0.1");
    assert_eq!(m.comment, None);
    assert_eq!(m.recover_strategy, RecoverStrategy::Compensate);
    assert!(m.persist);
    // A blank RecoverStrategy is the default (Seata), null is absent.
    let m = parse_state_machine(
        &json!({"Name": "m", "StartState": "A", "RecoverStrategy": " ", "Comment": null,
                "States": {"A": {"Type": "Succeed"}}})
        .to_string(),
    )
    .unwrap();
    assert_eq!(m.recover_strategy, RecoverStrategy::Compensate);
    // A task without Next ends the machine: allowed.
    parse_state_machine(&minimal(json!({
        "A": {"Type": "ServiceTask", "ServiceName": "s", "ServiceMethod": "m", "IsAsync": true}
    })))
    .unwrap();
}

// ---- builder ----------------------------------------------------------------------------------

fn purchase_built() -> Result<StateMachine, DefinitionError> {
    let status = |t: ferrata_saga::builder::ServiceTaskBuilder| {
        t.status("#root == true", ExecutionStatus::Succeed)
            .status("#root == false", ExecutionStatus::Failed)
            .status("$Exception{java.lang.Throwable}", ExecutionStatus::Unknown)
    };
    StateMachine::builder("purchase")
        .comment("Reduce inventory, then balance; compensate both when the balance step fails")
        .version("1.0.0")
        .recover_strategy(RecoverStrategy::Compensate)
        .start_state("ReduceInventory")
        .service_task("ReduceInventory", "inventoryAction", "reduce", |t| {
            status(
                t.comment("take count items out of stock")
                    .compensate_state("CompensateReduceInventory")
                    .input(["$.[businessKey]", "$.[count]"])
                    .output("reduceInventoryResult", "$.#root"),
            )
            .next("ChoiceState")
        })
        .choice("ChoiceState", |c| {
            c.when("[reduceInventoryResult] == true", "ReduceBalance")
                .otherwise("Fail")
        })
        .service_task("ReduceBalance", "balanceAction", "reduce", |t| {
            status(
                t.compensate_state("CompensateReduceBalance")
                    .input(["$.[businessKey]", "$.[amount]"])
                    .input_value(json!({"throwException": "$.[mockReduceBalanceFail]"}))
                    .output("reduceBalanceResult", "$.#root"),
            )
            .catch(["java.lang.Throwable"], "CompensationTrigger")
            .next("Succeed")
        })
        .service_task(
            "CompensateReduceInventory",
            "inventoryAction",
            "compensateReduce",
            |t| t.input(["$.[businessKey]"]),
        )
        .service_task(
            "CompensateReduceBalance",
            "balanceAction",
            "compensateReduce",
            |t| t.input(["$.[businessKey]"]),
        )
        .compensation_trigger("CompensationTrigger", "Fail")
        .succeed("Succeed")
        .fail("Fail", Some("PURCHASE_FAILED"), Some("purchase failed"))
        .build()
}

#[test]
fn builder_equals_json_purchase() {
    let built = purchase_built().unwrap();
    let loaded = load("purchase");
    assert_eq!(built, loaded);
    assert_same_order(&built, &loaded);
}

#[test]
fn builder_covers_every_state_kind() {
    let m = StateMachine::builder("all")
        .persist(false)
        .retry_persist_mode_update(true)
        .compensate_persist_mode_update(true)
        .script_task("Script", "[x] + 1", |t| {
            t.output("y", "$.#root").next("Sub")
        })
        .sub_state_machine("Sub", "child", |t| {
            t.compensate_state("UndoSub")
                .input_value(json!({"x": "$.[x]"}))
                .next("Loop")
        })
        .compensate_sub_machine("UndoSub", |t| t.comment("undo the child"))
        .service_task("Loop", "svc", "each", |t| {
            t.service_type("SpringBean")
                .parameter_types(["java.lang.Object"])
                .asynchronous(true)
                .persist(true)
                .for_update(true)
                .retry(Retry::default())
                .loop_(Loop {
                    parallel: 2,
                    collection: "$.[xs]".into(),
                    ..Loop::default()
                })
                .next("Done")
        })
        .state(State {
            name: "Done".into(),
            comment: Some("the end".into()),
            kind: StateKind::Succeed,
        })
        .build()
        .unwrap();
    // Without start_state the first state starts.
    assert_eq!(m.start_state, "Script");
    assert!(!m.persist);
    assert!(task(&m, "UndoSub").for_compensation);
    assert_eq!(task(&m, "Script").persist, Some(false));
    assert!(task(&m, "Loop").is_async);
    assert_eq!(
        parse_state_machine(&to_json_string(&m)).unwrap(),
        m,
        "builder output round-trips"
    );
}

#[test]
fn builder_errors() {
    let err = StateMachine::builder("dup")
        .succeed("A")
        .fail("A", None, None)
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        DefinitionError::DuplicateState {
            machine: "dup".into(),
            state: "A".into()
        }
    );
    let err = StateMachine::builder("dangling")
        .service_task("A", "s", "m", |t| t.next("Nowhere"))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, DefinitionError::UnknownState { state: Some(s), property, target, .. }
            if s == "A" && property == "Next" && target == "Nowhere"),
        "{err}"
    );
    let err = StateMachine::builder("empty").build().unwrap_err();
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "StartState"),
        "{err}"
    );
}

// ---- validation errors ------------------------------------------------------------------------

/// `edit` makes the purchase machine invalid; the error must match and name `state`.
fn refused(edit: impl FnOnce(&mut Value), state: Option<&str>) -> DefinitionError {
    let err = purchase_with(edit).expect_err("the edit makes the machine invalid");
    let message = err.to_string();
    assert!(message.contains("\"purchase\""), "{message}");
    if let Some(state) = state {
        assert!(message.contains(&format!("state \"{state}\"")), "{message}");
    }
    err
}

#[test]
fn missing_start_state() {
    let err = refused(|d| d["StartState"] = json!("Nope"), None);
    assert!(
        matches!(&err, DefinitionError::UnknownState { state: None, property, target, .. }
        if property == "StartState" && target == "Nope")
    );
    let err = refused(
        |d| {
            d.as_object_mut().unwrap().remove("StartState");
        },
        None,
    );
    assert!(matches!(&err, DefinitionError::Missing { property, .. } if property == "StartState"));
}

#[test]
fn dangling_references() {
    type Edit = fn(&mut Value);
    let cases: [(Edit, &str, &str); 6] = [
        (
            |d| d["States"]["ReduceInventory"]["Next"] = json!("X"),
            "ReduceInventory",
            "Next",
        ),
        (
            |d| d["States"]["ChoiceState"]["Default"] = json!("X"),
            "ChoiceState",
            "Default",
        ),
        (
            |d| d["States"]["ChoiceState"]["Choices"][0]["Next"] = json!("X"),
            "ChoiceState",
            "Choices[0].Next",
        ),
        (
            |d| d["States"]["ReduceBalance"]["Catch"][0]["Next"] = json!("X"),
            "ReduceBalance",
            "Catch[0].Next",
        ),
        (
            |d| d["States"]["CompensationTrigger"]["Next"] = json!("X"),
            "CompensationTrigger",
            "Next",
        ),
        (
            |d| d["States"]["ReduceBalance"]["CompensateState"] = json!("X"),
            "ReduceBalance",
            "CompensateState",
        ),
    ];
    for (edit, state, property) in cases {
        let err = refused(edit, Some(state));
        assert!(
            matches!(&err, DefinitionError::UnknownState { state: Some(s), property: p, target, .. }
                if s == state && p == property && target == "X"),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!("\"{property}\"")),
            "{err}"
        );
    }
}

#[test]
fn compensate_state_must_be_a_task() {
    let err = refused(
        |d| d["States"]["ReduceBalance"]["CompensateState"] = json!("Fail"),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::NotATask { state, target, target_type: "Fail", .. }
            if state == "ReduceBalance" && target == "Fail"),
        "{err}"
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["CompensateState"] = json!("ReduceBalance"),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "CompensateState")
    );
}

#[test]
fn choice_needs_a_branch() {
    let err = refused(
        |d| d["States"]["ChoiceState"]["Choices"] = json!([]),
        Some("ChoiceState"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Choices")
    );
    let err = refused(
        |d| {
            d["States"]["ChoiceState"]
                .as_object_mut()
                .unwrap()
                .remove("Choices");
        },
        Some("ChoiceState"),
    );
    assert!(matches!(&err, DefinitionError::Missing { property, .. } if property == "Choices"));
    let err = refused(
        |d| d["States"]["ChoiceState"]["Choices"][0]["Expression"] = json!(""),
        Some("ChoiceState"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. }
        if property == "Choices[0].Expression")
    );
}

#[test]
fn retry_and_loop_numbers() {
    let retry =
        |entry: Value| move |d: &mut Value| d["States"]["ReduceBalance"]["Retry"] = json!([entry]);
    for (entry, property) in [
        (
            json!({"Exceptions": [], "MaxAttempts": -1}),
            "Retry[0].MaxAttempts",
        ),
        (
            json!({"Exceptions": [], "MaxAttempts": 1.5}),
            "Retry[0].MaxAttempts",
        ),
        (
            json!({"Exceptions": [], "IntervalSeconds": -0.5}),
            "Retry[0].IntervalSeconds",
        ),
        (
            json!({"Exceptions": [], "IntervalSeconds": 1e9}),
            "Retry[0].IntervalSeconds",
        ),
        (
            json!({"Exceptions": [], "BackoffRate": 0.5}),
            "Retry[0].BackoffRate",
        ),
    ] {
        let err = refused(retry(entry), Some("ReduceBalance"));
        assert!(
            matches!(&err, DefinitionError::InvalidValue { property: p, .. } if p == property),
            "{err}"
        );
    }
    // MaxAttempts 0 (never retry) and BackoffRate 1 are fine.
    purchase_with(retry(
        json!({"Exceptions": ["E"], "MaxAttempts": 0, "BackoffRate": 1, "IntervalSeconds": 0}),
    ))
    .unwrap();

    let err = refused(
        |d| d["States"]["ReduceBalance"]["Loop"] = json!({"Parallel": 0, "Collection": "[xs]"}),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Loop.Parallel")
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["Loop"] = json!({"Parallel": 2}),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::Missing { property, .. } if property == "Loop.Collection")
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["Loop"] = json!({"Parallel": "many", "Collection": "x"}),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Loop.Parallel")
    );
}

#[test]
fn status_codes() {
    for code in ["RU", "SK", "OK", "su"] {
        let err = refused(
            |d| d["States"]["ReduceBalance"]["Status"] = json!({"#root == true": code}),
            Some("ReduceBalance"),
        );
        assert!(
            matches!(&err, DefinitionError::InvalidValue { property, .. }
                if property == "Status[\"#root == true\"]"),
            "{err}"
        );
    }
    let err = refused(
        |d| d["States"]["ReduceBalance"]["Status"] = json!({"#root == true": true}),
        Some("ReduceBalance"),
    );
    assert!(matches!(&err, DefinitionError::WrongType { .. }), "{err}");
    // Built by hand: Running is not a decision.
    let mut m = load("purchase");
    if let StateKind::ServiceTask(s) = &mut m.states["ReduceBalance"].kind {
        s.task
            .status
            .insert("#root == true".into(), ExecutionStatus::Running);
    }
    assert!(matches!(
        m.validate(),
        Err(DefinitionError::InvalidValue { .. })
    ));
}

#[test]
fn names_and_types() {
    let err = purchase_with(|d| d["Name"] = json!("")).unwrap_err();
    assert!(matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Name"));
    let err = purchase_with(|d| d["Name"] = json!("n".repeat(129))).unwrap_err();
    assert!(matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Name"));
    let err = purchase_with(|d| {
        d.as_object_mut().unwrap().remove("Name");
    })
    .unwrap_err();
    assert!(matches!(&err, DefinitionError::Missing { property, .. } if property == "Name"));
    assert!(err.to_string().contains("without Name"), "{err}");
    let err = refused(|d| d["Version"] = json!("1.0.0-beta.1+build.7"), None);
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "Version")
    );
    let err = refused(|d| d["RecoverStrategy"] = json!("Retry"), None);
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "RecoverStrategy")
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["ServiceName"] = json!(""),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::InvalidValue { property, .. } if property == "ServiceName")
    );
    let err = refused(
        |d| {
            d["States"]["ReduceBalance"]
                .as_object_mut()
                .unwrap()
                .remove("ServiceMethod");
        },
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::Missing { property, .. } if property == "ServiceMethod")
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["IsForUpdate"] = json!("true"),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::WrongType { property, found: "a string", .. }
            if property == "IsForUpdate"),
        "{err}"
    );
    let err = refused(
        |d| d["States"]["ReduceBalance"]["Input"] = json!({"a": 1}),
        Some("ReduceBalance"),
    );
    assert!(matches!(&err, DefinitionError::WrongType { property, .. } if property == "Input"));
    let err = refused(
        |d| d["States"]["ReduceBalance"]["Catch"] = json!([{"Exceptions": "E", "Next": "Fail"}]),
        Some("ReduceBalance"),
    );
    assert!(
        matches!(&err, DefinitionError::WrongType { property, .. } if property == "Catch[0].Exceptions")
    );
    let err = refused(
        |d| d["States"]["Succeed"] = json!("Succeed"),
        Some("Succeed"),
    );
    assert!(matches!(&err, DefinitionError::WrongType { .. }), "{err}");
    let err = refused(|d| d["States"]["Succeed"] = json!({}), Some("Succeed"));
    assert!(matches!(&err, DefinitionError::Missing { property, .. } if property == "Type"));
}

#[test]
fn unknown_state_type() {
    for type_name in ["Parallel", "LoopStart", "serviceTask"] {
        let err = refused(
            |d| d["States"]["Succeed"]["Type"] = json!(type_name),
            Some("Succeed"),
        );
        assert_eq!(
            err,
            DefinitionError::UnknownStateType {
                machine: "purchase".into(),
                state: "Succeed".into(),
                type_name: type_name.into()
            }
        );
    }
}

#[test]
fn sub_machine_cannot_call_itself() {
    let err = parse_state_machine(
        &json!({"Name": "me", "StartState": "A", "States": {
            "A": {"Type": "SubStateMachine", "StateMachineName": "me"}}})
        .to_string(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DefinitionError::InvalidValue { state: Some(s), property, .. }
        if s == "A" && property == "StateMachineName")
    );
}

#[test]
fn loops_without_an_end_are_refused() {
    let err = parse_state_machine(&minimal(json!({
        "A": {"Type": "ServiceTask", "ServiceName": "s", "ServiceMethod": "m", "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Expression": "[x]", "Next": "A"}]},
        "C": {"Type": "Succeed"}
    })))
    .unwrap_err();
    assert_eq!(
        err,
        DefinitionError::NoWayOut {
            machine: "m".into(),
            states: vec!["A".into(), "B".into()]
        }
    );
    // A way out (a Default, or a Catch) is enough: polling loops are fine.
    parse_state_machine(&minimal(json!({
        "A": {"Type": "ServiceTask", "ServiceName": "s", "ServiceMethod": "m", "Next": "B"},
        "B": {"Type": "Choice", "Choices": [{"Expression": "[x]", "Next": "A"}], "Default": "C"},
        "C": {"Type": "Succeed"}
    })))
    .unwrap();
    parse_state_machine(&minimal(json!({
        "A": {"Type": "ServiceTask", "ServiceName": "s", "ServiceMethod": "m", "Next": "A",
              "Catch": [{"Exceptions": ["E"], "Next": "C"}]},
        "C": {"Type": "Fail"}
    })))
    .unwrap();
}

// ---- script tasks -----------------------------------------------------------------------------

#[test]
fn groovy_script_task_is_refused() {
    for script_type in [json!("groovy"), json!("javascript"), Value::Null, json!("")] {
        let mut state = json!({"Type": "ScriptTask", "ScriptContent": "return 1"});
        if !script_type.is_null() {
            state["ScriptType"] = script_type.clone();
        }
        let err = parse_state_machine(&minimal(json!({ "A": state }))).unwrap_err();
        let expected = script_type
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("groovy");
        assert_eq!(
            err,
            DefinitionError::UnsupportedScriptType {
                machine: "m".into(),
                state: "A".into(),
                script_type: expected.into()
            }
        );
        let message = err.to_string();
        assert!(message.contains("ScriptType: \"ferrata\""), "{message}");
        assert!(message.contains("state \"A\""), "{message}");
    }
}

// ---- hostile input ----------------------------------------------------------------------------

#[test]
fn size_limit() {
    let padding = " ".repeat(MAX_DEFINITION_BYTES);
    let doc = format!("{}{padding}", source("purchase"));
    let err = parse_state_machine(&doc).unwrap_err();
    assert!(matches!(
        err,
        DefinitionError::TooLarge { limit, .. } if limit == MAX_DEFINITION_BYTES
    ));
    assert!(err.to_string().contains("1048576"), "{err}");
}

#[test]
fn state_count_limit() {
    let states = |n: usize| {
        let mut states = serde_json::Map::new();
        for i in 0..n {
            states.insert(format!("S{i}"), json!({"Type": "Succeed"}));
        }
        json!({"Name": "big", "StartState": "S0", "States": states}).to_string()
    };
    assert_eq!(
        parse_state_machine(&states(MAX_STATES))
            .unwrap()
            .states
            .len(),
        MAX_STATES
    );
    let err = parse_state_machine(&states(MAX_STATES + 1)).unwrap_err();
    assert_eq!(
        err,
        DefinitionError::TooManyStates {
            machine: "big".into(),
            count: MAX_STATES + 1,
            limit: MAX_STATES
        }
    );
    // The builder is held to the same limit.
    let mut builder = StateMachine::builder("big");
    for i in 0..=MAX_STATES {
        builder = builder.succeed(format!("S{i}"));
    }
    assert!(matches!(
        builder.build(),
        Err(DefinitionError::TooManyStates { .. })
    ));
}

#[test]
fn malformed_json() {
    for doc in [
        "",
        "{",
        "[]",
        "42",
        "\"purchase\"",
        "{\"Name\": \"m\",}",
        "{\"Name\": \"m\", \"Name\": \"n\"}",
        "{\"States\": {\"A\": {\"Type\": \"Succeed\"}, \"A\": {\"Type\": \"Fail\"}}}",
        "{\"Name\": 1e999}",
        "{} trailing",
    ] {
        let err = parse_state_machine(doc).unwrap_err();
        assert!(
            matches!(err, DefinitionError::Malformed(_)),
            "{doc:?}: {err}"
        );
    }
    let err = parse_state_machine("{\"Name\": \"m\",\n  \"States\": {\"A\": }}").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    // Deep nesting is refused by serde_json's recursion limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        parse_state_machine(&deep),
        Err(DefinitionError::Malformed(_))
    ));
}

#[test]
fn no_panic_on_truncated_or_mutated_input() {
    // Every prefix of every machine, and pseudo-random byte edits: errors, never panics.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"{}[]\":,0-9eE. tfnulraxSTNA$#";
    for name in MACHINES {
        let doc = source(name);
        for end in (0..doc.len()).filter(|&i| doc.is_char_boundary(i)) {
            let _ = parse_state_machine(&doc[..end]);
        }
        let bytes = doc.as_bytes();
        for _ in 0..2000 {
            let mut edited = bytes.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % edited.len();
                edited[at] = alphabet[(next() as usize) % alphabet.len()];
            }
            if let Ok(text) = String::from_utf8(edited) {
                let _ = parse_state_machine(&text);
            }
        }
    }
}
