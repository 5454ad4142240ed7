//! SVG pictures for the console: a machine's definition ([`machine_svg`]) and the path an
//! instance took through it ([`instance_svg`]). The layout is deterministic and every piece of
//! user text (names, comments, expressions) is XML-escaped, since definitions are untrusted.

use std::collections::VecDeque;
use std::fmt::{self, Write as _};

use indexmap::IndexMap;

use crate::model::{ExecutionStatus, State, StateKind, StateMachine};

/// One step an instance took, in execution order (from the saga tables' state rows).
#[derive(Debug, Clone, PartialEq)]
pub struct PathStep {
    pub state: String,
    pub status: ExecutionStatus,
    pub compensation: bool,
}

/// The machine's definition as a standalone SVG document.
///
/// ```
/// use ferrata_saga::model::*;
/// let pay = ServiceTask {
///     service_name: "wallet".into(), service_method: "pay".into(), service_type: None,
///     parameter_types: vec![], task: Task { next: Some("Done".into()), ..Task::default() },
/// };
/// let states = [("Pay", StateKind::ServiceTask(pay)), ("Done", StateKind::Succeed)]
///     .map(|(name, kind)| (name.to_owned(), State { name: name.into(), comment: None, kind }));
/// let machine = StateMachine {
///     name: "checkout".into(), comment: None, version: "1.0".into(), start_state: "Pay".into(),
///     recover_strategy: RecoverStrategy::Compensate, persist: true, retry_persist_mode_update: false,
///     compensate_persist_mode_update: false, states: states.into_iter().collect(),
/// };
/// let svg = ferrata_saga::svg::machine_svg(&machine);
/// assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
/// assert!(svg.contains(">Pay</text>") && svg.contains(">wallet.pay</text>"));
/// ```
pub fn machine_svg(machine: &StateMachine) -> String {
    render(machine, None)
}

/// The machine's definition with `path` highlighted: visited states filled by the status of
/// their last step, compensation steps badged "↺", the edges taken between consecutive forward
/// steps drawn bold.
pub fn instance_svg(machine: &StateMachine, path: &[PathStep]) -> String {
    render(machine, Some(path))
}

const MARGIN: i32 = 24;
/// Room above the first row for the start dot and its arrow.
const START_SPACE: i32 = 36;
const NODE_H: i32 = 48;
const ROW_H: i32 = NODE_H + 62;
/// Rough advance of one character at font-size 13; the layout only needs to be roughly right.
const CHAR_W: i32 = 7;
const INK: &str = "#37474f";
const EDGE: &str = "#78909c";
const TAKEN: &str = "#1565c0";
const COMP: &str = "#8e24aa";
const PLAIN: &str = "#ffffff";

/// A placed state: centre, half extents (a Choice diamond is larger), row.
struct Node<'a> {
    state: &'a State,
    row: usize,
    cx: i32,
    cy: i32,
    hw: i32,
    hh: i32,
}

enum EdgeKind<'a> {
    Next,
    Branch(&'a str),
    Default,
    Catch,
    Compensate,
}

struct Edge<'a> {
    from: &'a str,
    to: &'a str,
    kind: EdgeKind<'a>,
}

struct Picture<'a> {
    nodes: IndexMap<&'a str, Node<'a>>,
    /// x of the first lane for edges going up more than one row.
    lane_x: i32,
    width: i32,
    height: i32,
    /// Instance only: state → (status of its last step, steps, has a compensation step).
    marks: Option<IndexMap<&'a str, (ExecutionStatus, usize, bool)>>,
    /// Instance only: consecutive forward steps.
    taken: Vec<(&'a str, &'a str)>,
}

fn render(machine: &StateMachine, path: Option<&[PathStep]>) -> String {
    let edges = edges(machine);
    let mut pic = layout(machine, &edges);
    if let Some(path) = path {
        let mut marks = IndexMap::new();
        for step in path {
            let e = marks
                .entry(step.state.as_str())
                .or_insert((step.status, 0, false));
            *e = (step.status, e.1 + 1, e.2 || step.compensation);
        }
        let forward: Vec<&str> = path
            .iter()
            .filter(|s| !s.compensation)
            .map(|s| s.state.as_str())
            .collect();
        pic.taken = forward.windows(2).map(|w| (w[0], w[1])).collect();
        // The start arrow counts as taken when the first forward step is the start state.
        pic.taken.extend(forward.first().map(|&first| ("", first)));
        pic.marks = Some(marks);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = pic.draw(&mut out, machine, &edges);
    out
}

fn compensator(state: &State) -> Option<&str> {
    state
        .kind
        .task()
        .and_then(|t| t.compensate_state.as_deref())
}

fn edges(machine: &StateMachine) -> Vec<Edge<'_>> {
    use EdgeKind::*;
    let mut edges = Vec::new();
    for (from, state) in &machine.states {
        let mut add = |to: &str, kind| {
            // An edge to a state that does not exist is a validation error; the picture skips it.
            if let Some((to, _)) = machine.states.get_key_value(to) {
                edges.push(Edge { from, to, kind });
            }
        };
        if let Some(task) = state.kind.task() {
            task.next.iter().for_each(|n| add(n, Next));
            task.catches.iter().for_each(|c| add(&c.next, Catch));
        }
        match &state.kind {
            StateKind::Choice(choice) => {
                choice
                    .choices
                    .iter()
                    .for_each(|c| add(&c.next, Branch(&c.expression)));
                choice.default.iter().for_each(|d| add(d, Default));
            }
            StateKind::CompensationTrigger { next } => next.iter().for_each(|n| add(n, Next)),
            _ => {}
        }
        compensator(state)
            .into_iter()
            .for_each(|c| add(c, Compensate));
    }
    edges
}

/// Rows by BFS depth from the start over forward edges; a compensator goes in the row of the
/// state it compensates, in columns right of the forward area; anything else in a bottom row.
fn layout<'a>(machine: &'a StateMachine, edges: &[Edge<'a>]) -> Picture<'a> {
    let mut depth: IndexMap<&str, usize> = IndexMap::new();
    let mut queue = VecDeque::new();
    if let Some((start, _)) = machine.states.get_key_value(machine.start_state.as_str()) {
        depth.insert(start, 0);
        queue.push_back((start.as_str(), 0));
    }
    while let Some((name, d)) = queue.pop_front() {
        let successors = machine.states.get(name).map(|s| s.kind.successors());
        for next in successors.unwrap_or_default() {
            if let Some((key, _)) = machine.states.get_key_value(next)
                && !depth.contains_key(key.as_str())
            {
                depth.insert(key, d + 1);
                queue.push_back((key, d + 1));
            }
        }
    }
    // BFS order within a row keeps siblings in the order their edges are written.
    let mut rows: Vec<Vec<&str>> = Vec::new();
    for (&name, &d) in &depth {
        rows.resize_with(rows.len().max(d + 1), Vec::new);
        rows[d].push(name);
    }
    let (mut slots, mut compensators, mut bottom) = (vec![0; rows.len()], Vec::new(), Vec::new());
    for name in machine.states.keys() {
        if depth.contains_key(name.as_str()) {
            continue;
        }
        let hosts = machine
            .states
            .iter()
            .filter(|(_, s)| compensator(s) == Some(name));
        match hosts
            .into_iter()
            .find_map(|(h, _)| depth.get(h.as_str()).copied())
        {
            Some(row) => {
                compensators.push((name.as_str(), row, slots[row]));
                slots[row] += 1;
            }
            None => bottom.push(name.as_str()),
        }
    }

    let longest = machine.states.values().map(|s| {
        let detail = detail(s).map_or(0, |d| d.chars().count());
        s.name.chars().count().max(detail)
    });
    // Capped so a hostile name cannot blow up the arithmetic; its text just overflows the box.
    let w = (longest.max().unwrap_or(0).min(120) as i32 * CHAR_W + 28).max(140);
    let col_w = w + 60;
    let fwd_cols = rows
        .iter()
        .map(Vec::len)
        .fold(bottom.len().max(1), usize::max) as i32;
    let forward_right = MARGIN + fwd_cols * col_w;
    let bottom_row = rows.len();
    let row = |n: &str| {
        let comp = || compensators.iter().find(|c| c.0 == n).map(|c| c.1);
        depth.get(n).copied().or_else(comp).unwrap_or(bottom_row)
    };
    // Each edge going up more than one row gets its own vertical lane right of the forward area.
    let lanes = edges.iter().filter(|e| row(e.to) + 1 < row(e.from)).count() as i32;
    let comp_left = forward_right + lanes * 8;

    let mut nodes = IndexMap::new();
    let mut place = |name: &'a str, row: usize, cx: i32| {
        if let Some(state) = machine.states.get(name) {
            let cy = MARGIN + START_SPACE + row as i32 * ROW_H + NODE_H / 2;
            let (hw, hh) = match state.kind {
                StateKind::Choice(_) => (w / 2 + 10, NODE_H / 2 + 8),
                _ => (w / 2, NODE_H / 2),
            };
            nodes.insert(
                name,
                Node {
                    state,
                    row,
                    cx,
                    cy,
                    hw,
                    hh,
                },
            );
        }
    };
    for (r, names) in rows.iter().enumerate() {
        // Rows are centred so a straight chain stays a straight vertical line.
        let left = MARGIN + (fwd_cols - names.len() as i32) * col_w / 2;
        for (i, name) in names.iter().enumerate() {
            place(name, r, left + i as i32 * col_w + col_w / 2);
        }
    }
    for &(name, r, slot) in &compensators {
        place(name, r, comp_left + slot * col_w + col_w / 2);
    }
    for (i, name) in bottom.iter().enumerate() {
        place(name, bottom_row, MARGIN + i as i32 * col_w + col_w / 2);
    }
    let comp_cols = slots.into_iter().max().unwrap_or(0);
    let total_rows = (rows.len() + usize::from(!bottom.is_empty())).max(1) as i32;
    Picture {
        nodes,
        lane_x: forward_right - 10,
        width: comp_left + comp_cols * col_w + MARGIN,
        height: 2 * MARGIN + START_SPACE + (total_rows - 1) * ROW_H + NODE_H + 16,
        marks: None,
        taken: Vec::new(),
    }
}

/// How far a node's outline reaches up or down at `dx` from its centre.
fn reach(n: &Node<'_>, dx: i32) -> i32 {
    match n.state.kind {
        StateKind::Choice(_) => n.hh - n.hh * dx / n.hw,
        StateKind::Succeed | StateKind::Fail(_) => {
            let t = f64::from(dx) / f64::from(n.hw);
            (f64::from(n.hh) * (1.0 - t * t).max(0.0).sqrt()) as i32
        }
        _ => n.hh,
    }
}

/// The second line of a node.
fn detail(state: &State) -> Option<String> {
    match &state.kind {
        StateKind::ServiceTask(s) => Some(format!("{}.{}", s.service_name, s.service_method)),
        StateKind::SubStateMachine(s) => Some(s.state_machine_name.clone()),
        StateKind::Fail(f) => f.error_code.clone(),
        _ => None,
    }
}

fn status_fill(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Succeed => "#c8e6c9",
        ExecutionStatus::Failed => "#ffcdd2",
        ExecutionStatus::Unknown => "#ffe082",
        ExecutionStatus::Running => "#bbdefb",
        ExecutionStatus::Skipped => "#e0e0e0",
    }
}

impl Picture<'_> {
    fn draw(&self, out: &mut String, m: &StateMachine, edges: &[Edge<'_>]) -> fmt::Result {
        let (w, h) = (self.width, self.height);
        // Fonts as presentation attributes, not a <style>: inlined in the console's page, a
        // stylesheet would restyle everything else there too.
        writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="13">"#
        )?;
        let (name, version) = (esc(&m.name), esc(&m.version));
        writeln!(out, "<title>{name} {version}</title>\n<defs>")?;
        // Both markers in every picture, identical everywhere: pictures inlined in one page
        // share one id namespace, and whichever definition wins must look the same.
        // Markers scale with the stroke, so the bold one is drawn smaller to end up alike.
        for (id, color, size) in [
            ("ferrata-saga-arrow", EDGE, 7),
            ("ferrata-saga-arrow-taken", TAKEN, 4),
        ] {
            writeln!(
                out,
                r#"<marker id="{id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="{size}" markerHeight="{size}" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="{color}"/></marker>"#
            )?;
        }
        out.push_str("</defs>\n");
        if let Some(start) = self.nodes.get(m.start_state.as_str()) {
            let (x, top, dot) = (start.cx, start.cy - start.hh, start.cy - start.hh - 30);
            let taken = self.taken.contains(&("", m.start_state.as_str()));
            let class = if taken {
                "edge start taken"
            } else {
                "edge start"
            };
            writeln!(out, r#"<g class="{class}"><title>start</title>"#)?;
            writeln!(out, r#"<circle cx="{x}" cy="{dot}" r="6" fill="{INK}"/>"#)?;
            edge_path(out, &format!("M{x},{}V{top}", top - 24), taken, EDGE, None)?;
            out.push_str("</g>\n");
        }
        let mut lane = 0;
        for e in edges {
            let (Some(a), Some(b)) = (self.nodes.get(e.from), self.nodes.get(e.to)) else {
                continue;
            };
            self.edge(out, e, a, b, &mut lane)?;
        }
        for (name, n) in &self.nodes {
            self.node(out, name, n)?;
        }
        out.push_str("</svg>\n");
        Ok(())
    }

    fn edge(
        &self,
        out: &mut String,
        e: &Edge<'_>,
        a: &Node<'_>,
        b: &Node<'_>,
        lane: &mut i32,
    ) -> fmt::Result {
        let comp = matches!(e.kind, EdgeKind::Compensate);
        let (d, lx, ly, anchor) = self.route(a, b, comp, lane);
        let taken = match &self.marks {
            None => false,
            // A compensation link counts as taken once the compensator ran for a state that ran.
            Some(marks) if comp => {
                marks.contains_key(e.from) && marks.get(e.to).is_some_and(|s| s.2)
            }
            Some(_) => self.taken.contains(&(e.from, e.to)),
        };
        let (class, dash, color) = match e.kind {
            EdgeKind::Next => ("next", None, EDGE),
            EdgeKind::Branch(_) => ("branch", None, EDGE),
            EdgeKind::Default => ("default", None, EDGE),
            EdgeKind::Catch => ("catch", Some("6 4"), EDGE),
            EdgeKind::Compensate => ("compensate", Some("2 3"), COMP),
        };
        let (label, what) = match e.kind {
            EdgeKind::Next => (None, String::new()),
            EdgeKind::Branch(x) => (Some(truncate(x, 40)), format!(" when {x}")),
            EdgeKind::Default | EdgeKind::Catch => (Some(class.into()), format!(" ({class})")),
            EdgeKind::Compensate => (None, " (compensated by)".into()),
        };
        let (taken_class, from, to, what) = (
            if taken { " taken" } else { "" },
            esc(e.from),
            esc(e.to),
            esc(&what),
        );
        writeln!(
            out,
            r#"<g class="edge {class}{taken_class}"><title>{from} → {to}{what}</title>"#
        )?;
        edge_path(out, &d, taken, color, dash)?;
        if let Some(label) = label.as_deref().map(esc) {
            // A white halo keeps the label readable where it crosses a line.
            writeln!(
                out,
                r##"<text x="{lx}" y="{ly}" text-anchor="{anchor}" font-size="11" fill="{INK}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{label}</text>"##
            )?;
        }
        out.push_str("</g>\n");
        Ok(())
    }

    /// Path data and label anchor (x, y, text-anchor) of an edge from `a` to `b`.
    fn route(
        &self,
        a: &Node<'_>,
        b: &Node<'_>,
        comp: bool,
        lane: &mut i32,
    ) -> (String, i32, i32, &'static str) {
        if a.state.name == b.state.name {
            let x = a.cx + a.hw;
            return (
                format!("M{x},{}h22v16h-22", a.cy - 8),
                x + 26,
                a.cy + 4,
                "start",
            );
        }
        if a.row == b.row {
            let (lo, hi) = (a.cx.min(b.cx), a.cx.max(b.cx));
            if comp
                && self
                    .nodes
                    .values()
                    .any(|n| n.row == a.row && n.cx > lo && n.cx < hi)
            {
                // Over the top of the row rather than through the forward states in between.
                let y = a.cy - NODE_H / 2 - 16;
                let d = format!("M{},{}V{y}H{}V{}", a.cx, a.cy - a.hh, b.cx, b.cy - b.hh);
                return (d, (a.cx + b.cx) / 2, y - 4, "middle");
            }
            let dir = if b.cx > a.cx { 1 } else { -1 };
            let (x1, x2) = (a.cx + dir * a.hw, b.cx - dir * b.hw);
            return (
                format!("M{x1},{}H{x2}", a.cy),
                (x1 + x2) / 2,
                a.cy - 6,
                "middle",
            );
        }
        if b.row > a.row || b.row + 1 == a.row {
            let down = b.row > a.row;
            // Upward edges leave and enter off-centre so they never run along a downward one.
            let (dx, s) = if down { (0, 1) } else { (24, -1) };
            let (xa, xb) = (a.cx + dx, b.cx + dx);
            let (y1, y2) = (a.cy + s * reach(a, dx), b.cy - s * reach(b, dx));
            if xa == xb {
                return (
                    format!("M{xa},{y1}V{y2}"),
                    xa + 6,
                    (y1 + y2) / 2 + 4,
                    "start",
                );
            }
            // Turn in the gap below the upper row; upward edges turn lower so the two don't merge.
            let mid = if down { a.cy + 50 } else { b.cy + 62 };
            let d = format!("M{xa},{y1}V{mid}H{xb}V{y2}");
            return (d, (xa + xb) / 2, mid - 5, "middle");
        }
        // Up more than one row: through the gap above `a` to its own lane right of the forward
        // area, up, and through the gap below `b`, so it crosses no state on the way.
        let (x, xa, xb) = (self.lane_x + 8 * *lane, a.cx + 24, b.cx + 24);
        *lane += 1;
        let (y1, y2, ga, gb) = (
            a.cy - reach(a, 24),
            b.cy + reach(b, 24),
            a.cy - 54,
            b.cy + 74,
        );
        let d = format!("M{xa},{y1}V{ga}H{x}V{gb}H{xb}V{y2}");
        (d, x + 4, (ga + gb) / 2, "start")
    }

    fn node(&self, out: &mut String, name: &str, n: &Node<'_>) -> fmt::Result {
        let (s, cx, cy, hw, hh) = (n.state, n.cx, n.cy, n.hw, n.hh);
        let (left, right, top, bottom) = (cx - hw, cx + hw, cy - hh, cy + hh);
        let mark = self.marks.as_ref().and_then(|m| m.get(name));
        let kind = s.kind.type_name();
        let (mut class, mut title) = (format!("state {kind}"), format!("{name} ({kind})"));
        if let Some(comment) = &s.comment {
            write!(title, "\n{comment}")?;
        }
        match mark {
            Some((status, steps, comp)) => {
                let (code, plural) = (status.code(), if *steps == 1 { "" } else { "s" });
                write!(class, " status-{code}")?;
                write!(title, "\nstatus: {code} ({steps} step{plural})")?;
                if *comp {
                    class.push_str(" compensated");
                    title.push_str("\nran as compensation");
                }
            }
            None if self.marks.is_some() => title.push_str("\nnot visited"),
            None => {}
        }
        writeln!(out, r#"<g class="{class}"><title>{}</title>"#, esc(&title))?;
        let shape = match s.kind {
            StateKind::Choice(_) => {
                format!(r#"<polygon points="{left},{cy} {cx},{top} {right},{cy} {cx},{bottom}""#)
            }
            StateKind::Succeed | StateKind::Fail(_) => {
                format!(r#"<ellipse cx="{cx}" cy="{cy}" rx="{hw}" ry="{hh}""#)
            }
            // A hexagon: unlike any task, and reads as "stop and turn back".
            StateKind::CompensationTrigger { .. } => {
                let (il, ir) = (left + 16, right - 16);
                format!(
                    r#"<polygon points="{left},{cy} {il},{top} {ir},{top} {right},{cy} {ir},{bottom} {il},{bottom}""#
                )
            }
            _ => format!(
                r#"<rect x="{left}" y="{top}" width="{}" height="{}" rx="10""#,
                2 * hw,
                2 * hh
            ),
        };
        let (stroke, width) = match &s.kind {
            StateKind::Succeed => ("#2e7d32", "2.5"),
            StateKind::Fail(_) => ("#c62828", "2.5"),
            StateKind::CompensationTrigger { .. } => ("#ef6c00", "2"),
            // Compensators in the compensation colour, so they pair up with their dotted links.
            k if k.task().is_some_and(|t| t.for_compensation) => (COMP, "1.5"),
            _ => (INK, "1.5"),
        };
        let fill = mark.map_or(PLAIN, |m| status_fill(m.0));
        writeln!(
            out,
            r#"{shape} fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>"#
        )?;
        let detail = detail(s);
        let (name, name_y) = (esc(name), if detail.is_some() { cy - 3 } else { cy + 5 });
        writeln!(
            out,
            r#"<text x="{cx}" y="{name_y}" text-anchor="middle" fill="{INK}">{name}</text>"#
        )?;
        if let Some(detail) = detail.as_deref().map(esc) {
            let y = cy + 13;
            writeln!(
                out,
                r##"<text x="{cx}" y="{y}" text-anchor="middle" font-size="11" fill="#546e7a">{detail}</text>"##
            )?;
        }
        if mark.is_some_and(|m| m.2) {
            let (bx, by, ty) = (right - 4, top + 2, top + 6);
            writeln!(
                out,
                r##"<circle cx="{bx}" cy="{by}" r="9" fill="{COMP}"/><text x="{bx}" y="{ty}" text-anchor="middle" font-size="12" fill="#ffffff">↺</text>"##
            )?;
        }
        out.push_str("</g>\n");
        Ok(())
    }
}

fn edge_path(
    out: &mut String,
    d: &str,
    taken: bool,
    color: &str,
    dash: Option<&str>,
) -> fmt::Result {
    let (color, width, marker) = if taken {
        (TAKEN, "3", "ferrata-saga-arrow-taken")
    } else {
        (color, "1.5", "ferrata-saga-arrow")
    };
    let dash = dash
        .map(|d| format!(r#" stroke-dasharray="{d}""#))
        .unwrap_or_default();
    writeln!(
        out,
        r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}"{dash} marker-end="url(#{marker})"/>"#
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

/// Text and attribute values alike: the five XML specials, and the control characters XML 1.0
/// cannot carry at all (even as references) replaced, so no definition can break the document.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
