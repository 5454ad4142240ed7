//! Recursive-descent parser of the saga expression language, with SpEL's operator precedence.
//! Every syntactic nesting level is counted so hostile input fails with an error, not a stack
//! overflow; same-precedence operator chains are kept flat for the same reason.

use serde_json::{Number, Value};

use super::lexer::{Tok, Token};

/// How deeply parentheses, brackets, braces, argument lists, ternary branches and unary
/// operators may nest.
pub(super) const MAX_DEPTH: usize = 64;

/// Byte range of the source a node was parsed from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub(super) kind: Kind,
    pub(super) span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Literal(Value),
    Root,
    /// A value followed by property, index and method steps, evaluated left to right.
    Chain {
        start: Box<Node>,
        steps: Vec<Step>,
    },
    List(Vec<Node>),
    Map(Vec<(MapKey, Node)>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Pos(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Compare {
        op: CmpOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Arith {
        first: Box<Node>,
        rest: Vec<(ArithOp, Node)>,
    },
    Ternary {
        cond: Box<Node>,
        then: Box<Node>,
        otherwise: Box<Node>,
    },
    Elvis {
        value: Box<Node>,
        fallback: Box<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    /// Where the step begins: the source before it (from the chain's start) is its receiver.
    pub(super) at: usize,
    /// Reached with `?.`: a null receiver gives null instead of an error.
    pub(super) safe: bool,
    pub(super) kind: StepKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum StepKind {
    Property(String),
    Index(IndexArg),
    Method { name: String, args: Vec<Node> },
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum IndexArg {
    /// `[name]`: the key `name` of an object (as SpEL does for maps), or the root's property
    /// `name` as the index of an array or string.
    Name(String),
    Expr(Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum MapKey {
    Name(String),
    Expr(Node),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

/// A parse error: the byte offset and what is wrong there.
pub(super) type ParseError = (usize, String);
type PResult<T> = Result<T, ParseError>;

/// Textual operators (case-insensitive); as operands they would be ambiguous, so they are
/// reserved except after `.`.
const WORD_OPERATORS: [&str; 11] = [
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "div", "mod",
];

fn is_reserved(name: &str) -> bool {
    ["true", "false", "null"]
        .iter()
        .chain(WORD_OPERATORS.iter())
        .any(|word| name.eq_ignore_ascii_case(word))
}

/// A binary operator while [`Parser::binary`] resolves precedence.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BinOp {
    Or,
    And,
    Cmp(CmpOp),
    Arith(ArithOp),
}

impl BinOp {
    /// SpEL's precedence: higher binds tighter.
    fn level(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Cmp(_) => 3,
            BinOp::Arith(ArithOp::Add | ArithOp::Sub) => 4,
            BinOp::Arith(_) => 5,
        }
    }
}

/// Applies the top operator to the two top operands. Chains of one precedence level stay flat
/// (one node with a list), which is the same left-to-right evaluation as nesting but keeps the
/// tree shallow however long the chain is.
fn reduce(operands: &mut Vec<Node>, ops: &mut Vec<BinOp>) {
    let (Some(op), Some(right)) = (ops.pop(), operands.pop()) else {
        return;
    };
    let Some(left) = operands.pop() else {
        operands.push(right);
        return;
    };
    let span = Span {
        start: left.span.start,
        end: right.span.end,
    };
    let kind = match (op, left.kind) {
        (BinOp::Or, Kind::Or(mut items)) => {
            items.push(right);
            Kind::Or(items)
        }
        (BinOp::And, Kind::And(mut items)) => {
            items.push(right);
            Kind::And(items)
        }
        (BinOp::Arith(arith), Kind::Arith { first, mut rest })
            if rest
                .first()
                .is_some_and(|(o, _)| BinOp::Arith(*o).level() == op.level()) =>
        {
            rest.push((arith, right));
            Kind::Arith { first, rest }
        }
        (op, kind) => {
            let left = Node {
                kind,
                span: left.span,
            };
            match op {
                BinOp::Or => Kind::Or(vec![left, right]),
                BinOp::And => Kind::And(vec![left, right]),
                BinOp::Cmp(cmp) => Kind::Compare {
                    op: cmp,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                BinOp::Arith(arith) => Kind::Arith {
                    first: Box::new(left),
                    rest: vec![(arith, right)],
                },
            }
        }
    };
    operands.push(Node { kind, span });
}

fn is_word(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Ident(name)) if name.eq_ignore_ascii_case(word))
}

pub(super) fn parse(tokens: Vec<Token>, source_len: usize) -> PResult<Node> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        source_len,
    };
    if parser.tokens.is_empty() {
        return Err((0, "the expression is empty".into()));
    }
    let node = parser.expression()?;
    if let Some(token) = parser.peek_token() {
        let message = match &token.tok {
            Tok::Ident(name)
                if ["instanceof", "matches", "between"]
                    .iter()
                    .any(|op| name.eq_ignore_ascii_case(op)) =>
            {
                format!("the {name} operator is not supported")
            }
            Tok::Colon => "unexpected `:` (a ternary is `condition ? a : b`)".into(),
            tok => format!(
                "unexpected {} after the end of the expression",
                describe(tok)
            ),
        };
        return Err((token.start, message));
    }
    Ok(node)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    source_len: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Int(value) => format!("number {value}"),
        Tok::Float(value) => format!("number {value}"),
        Tok::Str(_) => "string".into(),
        Tok::Ident(name) => format!("`{name}`"),
        Tok::Root => "#root".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::Dot => "`.`".into(),
        Tok::SafeDot => "`?.`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Colon => "`:`".into(),
        Tok::Question => "`?`".into(),
        Tok::Elvis => "`?:`".into(),
        Tok::EqEq => "`==`".into(),
        Tok::Ne => "`!=`".into(),
        Tok::Lt => "`<`".into(),
        Tok::Le => "`<=`".into(),
        Tok::Gt => "`>`".into(),
        Tok::Ge => "`>=`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
        Tok::Star => "`*`".into(),
        Tok::Slash => "`/`".into(),
        Tok::Percent => "`%`".into(),
        Tok::Bang => "`!`".into(),
        Tok::AndAnd => "`&&`".into(),
        Tok::OrOr => "`||`".into(),
    }
}

impl Parser {
    fn peek_token(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn peek(&self) -> Option<&Tok> {
        self.peek_token().map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|t| &t.tok)
    }

    /// Offset of the next token (the end of the source when there is none).
    fn here(&self) -> usize {
        self.peek_token().map_or(self.source_len, |t| t.start)
    }

    /// End of the last consumed token.
    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|p| self.tokens.get(p))
            .map_or(0, |t| t.end)
    }

    fn span_from(&self, start: usize) -> Span {
        Span {
            start,
            end: self.prev_end().max(start),
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> PResult<()> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        match self.peek() {
            Some(tok) => (
                self.here(),
                format!("expected {expected}, found {}", describe(tok)),
            ),
            None => (
                self.here(),
                format!("expected {expected}, found the end of the expression"),
            ),
        }
    }

    /// Goes one nesting level deeper, refusing to go past [`MAX_DEPTH`]. Callers do not undo
    /// it on an error: the parse is over then.
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    #[cold]
    fn too_deep(&self) -> ParseError {
        (
            self.here(),
            format!("the expression nests deeper than {MAX_DEPTH} levels"),
        )
    }

    /// An expression one nesting level deeper.
    fn nested_expression(&mut self) -> PResult<Node> {
        self.enter()?;
        let node = self.expression()?;
        self.leave();
        Ok(node)
    }

    /// expression := binary ( '?' expression ':' expression | '?:' expression )?
    fn expression(&mut self) -> PResult<Node> {
        let value = self.binary()?;
        let start = value.span.start;
        let kind = if self.eat(&Tok::Question) {
            let then = self.nested_expression()?;
            self.expect(&Tok::Colon, "`:` of the ternary")?;
            let otherwise = self.nested_expression()?;
            Kind::Ternary {
                cond: Box::new(value),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            }
        } else if self.eat(&Tok::Elvis) {
            let fallback = self.nested_expression()?;
            Kind::Elvis {
                value: Box::new(value),
                fallback: Box::new(fallback),
            }
        } else {
            return Ok(value);
        };
        Ok(Node {
            kind,
            span: self.span_from(start),
        })
    }

    fn binary_op(&self) -> Option<BinOp> {
        let op = match self.peek()? {
            Tok::OrOr => BinOp::Or,
            Tok::AndAnd => BinOp::And,
            Tok::EqEq => BinOp::Cmp(CmpOp::Eq),
            Tok::Ne => BinOp::Cmp(CmpOp::Ne),
            Tok::Lt => BinOp::Cmp(CmpOp::Lt),
            Tok::Le => BinOp::Cmp(CmpOp::Le),
            Tok::Gt => BinOp::Cmp(CmpOp::Gt),
            Tok::Ge => BinOp::Cmp(CmpOp::Ge),
            Tok::Plus => BinOp::Arith(ArithOp::Add),
            Tok::Minus => BinOp::Arith(ArithOp::Sub),
            Tok::Star => BinOp::Arith(ArithOp::Mul),
            Tok::Slash => BinOp::Arith(ArithOp::Div),
            Tok::Percent => BinOp::Arith(ArithOp::Rem),
            Tok::Ident(name) => match name.to_ascii_lowercase().as_str() {
                "or" => BinOp::Or,
                "and" => BinOp::And,
                "eq" => BinOp::Cmp(CmpOp::Eq),
                "ne" => BinOp::Cmp(CmpOp::Ne),
                "lt" => BinOp::Cmp(CmpOp::Lt),
                "le" => BinOp::Cmp(CmpOp::Le),
                "gt" => BinOp::Cmp(CmpOp::Gt),
                "ge" => BinOp::Cmp(CmpOp::Ge),
                "div" => BinOp::Arith(ArithOp::Div),
                "mod" => BinOp::Arith(ArithOp::Rem),
                _ => return None,
            },
            _ => return None,
        };
        Some(op)
    }

    /// binary := unary { binop unary }, precedence resolved with an explicit operator stack
    /// rather than one recursive function per precedence level, which keeps the stack used per
    /// nesting level small.
    fn binary(&mut self) -> PResult<Node> {
        let mut operands = vec![self.unary()?];
        let mut ops: Vec<BinOp> = Vec::new();
        // A comparison since the last `&&`/`||`: SpEL allows one comparison per operand.
        let mut compared = false;
        while let Some(op) = self.binary_op() {
            match op {
                BinOp::Cmp(_) if compared => return Err(self.chained_comparison()),
                BinOp::Cmp(_) => compared = true,
                BinOp::Or | BinOp::And => compared = false,
                BinOp::Arith(_) => {}
            }
            self.pos += 1;
            while ops.last().is_some_and(|top| top.level() >= op.level()) {
                reduce(&mut operands, &mut ops);
            }
            ops.push(op);
            operands.push(self.unary()?);
        }
        while !ops.is_empty() {
            reduce(&mut operands, &mut ops);
        }
        operands
            .pop()
            .ok_or_else(|| (self.here(), "internal error: no operand".to_owned()))
    }

    #[cold]
    fn chained_comparison(&self) -> ParseError {
        (
            self.here(),
            "comparisons do not chain (a == b == c); add parentheses".into(),
        )
    }

    fn unary(&mut self) -> PResult<Node> {
        let start = self.here();
        let make: fn(Box<Node>) -> Kind = match self.peek() {
            Some(Tok::Bang) => Kind::Not,
            tok if is_word(tok, "not") => Kind::Not,
            Some(Tok::Minus) if self.peek_at(1) == Some(&Tok::Int(1 << 63)) => {
                return self.min_integer(start);
            }
            Some(Tok::Minus) => Kind::Neg,
            Some(Tok::Plus) => Kind::Pos,
            _ => return self.postfix(),
        };
        self.pos += 1;
        self.enter()?;
        let operand = self.unary()?;
        self.leave();
        Ok(Node {
            kind: make(Box::new(operand)),
            span: self.span_from(start),
        })
    }

    /// i64::MIN has no positive literal: `-9223372036854775808` is taken as one value (unless
    /// a step follows, which would bind tighter than the minus).
    fn min_integer(&mut self, start: usize) -> PResult<Node> {
        if matches!(
            self.peek_at(2),
            Some(Tok::Dot | Tok::SafeDot | Tok::LBracket)
        ) {
            self.pos += 1;
            return Err(self.unexpected("an integer up to 9223372036854775807"));
        }
        self.pos += 2;
        Ok(Node {
            kind: Kind::Literal(Value::from(i64::MIN)),
            span: self.span_from(start),
        })
    }

    fn postfix(&mut self) -> PResult<Node> {
        let start = self.here();
        let first = self.primary()?;
        let mut steps = Vec::new();
        loop {
            let at = self.here();
            let step = match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    self.dotted(at, false)?
                }
                Some(Tok::SafeDot) if self.peek_at(1) == Some(&Tok::LBracket) => {
                    self.pos += 2;
                    Step {
                        at,
                        safe: true,
                        kind: StepKind::Index(self.index()?),
                    }
                }
                Some(Tok::SafeDot) => {
                    self.pos += 1;
                    self.dotted(at, true)?
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    Step {
                        at,
                        safe: false,
                        kind: StepKind::Index(self.index()?),
                    }
                }
                _ => break,
            };
            steps.push(step);
        }
        if steps.is_empty() {
            return Ok(first);
        }
        Ok(Node {
            kind: Kind::Chain {
                start: Box::new(first),
                steps,
            },
            span: self.span_from(start),
        })
    }

    /// The step after `.` or `?.`: a property or a method call.
    fn dotted(&mut self, at: usize, safe: bool) -> PResult<Step> {
        let selection = match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Question | Tok::Bang), Some(Tok::LBracket)) => true,
            (Some(Tok::Ident(name)), Some(Tok::LBracket)) => name == "$",
            _ => false,
        };
        if selection {
            return Err(self.selection());
        }
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return Err(self.unexpected("a property or method name"));
        };
        self.pos += 1;
        let kind = if self.peek() == Some(&Tok::LParen) {
            StepKind::Method {
                name,
                args: self.arguments()?,
            }
        } else {
            StepKind::Property(name)
        };
        Ok(Step { at, safe, kind })
    }

    #[cold]
    fn selection(&self) -> ParseError {
        (
            self.here(),
            "collection selection and projection (.?[...], .![...], .^[...], .$[...]) are not supported"
                .into(),
        )
    }

    /// `( expression, ... )`, the opening parenthesis not yet consumed.
    fn arguments(&mut self) -> PResult<Vec<Node>> {
        self.expect(&Tok::LParen, "`(`")?;
        self.enter()?;
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                args.push(self.expression()?);
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(&Tok::Comma, "`,` or `)`")?;
            }
        }
        self.leave();
        Ok(args)
    }

    /// The inside of `[...]`, the opening bracket consumed.
    fn index(&mut self) -> PResult<IndexArg> {
        self.enter()?;
        let name = match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Ident(name)), Some(Tok::RBracket)) if !is_reserved(name) => {
                Some(name.clone())
            }
            _ => None,
        };
        let arg = match name {
            Some(name) => {
                self.pos += 1;
                IndexArg::Name(name)
            }
            None => IndexArg::Expr(Box::new(self.expression()?)),
        };
        self.expect(&Tok::RBracket, "`]`")?;
        self.leave();
        Ok(arg)
    }

    /// A step applied to the implicit root: bare `name`, `[key]` and `method()`.
    fn root_step(&self, at: usize, kind: StepKind) -> Node {
        let root = Node {
            kind: Kind::Root,
            span: Span { start: at, end: at },
        };
        Node {
            kind: Kind::Chain {
                start: Box::new(root),
                steps: vec![Step {
                    at,
                    safe: false,
                    kind,
                }],
            },
            span: self.span_from(at),
        }
    }

    /// Dispatches only, like the other functions every nesting level passes through: their
    /// frames stay small so that the deepest accepted expression needs little stack.
    fn primary(&mut self) -> PResult<Node> {
        let start = self.here();
        match self.peek() {
            Some(Tok::LParen) => self.parenthesized(start),
            Some(Tok::LBracket) => self.root_index(start),
            Some(Tok::LBrace) => self.braces(start),
            Some(Tok::Ident(_)) => self.identifier(start),
            Some(Tok::Root) => {
                self.pos += 1;
                Ok(Node {
                    kind: Kind::Root,
                    span: self.span_from(start),
                })
            }
            _ => self.literal(start),
        }
    }

    fn parenthesized(&mut self, start: usize) -> PResult<Node> {
        self.pos += 1;
        let mut inner = self.nested_expression()?;
        self.expect(&Tok::RParen, "`)`")?;
        // The span takes the parentheses in, for messages that quote it.
        inner.span = self.span_from(start);
        Ok(inner)
    }

    fn root_index(&mut self, start: usize) -> PResult<Node> {
        self.pos += 1;
        let index = self.index()?;
        Ok(self.root_step(start, StepKind::Index(index)))
    }

    fn braces(&mut self, start: usize) -> PResult<Node> {
        self.pos += 1;
        self.enter()?;
        let node = self.inline(start)?;
        self.leave();
        Ok(node)
    }

    fn literal(&mut self, start: usize) -> PResult<Node> {
        let Some(tok) = self.peek().cloned() else {
            return Err(self.unexpected("a value"));
        };
        let value = match tok {
            Tok::Int(value) => match i64::try_from(value) {
                Ok(value) => Value::from(value),
                Err(_) => {
                    return Err((
                        start,
                        format!("integer {value} is out of range (64-bit signed integers)"),
                    ));
                }
            },
            Tok::Float(value) => match Number::from_f64(value) {
                Some(number) => Value::Number(number),
                None => return Err((start, format!("number {value} is out of range"))),
            },
            Tok::Str(value) => Value::String(value),
            _ => return Err(self.unexpected("a value")),
        };
        self.pos += 1;
        Ok(Node {
            kind: Kind::Literal(value),
            span: self.span_from(start),
        })
    }

    fn identifier(&mut self, start: usize) -> PResult<Node> {
        let Some(Tok::Ident(name)) = self.peek().cloned() else {
            return Err(self.unexpected("a name"));
        };
        let lower = name.to_ascii_lowercase();
        let value = match lower.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            "null" => Some(Value::Null),
            _ => None,
        };
        if let Some(value) = value {
            self.pos += 1;
            return Ok(Node {
                kind: Kind::Literal(value),
                span: self.span_from(start),
            });
        }
        if WORD_OPERATORS.contains(&lower.as_str()) {
            return Err((
                start,
                format!(
                    "expected a value, found the operator `{name}` (write ['{name}'] for a key of that name)"
                ),
            ));
        }
        let next = self.peek_at(1);
        if name == "T" && next == Some(&Tok::LParen) {
            return Err((start, "type references (T(...)) are not supported".into()));
        }
        if lower == "new" && matches!(next, Some(Tok::Ident(_))) {
            return Err((start, "constructors (new ...) are not supported".into()));
        }
        self.pos += 1;
        if self.peek() == Some(&Tok::LParen) {
            let args = self.arguments()?;
            return Ok(self.root_step(start, StepKind::Method { name, args }));
        }
        Ok(self.root_step(start, StepKind::Property(name)))
    }

    /// An inline list `{a, b}` or map `{k: v}`, the opening brace consumed. `{}` is an empty
    /// list and `{:}` an empty map, as in SpEL.
    fn inline(&mut self, start: usize) -> PResult<Node> {
        if self.eat(&Tok::RBrace) {
            return Ok(Node {
                kind: Kind::List(Vec::new()),
                span: self.span_from(start),
            });
        }
        if self.peek() == Some(&Tok::Colon) && self.peek_at(1) == Some(&Tok::RBrace) {
            self.pos += 2;
            return Ok(Node {
                kind: Kind::Map(Vec::new()),
                span: self.span_from(start),
            });
        }
        if let Some(name) = self.map_key_name() {
            let value = self.expression()?;
            return self.map_rest(vec![(MapKey::Name(name), value)], start);
        }
        let first = self.expression()?;
        if self.eat(&Tok::Colon) {
            let value = self.expression()?;
            return self.map_rest(vec![(MapKey::Expr(first), value)], start);
        }
        let mut items = vec![first];
        while self.eat(&Tok::Comma) {
            items.push(self.expression()?);
        }
        self.expect(&Tok::RBrace, "`,` or `}`")?;
        Ok(Node {
            kind: Kind::List(items),
            span: self.span_from(start),
        })
    }

    /// A `name:` map key: consumes both tokens.
    fn map_key_name(&mut self) -> Option<String> {
        match (self.peek(), self.peek_at(1)) {
            (Some(Tok::Ident(name)), Some(Tok::Colon)) => {
                let name = name.clone();
                self.pos += 2;
                Some(name)
            }
            _ => None,
        }
    }

    fn map_rest(&mut self, mut entries: Vec<(MapKey, Node)>, start: usize) -> PResult<Node> {
        while self.eat(&Tok::Comma) {
            let key = match self.map_key_name() {
                Some(name) => MapKey::Name(name),
                None => {
                    let key = MapKey::Expr(self.expression()?);
                    self.expect(&Tok::Colon, "`:` after the map key")?;
                    key
                }
            };
            entries.push((key, self.expression()?));
        }
        self.expect(&Tok::RBrace, "`,` or `}`")?;
        Ok(Node {
            kind: Kind::Map(entries),
            span: self.span_from(start),
        })
    }
}
