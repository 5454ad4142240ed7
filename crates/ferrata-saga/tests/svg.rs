//! The SVG pictures of a machine and of an instance's path: well-formed, deterministic, escaped.
// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrata_saga::model::{
    Catch, Choice, ChoiceBranch, ExecutionStatus, Fail, RecoverStrategy, ServiceTask, State,
    StateKind, StateMachine, Task,
};
use ferrata_saga::svg::{PathStep, instance_svg, machine_svg};
use indexmap::IndexMap;

fn service(name: &str, service: &str, method: &str, task: Task) -> State {
    State {
        name: name.to_owned(),
        comment: None,
        kind: StateKind::ServiceTask(ServiceTask {
            service_name: service.to_owned(),
            service_method: method.to_owned(),
            service_type: Some("SpringBean".to_owned()),
            parameter_types: Vec::new(),
            task,
        }),
    }
}

fn state(name: &str, kind: StateKind) -> State {
    State {
        name: name.to_owned(),
        comment: None,
        kind,
    }
}

/// Seata's purchase sample: reduce inventory, check, reduce balance (catch → compensate → fail).
fn purchase() -> StateMachine {
    let states = vec![
        service(
            "ReduceInventory",
            "inventoryAction",
            "reduce",
            Task {
                next: Some("ChoiceState".into()),
                compensate_state: Some("CompensateReduceInventory".into()),
                for_update: true,
                ..Task::default()
            },
        ),
        state(
            "ChoiceState",
            StateKind::Choice(Choice {
                choices: vec![ChoiceBranch {
                    expression: "[reduceInventoryResult] == true".into(),
                    next: "ReduceBalance".into(),
                }],
                default: Some("Fail".into()),
            }),
        ),
        service(
            "ReduceBalance",
            "balanceAction",
            "reduce",
            Task {
                next: Some("Succeed".into()),
                compensate_state: Some("CompensateReduceBalance".into()),
                catches: vec![Catch {
                    exceptions: vec!["java.lang.Throwable".into()],
                    next: "CompensationTrigger".into(),
                }],
                for_update: true,
                ..Task::default()
            },
        ),
        service(
            "CompensateReduceInventory",
            "inventoryAction",
            "compensateReduce",
            Task {
                for_compensation: true,
                ..Task::default()
            },
        ),
        service(
            "CompensateReduceBalance",
            "balanceAction",
            "compensateReduce",
            Task {
                for_compensation: true,
                ..Task::default()
            },
        ),
        state(
            "CompensationTrigger",
            StateKind::CompensationTrigger {
                next: Some("Fail".into()),
            },
        ),
        state("Succeed", StateKind::Succeed),
        state(
            "Fail",
            StateKind::Fail(Fail {
                error_code: Some("PURCHASE_FAILED".into()),
                message: Some("purchase failed".into()),
            }),
        ),
    ];
    StateMachine {
        name: "reduceInventoryAndBalance".into(),
        comment: Some("reduce inventory, then balance".into()),
        version: "0.0.1".into(),
        start_state: "ReduceInventory".into(),
        recover_strategy: RecoverStrategy::Compensate,
        persist: true,
        retry_persist_mode_update: false,
        compensate_persist_mode_update: false,
        states: states
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect::<IndexMap<_, _>>(),
    }
}

const NAMES: [&str; 8] = [
    "ReduceInventory",
    "ChoiceState",
    "ReduceBalance",
    "CompensateReduceInventory",
    "CompensateReduceBalance",
    "CompensationTrigger",
    "Succeed",
    "Fail",
];

/// A small XML well-formedness check: balanced tags, one root `<svg>`, quoted attributes, no raw
/// `<` in text or attributes, and `&` only as a known entity or character reference.
fn check_xml(doc: &str) -> Result<usize, String> {
    fn check_amp(s: &str) -> Result<(), String> {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i + 1..];
            let end = rest.find(';').ok_or_else(|| format!("bare & in {s:?}"))?;
            let entity = &rest[..end];
            let numeric = entity.strip_prefix('#').is_some_and(|n| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_hexdigit() || c == 'x')
            });
            if !numeric && !["amp", "lt", "gt", "quot", "apos"].contains(&entity) {
                return Err(format!("unknown entity &{entity}; in {s:?}"));
            }
        }
        Ok(())
    }
    let mut stack: Vec<&str> = Vec::new();
    let (mut rest, mut elements, mut roots) = (doc.trim_end(), 0, 0);
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        check_amp(text)?;
        rest = &rest[lt + 1..];
        // Find the closing '>' outside quoted attribute values.
        let mut quote = None;
        let close = rest
            .char_indices()
            .find(|&(_, c)| match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    false
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    false
                }
                (Some(_), '<') => true, // reported below as a raw '<' in an attribute
                (None, '>') => true,
                _ => false,
            })
            .map(|(i, _)| i)
            .ok_or("unterminated tag")?;
        let tag = &rest[..close];
        if quote.is_some() {
            return Err(format!("raw '<' inside an attribute of <{tag}"));
        }
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or_else(|| format!("unexpected </{name}>"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
        {
            return Err(format!("bad tag <{tag}>"));
        }
        for attr in tag[name.len()..]
            .trim_end_matches('/')
            .split('"')
            .skip(1)
            .step_by(2)
        {
            check_amp(attr)?;
        }
        if stack.is_empty() {
            roots += 1;
        }
        elements += 1;
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    if !rest.trim().is_empty() || !stack.is_empty() || roots != 1 {
        return Err(format!(
            "unclosed {stack:?}, {roots} roots, trailing {rest:?}"
        ));
    }
    Ok(elements)
}

/// The `<g class="state ...">` group whose name text is `name` (already escaped).
fn node<'a>(svg: &'a str, name: &str) -> &'a str {
    let text = format!(">{name}</text>");
    let groups: Vec<&str> = svg
        .split("<g class=\"state ")
        .skip(1)
        .filter(|g| g.contains(&text))
        .collect();
    assert_eq!(groups.len(), 1, "one node for {name}");
    groups[0].split("</g>").next().unwrap()
}

/// The edge group whose title is exactly `title`.
fn edge<'a>(svg: &'a str, title: &str) -> &'a str {
    let needle = format!("<title>{title}</title>");
    let groups: Vec<&str> = svg
        .split("<g class=\"edge ")
        .skip(1)
        .filter(|g| g.contains(&needle))
        .collect();
    assert_eq!(groups.len(), 1, "one edge titled {title}");
    groups[0].split("</g>").next().unwrap()
}

fn attr(element: &str, name: &str) -> i32 {
    let start = element.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
    element[start..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn machine_picture_is_well_formed_and_complete() {
    let svg = machine_svg(&purchase());
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "),
        "{svg}"
    );
    check_xml(&svg).unwrap();
    let (w, h) = (attr(&svg, "width"), attr(&svg, "height"));
    assert!(svg.contains(&format!("viewBox=\"0 0 {w} {h}\"")));

    for name in NAMES {
        assert_eq!(
            svg.matches(&format!(">{name}</text>")).count(),
            1,
            "{name} once as node text"
        );
        assert!(
            node(&svg, name).contains(&format!("<title>{name} (")),
            "{name} has a hover title"
        );
    }
    assert_eq!(svg.matches("<g class=\"state ").count(), NAMES.len());
    // 8 edges (3 next, branch, default, catch, 2 compensation links) and the start arrow.
    assert_eq!(svg.matches("<g class=\"edge ").count(), 9);
    assert_eq!(svg.matches("marker-end=").count(), 9);
    assert_eq!(svg.matches("<marker ").count(), 2);
    assert_eq!(svg.matches("class=\"edge compensate\"").count(), 2);

    // Shapes and labels per kind.
    assert!(node(&svg, "ReduceInventory").contains("<rect "));
    assert!(node(&svg, "ReduceInventory").contains(">inventoryAction.reduce</text>"));
    assert!(node(&svg, "ChoiceState").contains("<polygon "));
    assert!(
        node(&svg, "Succeed").contains("<ellipse ")
            && node(&svg, "Succeed").contains("stroke=\"#2e7d32\"")
    );
    assert!(
        node(&svg, "Fail").contains("<ellipse ")
            && node(&svg, "Fail").contains("stroke=\"#c62828\"")
    );
    assert!(node(&svg, "CompensationTrigger").contains("<polygon "));
    assert!(
        edge(
            &svg,
            "ChoiceState → ReduceBalance when [reduceInventoryResult] == true"
        )
        .contains(">[reduceInventoryResult] == true</text>")
    );
    assert!(edge(&svg, "ChoiceState → Fail (default)").contains(">default</text>"));
    let catch = edge(&svg, "ReduceBalance → CompensationTrigger (catch)");
    assert!(catch.contains(">catch</text>") && catch.contains("stroke-dasharray=\"6 4\""));
    assert!(
        edge(
            &svg,
            "ReduceInventory → CompensateReduceInventory (compensated by)"
        )
        .contains("stroke-dasharray=\"2 3\"")
    );

    // A definition has no path: nothing filled, nothing bold.
    assert!(!svg.contains("status-") && !svg.contains(" taken") && !svg.contains('↺'));
    assert_eq!(svg.matches("fill=\"#ffffff\" stroke=").count(), NAMES.len());
}

#[test]
fn layout_puts_rows_by_depth_and_compensators_beside_their_state() {
    let svg = machine_svg(&purchase());
    let rect = |name: &str| {
        let n = node(&svg, name);
        (attr(n, "x"), attr(n, "y"))
    };
    let (ri, rb, cri, crb) = (
        rect("ReduceInventory"),
        rect("ReduceBalance"),
        rect("CompensateReduceInventory"),
        rect("CompensateReduceBalance"),
    );
    assert!(ri.1 < rb.1, "ReduceBalance is two rows below");
    assert_eq!(cri.1, ri.1, "compensator in its state's row");
    assert!(cri.0 > ri.0);
    assert_eq!(crb.1, rb.1);
    assert!(crb.0 > rb.0);
    assert_eq!(cri.0, crb.0, "one compensation column");
    let succeed_y = attr(node(&svg, "Succeed"), "cy");
    assert!(succeed_y > rb.1);

    // A state nothing reaches and nothing compensates goes to a row at the bottom.
    let mut machine = purchase();
    machine
        .states
        .insert("Orphan".into(), state("Orphan", StateKind::Succeed));
    let svg = machine_svg(&machine);
    check_xml(&svg).unwrap();
    let orphan = attr(node(&svg, "Orphan"), "cy");
    assert!(orphan > attr(node(&svg, "Succeed"), "cy") && orphan > attr(node(&svg, "Fail"), "cy"));
    assert!(orphan + 20 < attr(&svg, "height"));
}

#[test]
fn output_is_deterministic() {
    let machine = purchase();
    assert_eq!(machine_svg(&machine), machine_svg(&machine.clone()));
    let path = failed_path();
    assert_eq!(
        instance_svg(&machine, &path),
        instance_svg(&purchase(), &path.clone())
    );
}

#[test]
fn hostile_names_comments_and_expressions_are_escaped() {
    let hostile = "<script>alert(\"x&y\")</script>'";
    let escaped = "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&apos;";
    let mut machine = purchase();
    machine.name = "m</title><script>".into();
    if let Some(State {
        kind: StateKind::Choice(choice),
        ..
    }) = machine.states.get_mut("ChoiceState")
    {
        choice.default = Some(hostile.into());
        choice.choices[0].expression =
            "[a] < 1 && [b] > \"</text><script>\" || 'x' == 'a very long tail'".into();
    }
    let mut evil = state(
        hostile,
        StateKind::Fail(Fail {
            error_code: Some("E&<1>".into()),
            message: None,
        }),
    );
    evil.comment = Some("</title><script>alert(1)</script>\u{0}\u{1b}".into());
    machine.states.insert(hostile.into(), evil);

    let path = [PathStep {
        state: hostile.into(),
        status: ExecutionStatus::Failed,
        compensation: true,
    }];
    for svg in [machine_svg(&machine), instance_svg(&machine, &path)] {
        check_xml(&svg).unwrap();
        assert!(
            !svg.contains("<script") && !svg.contains('\u{0}') && !svg.contains('\u{1b}'),
            "{svg}"
        );
        assert_eq!(
            svg.matches(&format!(">{escaped}</text>")).count(),
            1,
            "escaped name is node text"
        );
        assert!(svg.contains(">E&amp;&lt;1&gt;</text>"));
        assert!(svg.contains("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        // The label is cut to 40 characters with an ellipsis; the title keeps it all.
        assert!(svg.contains(">[a] &lt; 1 &amp;&amp; [b] &gt; &quot;&lt;/text&gt;&lt;script&gt;&quot; || &apos;…</text>"), "{svg}");
        assert!(svg.contains("&apos;a very long tail&apos;</title>"));
    }
}

fn failed_path() -> Vec<PathStep> {
    let step = |state: &str, status, compensation| PathStep {
        state: state.into(),
        status,
        compensation,
    };
    use ExecutionStatus::*;
    vec![
        step("ReduceInventory", Succeed, false),
        step("ChoiceState", Succeed, false),
        step("ReduceBalance", Running, false),
        step("ReduceBalance", Failed, false),
        step("CompensationTrigger", Succeed, false),
        step("CompensateReduceInventory", Succeed, true),
        step("Fail", Failed, false),
    ]
}

#[test]
fn instance_picture_colours_the_path() {
    let svg = instance_svg(&purchase(), &failed_path());
    check_xml(&svg).unwrap();
    for name in NAMES {
        assert_eq!(svg.matches(&format!(">{name}</text>")).count(), 1);
    }

    // The last step decides the fill: ReduceBalance ran (RU) and then failed.
    let rb = node(&svg, "ReduceBalance");
    assert!(
        rb.contains("status-FA") && rb.contains("fill=\"#ffcdd2\""),
        "{rb}"
    );
    assert!(rb.contains("status: FA (2 steps)") && !rb.contains('↺'));
    assert!(node(&svg, "ReduceInventory").contains("fill=\"#c8e6c9\""));
    assert!(node(&svg, "Fail").contains("fill=\"#ffcdd2\""));

    // The compensation step is badged.
    let cri = node(&svg, "CompensateReduceInventory");
    assert!(
        cri.contains(" compensated\"") && cri.contains('↺') && cri.contains("ran as compensation")
    );
    assert_eq!(svg.matches('↺').count(), 1);

    // States off the path stay plain.
    for name in ["Succeed", "CompensateReduceBalance"] {
        let n = node(&svg, name);
        assert!(
            n.contains("fill=\"#ffffff\"") && !n.contains("status-") && n.contains("not visited"),
            "{n}"
        );
    }

    // Edges between consecutive forward steps are bold, the others not.
    for title in [
        "ReduceInventory → ChoiceState",
        "ChoiceState → ReduceBalance when [reduceInventoryResult] == true",
        "ReduceBalance → CompensationTrigger (catch)",
        "CompensationTrigger → Fail",
        "ReduceInventory → CompensateReduceInventory (compensated by)",
    ] {
        let e = edge(&svg, title);
        assert!(
            e.starts_with("taken") || e.contains(" taken\""),
            "{title}: {e}"
        );
        assert!(e.contains("stroke-width=\"3\"") && e.contains("url(#ferrata-saga-arrow-taken)"));
    }
    for title in [
        "ReduceBalance → Succeed",
        "ChoiceState → Fail (default)",
        "ReduceBalance → CompensateReduceBalance (compensated by)",
    ] {
        let e = edge(&svg, title);
        assert!(
            !e.contains("taken") && e.contains("stroke-width=\"1.5\""),
            "{title}: {e}"
        );
    }
    // Five edges and the start arrow.
    assert_eq!(svg.matches(" taken\">").count(), 6);
}
