//! Evaluator of parsed saga expressions over `serde_json::Value`s: SpEL's semantics where the
//! language has them, strict types everywhere else (no implicit conversions).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::parser::{ArithOp, CmpOp, IndexArg, Kind, MapKey, Node, Span, Step, StepKind};

type EResult<T> = Result<T, String>;

static NULL: Value = Value::Null;

const METHODS: &str = "size(), length(), isEmpty(), contains(x), containsKey(key), get(key), \
     equals(x), toString(), startsWith(s), endsWith(s), toUpperCase(), toLowerCase()";

/// Values borrow from the root or the expression where they can: navigating a large context
/// map should not copy it.
pub(super) struct Evaluator<'a> {
    source: &'a str,
    root: &'a Value,
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(value: &Value) -> Option<Num> {
        let Value::Number(number) = value else {
            return None;
        };
        // Integers beyond i64 (only u64 ones exist in serde_json) are taken as decimals.
        Some(match number.as_i64() {
            Some(int) => Num::Int(int),
            None => Num::Float(number.as_f64()?),
        })
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(int) => int as f64,
            Num::Float(float) => float,
        }
    }
}

/// Compares exactly, also across integers and decimals (no rounding of large integers).
fn compare_numbers(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(a), Num::Float(b)) => compare_int_float(a, b),
        (Num::Float(a), Num::Int(b)) => compare_int_float(b, a).map(Ordering::reverse),
    }
}

fn compare_int_float(int: i64, float: f64) -> Option<Ordering> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let whole = float.trunc();
    // In range and integral, so the conversion is exact.
    let whole_int = whole as i64;
    Some(match int.cmp(&whole_int) {
        Ordering::Equal => whole.partial_cmp(&float)?,
        other => other,
    })
}

/// Equality of the language: numbers by value, everything else structurally (with numbers
/// inside arrays and objects compared by value too); different types are never equal.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (Num::of(a), Num::of(b)) {
            (Some(x), Some(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| equal(x, y)))
        }
        _ => a == b,
    }
}

/// A value as messages show it: its type and, when short, the value itself.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                format!("the string {shown:?}…")
            } else {
                format!("the string {s:?}")
            }
        }
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(o) => format!("an object with {} keys", o.len()),
    }
}

/// Text of a value in string concatenation and `toString()`: strings as they are, everything
/// else as JSON.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The child of `parent` that `pick` selects, borrowed when the parent is.
fn child<'a>(
    parent: Cow<'a, Value>,
    pick: impl for<'v> Fn(&'v Value) -> Option<&'v Value>,
) -> Option<Cow<'a, Value>> {
    match parent {
        Cow::Borrowed(value) => pick(value).map(Cow::Borrowed),
        Cow::Owned(value) => pick(&value).cloned().map(Cow::Owned),
    }
}

fn index_of(value: &Value) -> Option<i64> {
    value.as_i64()
}

fn out_of_bounds(index: i64, receiver: &str, len: usize, what: &str) -> String {
    format!("index {index} is out of bounds for {receiver} ({what} of length {len})")
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(source: &'a str, root: &'a Value) -> Self {
        Evaluator { source, root }
    }

    fn text(&self, span: Span) -> String {
        let text = self.source.get(span.start..span.end).unwrap_or("?").trim();
        format!("`{text}`")
    }

    /// Names the receiver of a chain step: the source from the chain's start to the step.
    fn receiver(&self, chain_start: usize, at: usize) -> String {
        match self.source.get(chain_start..at).map(str::trim) {
            None | Some("") => "the root object".into(),
            Some(text) => format!("`{text}`"),
        }
    }

    /// Dispatches only: the work is in one function per kind, so that the frame this
    /// recursion goes through stays small (deep expressions must not exhaust the stack).
    pub(super) fn eval(&self, node: &'a Node) -> EResult<Cow<'a, Value>> {
        match &node.kind {
            Kind::Literal(value) => Ok(Cow::Borrowed(value)),
            Kind::Root => Ok(Cow::Borrowed(self.root)),
            Kind::Chain { start, steps } => self.chain(start, steps),
            Kind::List(items) => self.list(items),
            Kind::Map(entries) => self.map(entries),
            Kind::Not(operand) => Ok(bool_value(!self.boolean(operand, "`!`")?)),
            Kind::Neg(operand) => self.negate(operand),
            Kind::Pos(operand) => self.plus(operand),
            Kind::And(operands) => self.all(operands),
            Kind::Or(operands) => self.any(operands),
            Kind::Compare { op, left, right } => self.compare(*op, left, right),
            Kind::Arith { first, rest } => self.arithmetic(first, rest),
            Kind::Ternary {
                cond,
                then,
                otherwise,
            } => {
                if self.boolean(cond, "the ternary `?`")? {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            Kind::Elvis { value, fallback } => self.elvis(value, fallback),
        }
    }

    fn chain(&self, start: &'a Node, steps: &'a [Step]) -> EResult<Cow<'a, Value>> {
        let mut current = self.eval(start)?;
        for step in steps {
            current = self.step(current, step, start.span.start)?;
        }
        Ok(current)
    }

    fn list(&self, items: &'a [Node]) -> EResult<Cow<'a, Value>> {
        let mut list = Vec::with_capacity(items.len());
        for item in items {
            list.push(self.eval(item)?.into_owned());
        }
        Ok(Cow::Owned(Value::Array(list)))
    }

    fn map(&self, entries: &'a [(MapKey, Node)]) -> EResult<Cow<'a, Value>> {
        let mut map = Map::new();
        for (key, value) in entries {
            let key = match key {
                MapKey::Name(name) => name.clone(),
                MapKey::Expr(node) => match self.eval(node)?.as_ref() {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err(self.bad_map_key(node, other)),
                },
            };
            map.insert(key, self.eval(value)?.into_owned());
        }
        Ok(Cow::Owned(Value::Object(map)))
    }

    #[cold]
    fn bad_map_key(&self, node: &Node, key: &Value) -> String {
        format!(
            "an inline map key must be a string or a number, but {} is {}",
            self.text(node.span),
            describe(key)
        )
    }

    fn negate(&self, operand: &'a Node) -> EResult<Cow<'a, Value>> {
        let value = self.eval(operand)?;
        match Num::of(&value) {
            Some(Num::Int(int)) => match int.checked_neg() {
                Some(negated) => Ok(Cow::Owned(Value::from(negated))),
                None => Err(format!("integer overflow: -({int})")),
            },
            Some(Num::Float(float)) => Ok(Cow::Owned(Value::from(-float))),
            None => Err(self.not_a_number("-", operand, &value)),
        }
    }

    fn plus(&self, operand: &'a Node) -> EResult<Cow<'a, Value>> {
        let value = self.eval(operand)?;
        if value.is_number() {
            Ok(value)
        } else {
            Err(self.not_a_number("+", operand, &value))
        }
    }

    #[cold]
    fn not_a_number(&self, operator: &str, operand: &Node, value: &Value) -> String {
        format!(
            "unary `{operator}` needs a number, but {} is {}",
            self.text(operand.span),
            describe(value)
        )
    }

    fn all(&self, operands: &'a [Node]) -> EResult<Cow<'a, Value>> {
        for operand in operands {
            if !self.boolean(operand, "`&&`")? {
                return Ok(bool_value(false));
            }
        }
        Ok(bool_value(true))
    }

    fn any(&self, operands: &'a [Node]) -> EResult<Cow<'a, Value>> {
        for operand in operands {
            if self.boolean(operand, "`||`")? {
                return Ok(bool_value(true));
            }
        }
        Ok(bool_value(false))
    }

    fn arithmetic(&self, first: &'a Node, rest: &'a [(ArithOp, Node)]) -> EResult<Cow<'a, Value>> {
        let mut acc = self.eval(first)?;
        for (op, operand) in rest {
            let right = self.eval(operand)?;
            acc = Cow::Owned(arith(*op, &acc, &right)?);
        }
        Ok(acc)
    }

    fn elvis(&self, value: &'a Node, fallback: &'a Node) -> EResult<Cow<'a, Value>> {
        let value = self.eval(value)?;
        // SpEL's Elvis takes an empty string as missing too.
        match value.as_ref() {
            Value::Null => self.eval(fallback),
            Value::String(s) if s.is_empty() => self.eval(fallback),
            _ => Ok(value),
        }
    }

    fn boolean(&self, node: &'a Node, operator: &str) -> EResult<bool> {
        match self.eval(node)?.as_ref() {
            Value::Bool(b) => Ok(*b),
            other => Err(self.not_a_boolean(operator, node, other)),
        }
    }

    #[cold]
    fn not_a_boolean(&self, operator: &str, node: &Node, value: &Value) -> String {
        format!(
            "{operator} needs a boolean, but {} is {}",
            self.text(node.span),
            describe(value)
        )
    }

    fn compare(&self, op: CmpOp, left: &'a Node, right: &'a Node) -> EResult<Cow<'a, Value>> {
        let a = self.eval(left)?;
        let b = self.eval(right)?;
        let ordering = match op {
            CmpOp::Eq => return Ok(bool_value(equal(&a, &b))),
            CmpOp::Ne => return Ok(bool_value(!equal(&a, &b))),
            _ => compare_values(&a, &b),
        };
        let Some(ordering) = ordering else {
            return Err(self.unordered(op, left, &a, right, &b));
        };
        Ok(bool_value(match op {
            CmpOp::Lt => ordering.is_lt(),
            CmpOp::Le => ordering.is_le(),
            CmpOp::Gt => ordering.is_gt(),
            CmpOp::Ge => ordering.is_ge(),
            CmpOp::Eq | CmpOp::Ne => ordering.is_eq(),
        }))
    }

    #[cold]
    fn unordered(&self, op: CmpOp, left: &Node, a: &Value, right: &Node, b: &Value) -> String {
        format!(
            "`{}` orders two numbers or two strings, but {} is {} and {} is {}",
            op.symbol(),
            self.text(left.span),
            describe(a),
            self.text(right.span),
            describe(b)
        )
    }

    fn step(
        &self,
        current: Cow<'a, Value>,
        step: &'a Step,
        chain_start: usize,
    ) -> EResult<Cow<'a, Value>> {
        let receiver = || self.receiver(chain_start, step.at);
        if current.is_null() {
            if step.safe {
                return Ok(Cow::Borrowed(&NULL));
            }
            return Err(null_receiver(&step.kind, &receiver()));
        }
        match &step.kind {
            StepKind::Property(name) => property(current, name, &receiver()),
            StepKind::Index(IndexArg::Name(name)) if current.is_object() => {
                Ok(child(current, |v| v.get(name.as_str()).or(Some(&NULL))).unwrap_or_default())
            }
            StepKind::Index(IndexArg::Name(name)) => {
                // As in SpEL, a bare name indexing a list is a property of the root.
                let index = property(Cow::Borrowed(self.root), name, "the root object")?;
                index_into(current, &index, &receiver())
            }
            StepKind::Index(IndexArg::Expr(node)) => {
                let index = self.eval(node)?;
                index_into(current, &index, &receiver())
            }
            StepKind::Method { name, args } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(self.eval(arg)?);
                }
                method(name, current, &values, &receiver())
            }
        }
    }
}

fn bool_value<'a>(b: bool) -> Cow<'a, Value> {
    Cow::Owned(Value::Bool(b))
}

/// The order of two numbers or two strings; None for anything else.
fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => compare_numbers(Num::of(a)?, Num::of(b)?),
    }
}

#[cold]
fn null_receiver(step: &StepKind, receiver: &str) -> String {
    match step {
        StepKind::Property(name) => format!(
            "{receiver} is null: cannot read its property `{name}` (use `?.` to get null instead)"
        ),
        StepKind::Index(_) => {
            format!("{receiver} is null: cannot index it (use `?.[...]` to get null instead)")
        }
        StepKind::Method { name, .. } => {
            format!("{receiver} is null: cannot call {name}() on it (use `?.` to get null instead)")
        }
    }
}

fn property<'a>(current: Cow<'a, Value>, name: &str, receiver: &str) -> EResult<Cow<'a, Value>> {
    match current.as_ref() {
        Value::Object(_) => Ok(child(current, |v| v.get(name).or(Some(&NULL))).unwrap_or_default()),
        Value::Null => Err(format!(
            "{receiver} is null: cannot read its property `{name}`"
        )),
        other => {
            let hint = if matches!(name, "size" | "length") {
                format!("; call {name}() for its length")
            } else {
                String::new()
            };
            Err(format!(
                "{receiver} is {}, which has no property `{name}`{hint}",
                describe(other)
            ))
        }
    }
}

fn index_into<'a>(
    current: Cow<'a, Value>,
    index: &Value,
    receiver: &str,
) -> EResult<Cow<'a, Value>> {
    match current.as_ref() {
        Value::Object(_) => match index {
            Value::String(key) => {
                Ok(child(current, |v| v.get(key.as_str()).or(Some(&NULL))).unwrap_or_default())
            }
            other => Err(format!(
                "{receiver} is an object: index it with a string key, not {}",
                describe(other)
            )),
        },
        Value::Array(items) => {
            let len = items.len();
            let Some(i) = index_of(index) else {
                return Err(format!(
                    "{receiver} is an array: index it with an integer, not {}",
                    describe(index)
                ));
            };
            let position = usize::try_from(i).ok();
            position
                .and_then(|p| child(current, |v| v.get(p)))
                .ok_or_else(|| out_of_bounds(i, receiver, len, "an array"))
        }
        Value::String(s) => {
            let Some(i) = index_of(index) else {
                return Err(format!(
                    "{receiver} is a string: index it with an integer, not {}",
                    describe(index)
                ));
            };
            usize::try_from(i)
                .ok()
                .and_then(|p| s.chars().nth(p))
                .map(|c| Cow::Owned(Value::String(c.to_string())))
                .ok_or_else(|| out_of_bounds(i, receiver, s.chars().count(), "a string"))
        }
        other => Err(format!(
            "{receiver} is {}, which cannot be indexed",
            describe(other)
        )),
    }
}

fn string_arg<'v>(name: &str, arg: Option<&'v Cow<'_, Value>>) -> EResult<&'v str> {
    match arg.map(|a| a.as_ref()) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "{name}() needs a string argument, not {}",
            describe(other)
        )),
        None => Err(format!("{name}() needs an argument")),
    }
}

fn method<'a>(
    name: &str,
    receiver_value: Cow<'a, Value>,
    args: &[Cow<'a, Value>],
    receiver: &str,
) -> EResult<Cow<'a, Value>> {
    let arity = match name {
        "size" | "length" | "isEmpty" | "toString" | "toUpperCase" | "toLowerCase" => 0,
        "contains" | "containsKey" | "get" | "equals" | "startsWith" | "endsWith" => 1,
        _ => return Err(format!("unknown method `{name}()`; supported: {METHODS}")),
    };
    if args.len() != arity {
        let plural = if arity == 1 { "argument" } else { "arguments" };
        return Err(format!(
            "{name}() takes {arity} {plural}, got {}",
            args.len()
        ));
    }
    let arg = args.first();
    let owned = |value: Value| Ok(Cow::Owned(value));
    match (name, receiver_value.as_ref()) {
        ("size", Value::Array(a)) => owned(Value::from(a.len())),
        ("size", Value::Object(o)) => owned(Value::from(o.len())),
        ("size" | "length", Value::String(s)) => owned(Value::from(s.chars().count())),
        ("isEmpty", Value::Array(a)) => owned(Value::Bool(a.is_empty())),
        ("isEmpty", Value::Object(o)) => owned(Value::Bool(o.is_empty())),
        ("isEmpty", Value::String(s)) => owned(Value::Bool(s.is_empty())),
        ("contains", Value::Array(a)) => {
            let needle = arg.map_or(&NULL, |a| a.as_ref());
            owned(Value::Bool(a.iter().any(|item| equal(item, needle))))
        }
        ("contains", Value::String(s)) => owned(Value::Bool(s.contains(string_arg(name, arg)?))),
        ("contains" | "containsKey", Value::Object(o)) => {
            owned(Value::Bool(o.contains_key(string_arg(name, arg)?)))
        }
        ("get", Value::Object(_)) => {
            let key = string_arg(name, arg)?;
            Ok(child(receiver_value, |v| v.get(key).or(Some(&NULL))).unwrap_or_default())
        }
        ("get", Value::Array(a)) => {
            let len = a.len();
            let index = arg.map_or(&NULL, |a| a.as_ref());
            let Some(i) = index_of(index) else {
                return Err(format!(
                    "get() on an array needs an integer index, not {}",
                    describe(index)
                ));
            };
            usize::try_from(i)
                .ok()
                .and_then(|p| child(receiver_value, |v| v.get(p)))
                .ok_or_else(|| out_of_bounds(i, receiver, len, "an array"))
        }
        ("equals", value) => owned(Value::Bool(equal(value, arg.map_or(&NULL, |a| a.as_ref())))),
        ("toString", value) => owned(Value::String(render(value))),
        ("startsWith", Value::String(s)) => {
            owned(Value::Bool(s.starts_with(string_arg(name, arg)?)))
        }
        ("endsWith", Value::String(s)) => owned(Value::Bool(s.ends_with(string_arg(name, arg)?))),
        ("toUpperCase", Value::String(s)) => owned(Value::String(s.to_uppercase())),
        ("toLowerCase", Value::String(s)) => owned(Value::String(s.to_lowercase())),
        (_, other) => Err(format!(
            "{name}() does not apply to {receiver}, which is {}",
            describe(other)
        )),
    }
}

fn arith(op: ArithOp, a: &Value, b: &Value) -> EResult<Value> {
    if op == ArithOp::Add && (a.is_string() || b.is_string()) {
        let mut text = render(a);
        text.push_str(&render(b));
        return Ok(Value::String(text));
    }
    let (Some(x), Some(y)) = (Num::of(a), Num::of(b)) else {
        let accepted = if op == ArithOp::Add {
            "numbers (or a string, to concatenate)"
        } else {
            "numbers"
        };
        return Err(format!(
            "`{}` needs {accepted}, got {} and {}",
            op.symbol(),
            describe(a),
            describe(b)
        ));
    };
    let overflow = |x: i64, y: i64| format!("integer overflow: {x} {} {y}", op.symbol());
    match (x, y) {
        (Num::Int(x), Num::Int(y)) => {
            let result = match op {
                ArithOp::Add => x.checked_add(y),
                ArithOp::Sub => x.checked_sub(y),
                ArithOp::Mul => x.checked_mul(y),
                ArithOp::Div if y == 0 => return Err(format!("division by zero: {x} / 0")),
                ArithOp::Div => x.checked_div(y),
                ArithOp::Rem if y == 0 => return Err(format!("modulo by zero: {x} % 0")),
                // Only i64::MIN % -1 overflows in Rust; Java gives 0.
                ArithOp::Rem => Some(x.checked_rem(y).unwrap_or(0)),
            };
            result.map(Value::from).ok_or_else(|| overflow(x, y))
        }
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            let result = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if y == 0.0 => return Err(format!("division by zero: {x} / {y}")),
                ArithOp::Div => x / y,
                ArithOp::Rem if y == 0.0 => return Err(format!("modulo by zero: {x} % {y}")),
                ArithOp::Rem => x % y,
            };
            Number::from_f64(result).map(Value::Number).ok_or_else(|| {
                format!(
                    "{x} {} {y} is out of the range of a decimal number",
                    op.symbol()
                )
            })
        }
    }
}
