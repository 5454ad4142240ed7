//! The adapter over the `sqlparser` crate: the only module that sees its syntax tree. It turns
//! SQL text into [`Recognized`], re-rendering the clauses AT re-runs as [`Fragment`]s.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::ops::ControlFlow;

use sqlparser::ast::{
    self, AssignmentTarget, Expr, FromTable, ObjectName, OnConflictAction, OnInsert, SelectItem,
    SetExpr, TableFactor, TableObject, TableWithJoins, UnaryOperator, UpdateTableFromKind, Value,
    VisitMut, visit_expressions, visit_expressions_mut,
};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::types::{
    Assignment, Column, ConflictTarget, Delete, Dialect, Fragment, Ident, Insert, InsertValue,
    JoinTarget, MultiDelete, OnConflict, PassThroughKind, Piece, Recognized, RowLock,
    SelectForUpdate, Statement, TableName, TableRef, UnsupportedReason, Update, UpdateJoin,
};

/// Why a text could not be recognized at all (as opposed to a recognized but unsupported form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The parser rejected the text.
    #[error("cannot parse SQL: {0}")]
    Syntax(String),
    /// Only whitespace and comments.
    #[error("empty SQL statement")]
    Empty,
    /// The text holds the control character the adapter uses to mark parameters.
    #[error("SQL text contains the control character U+0001")]
    ControlCharacter,
}

/// Marks a parameter inside re-rendered text; refused in input so it cannot be forged.
const MARK: char = '\u{1}';

/// Parses one statement of `dialect` into our model.
pub fn parse(sql: &str, dialect: Dialect) -> Result<Recognized, SqlError> {
    if sql.contains(MARK) {
        return Err(SqlError::ControlCharacter);
    }
    let mysql = MySqlDialect {};
    let postgres = PostgreSqlDialect {};
    let d: &dyn sqlparser::dialect::Dialect = match dialect {
        Dialect::MySql => &mysql,
        Dialect::Postgres => &postgres,
    };
    let mut tokens = Tokenizer::new(d, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    let params = match index_params(&tokens, dialect) {
        Ok(p) => p,
        Err(reason) => {
            return Ok(Recognized {
                dialect,
                param_count: 0,
                statement: Statement::Unsupported { reason },
            });
        }
    };
    let param_count = params.count;
    // sqlparser does not know MySQL's legacy `LOCK IN SHARE MODE`; it means FOR SHARE.
    let share_mode = dialect == Dialect::MySql && strip_lock_in_share_mode(&mut tokens);
    let statements = Parser::new(d)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::Syntax(e.to_string()))?;
    let statement = match statements.as_slice() {
        [] => return Err(SqlError::Empty),
        [one] => {
            let conv = Conv {
                dialect,
                params: &params,
                seen: RefCell::new(BTreeSet::new()),
                foreign: RefCell::new(None),
            };
            conv.statement(one, share_mode)
                .unwrap_or_else(|reason| Statement::Unsupported { reason })
        }
        many => Statement::Unsupported {
            reason: UnsupportedReason::MultipleStatements(many.len()),
        },
    };
    Ok(Recognized {
        dialect,
        param_count,
        statement,
    })
}

/// Where each bind parameter of the text is, and its ordinal.
struct Params {
    by_location: HashMap<(u64, u64), usize>,
    all: BTreeSet<usize>,
    count: usize,
}

fn index_params(tokens: &[TokenWithSpan], dialect: Dialect) -> Result<Params, UnsupportedReason> {
    let mut by_location = HashMap::new();
    let mut all = BTreeSet::new();
    let mut count = 0;
    for t in tokens {
        let Token::Placeholder(p) = &t.token else {
            continue;
        };
        let ordinal = match (dialect, p.as_str()) {
            (Dialect::MySql, "?") => {
                count += 1;
                count
            }
            (Dialect::Postgres, p) if p.len() > 1 && p.starts_with('$') => {
                match p[1..].parse::<usize>() {
                    Ok(n) if n > 0 => {
                        count = count.max(n);
                        n
                    }
                    // `$name` and other forms are not bind parameters sqlx can send.
                    _ => return Err(UnsupportedReason::PlaceholderStyle(p.to_owned())),
                }
            }
            (_, p) => return Err(UnsupportedReason::PlaceholderStyle(p.to_owned())),
        };
        all.insert(ordinal);
        by_location.insert((t.span.start.line, t.span.start.column), ordinal);
    }
    Ok(Params {
        by_location,
        all,
        count,
    })
}

/// Removes a trailing `LOCK IN SHARE MODE` (before an optional `;`), reporting whether it did.
fn strip_lock_in_share_mode(tokens: &mut Vec<TokenWithSpan>) -> bool {
    let significant: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|(i, _)| i)
        .collect();
    let mut end = significant.len();
    if end > 0 && tokens[significant[end - 1]].token == Token::SemiColon {
        end -= 1;
    }
    if end < 4 {
        return false;
    }
    let tail = &significant[end - 4..end];
    let words = ["LOCK", "IN", "SHARE", "MODE"];
    let is_tail = tail
        .iter()
        .zip(words)
        .all(|(&i, w)| match &tokens[i].token {
            Token::Word(word) => word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w),
            _ => false,
        });
    if is_tail {
        let first = tail[0];
        let last = tail[3];
        tokens.drain(first..=last);
    }
    is_tail
}

/// One conversion: the parameter index and the parameters met so far.
struct Conv<'a> {
    dialect: Dialect,
    params: &'a Params,
    seen: RefCell<BTreeSet<usize>>,
    /// A placeholder the tokenizer did not report as one of ours.
    foreign: RefCell<Option<String>>,
}

type Res<T> = Result<T, UnsupportedReason>;

impl Conv<'_> {
    fn statement(&self, s: &ast::Statement, share_mode: bool) -> Res<Statement> {
        let st = match s {
            ast::Statement::Insert(i) => {
                refuse_in_subquery(s)?;
                Statement::Insert(self.insert(i)?)
            }
            ast::Statement::Update(u) => {
                refuse_in_subquery(s)?;
                self.update(u)?
            }
            ast::Statement::Delete(d) => {
                refuse_in_subquery(s)?;
                self.delete(d)?
            }
            ast::Statement::Query(q) => {
                let lock = if share_mode {
                    Some(RowLock::Share)
                } else {
                    q.locks.first().map(|l| match l.lock_type {
                        ast::LockType::Update => RowLock::Update,
                        ast::LockType::Share => RowLock::Share,
                    })
                };
                match lock {
                    None => return Ok(Statement::PassThrough(PassThroughKind::Select)),
                    Some(lock) => {
                        refuse_in_subquery(s)?;
                        Statement::SelectForUpdate(self.select_for_update(q, lock)?)
                    }
                }
            }
            ast::Statement::Explain {
                analyze, statement, ..
            } if *analyze && !matches!(**statement, ast::Statement::Query(_)) => {
                // EXPLAIN ANALYZE runs the statement on PostgreSQL: a write AT never sees.
                return Err(UnsupportedReason::Other(
                    "EXPLAIN ANALYZE of a writing statement".to_owned(),
                ));
            }
            other => return classify_other(other),
        };
        if let Some(p) = self.foreign.borrow_mut().take() {
            return Err(UnsupportedReason::PlaceholderStyle(p));
        }
        // Every parameter of the text must have landed in a fragment, or the generated queries
        // would bind the wrong values.
        let seen = self.seen.borrow();
        if let Some(missing) = self.params.all.iter().find(|o| !seen.contains(o)) {
            return Err(UnsupportedReason::UntrackedParameter(format!(
                "parameter {missing} is in a clause AT does not re-run"
            )));
        }
        Ok(st)
    }

    /// Re-renders a node with its parameters marked, then splits the text at the marks.
    fn fragment<T: VisitMut + Clone + Display>(&self, node: &T) -> Fragment {
        let mut copy = node.clone();
        let by_location = &self.params.by_location;
        let _ = visit_expressions_mut(&mut copy, |e: &mut Expr| {
            if let Expr::Value(v) = e
                && let Value::Placeholder(p) = &v.value
            {
                match by_location.get(&(v.span.start.line, v.span.start.column)) {
                    Some(&ordinal) => {
                        v.value = Value::Placeholder(format!("{MARK}{ordinal}{MARK}"))
                    }
                    // A placeholder form the driver does not bind (`:name`, `@x`).
                    None => {
                        self.foreign.borrow_mut().get_or_insert_with(|| p.clone());
                    }
                }
            }
            ControlFlow::<()>::Continue(())
        });
        let text = copy.to_string();
        let mut pieces = Vec::new();
        for (i, part) in text.split(MARK).enumerate() {
            if i % 2 == 1 {
                // Written by us above: always digits.
                let ordinal: usize = part.parse().unwrap_or(0);
                self.seen.borrow_mut().insert(ordinal);
                pieces.push(Piece::Param(ordinal));
            } else if !part.is_empty() {
                pieces.push(Piece::Sql(part.to_owned()));
            }
        }
        Fragment { pieces }
    }

    /// A comma-separated list of nodes as one fragment, with `prefix` before it.
    fn list<T: VisitMut + Clone + Display>(&self, prefix: &str, items: &[T]) -> Fragment {
        let mut pieces = Vec::new();
        if !prefix.is_empty() {
            pieces.push(Piece::Sql(prefix.to_owned()));
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                pieces.push(Piece::Sql(", ".to_owned()));
            }
            pieces.extend(self.fragment(item).pieces);
        }
        merge_text(pieces)
    }

    fn insert(&self, i: &ast::Insert) -> Res<Insert> {
        if i.replace_into {
            return Err(UnsupportedReason::Replace);
        }
        let name = match &i.table {
            TableObject::TableName(n) => table_name(n)?,
            other => return Err(UnsupportedReason::TableExpression(other.to_string())),
        };
        let table = TableRef {
            name,
            alias: i.table_alias.as_ref().map(|a| ident(&a.alias)),
        };
        let mut columns = i.columns.iter().map(last_ident).collect::<Res<Vec<_>>>()?;
        let rows = match &i.source {
            Some(q) => match &*q.body {
                SetExpr::Values(v) => v
                    .rows
                    .iter()
                    .map(|r| r.content.iter().map(|e| self.insert_value(e)).collect())
                    .collect(),
                _ => return Err(UnsupportedReason::InsertSelect),
            },
            // MySQL `INSERT INTO t SET a = 1, b = 2`: one row.
            None if !i.assignments.is_empty() => {
                let mut row = Vec::new();
                for a in &i.assignments {
                    let AssignmentTarget::ColumnName(c) = &a.target else {
                        return Err(UnsupportedReason::TupleAssignment);
                    };
                    columns.push(last_ident(c)?);
                    row.push(self.insert_value(&a.value));
                }
                vec![row]
            }
            // `INSERT INTO t DEFAULT VALUES`: one row, every column defaulted.
            None => vec![Vec::new()],
        };
        let columns = if columns.is_empty() && !rows.iter().all(Vec::is_empty) {
            None
        } else {
            Some(columns)
        };
        let on_conflict = match &i.on {
            None => None,
            Some(OnInsert::DuplicateKeyUpdate(a)) => Some(OnConflict::DuplicateKeyUpdate {
                assignments: self.assignments(a)?,
            }),
            Some(OnInsert::OnConflict(c)) => {
                let target = match &c.conflict_target {
                    None => None,
                    Some(ast::ConflictTarget::Columns { columns, predicate }) => {
                        Some(ConflictTarget::Columns {
                            columns: columns.iter().map(ident).collect(),
                            predicate: predicate.as_ref().map(|p| self.fragment(p)),
                        })
                    }
                    Some(ast::ConflictTarget::OnConstraint(n)) => {
                        Some(ConflictTarget::Constraint(table_name(n)?))
                    }
                };
                Some(match &c.action {
                    OnConflictAction::DoNothing => OnConflict::DoNothing { target },
                    OnConflictAction::DoUpdate(u) => OnConflict::DoUpdate {
                        target,
                        assignments: self.assignments(&u.assignments)?,
                        condition: u.selection.as_ref().map(|s| self.fragment(s)),
                    },
                })
            }
            Some(other) => return Err(UnsupportedReason::Other(other.to_string())),
        };
        Ok(Insert {
            table,
            columns,
            rows,
            ignore: i.ignore,
            on_conflict,
            returning: self.returning(&i.returning),
        })
    }

    fn insert_value(&self, e: &Expr) -> InsertValue {
        match e {
            Expr::Value(v) => match &v.value {
                Value::Null => InsertValue::Null,
                Value::Boolean(b) => InsertValue::Boolean(*b),
                Value::Number(n, _) => InsertValue::Number(n.clone()),
                Value::SingleQuotedString(s)
                | Value::DoubleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::NationalStringLiteral(s) => InsertValue::String(s.clone()),
                Value::Placeholder(_) => match self.fragment(e).pieces.as_slice() {
                    [Piece::Param(n)] => InsertValue::Param(*n),
                    _ => InsertValue::Expr(self.fragment(e)),
                },
                _ => InsertValue::Expr(self.fragment(e)),
            },
            Expr::Identifier(id)
                if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("DEFAULT") =>
            {
                InsertValue::Default
            }
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match &**expr {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => InsertValue::Number(format!("-{n}")),
                    _ => InsertValue::Expr(self.fragment(e)),
                },
                _ => InsertValue::Expr(self.fragment(e)),
            },
            _ => InsertValue::Expr(self.fragment(e)),
        }
    }

    fn assignments(&self, list: &[ast::Assignment]) -> Res<Vec<Assignment>> {
        list.iter()
            .map(|a| match &a.target {
                AssignmentTarget::ColumnName(c) => {
                    let mut parts = idents(c)?;
                    let name = parts.pop().ok_or_else(|| {
                        UnsupportedReason::Other(format!("assignment target {c}"))
                    })?;
                    Ok(Assignment {
                        column: Column {
                            qualifier: parts,
                            name,
                        },
                        value: self.fragment(&a.value),
                    })
                }
                AssignmentTarget::Tuple(_) => Err(UnsupportedReason::TupleAssignment),
            })
            .collect()
    }

    fn returning(&self, r: &Option<Vec<SelectItem>>) -> Option<Fragment> {
        r.as_ref().map(|items| self.list("", items))
    }

    fn order_by(&self, o: &[ast::OrderByExpr]) -> Option<Fragment> {
        (!o.is_empty()).then(|| self.list("ORDER BY ", o))
    }

    fn limit(&self, l: &Option<Expr>) -> Option<Fragment> {
        l.as_ref().map(|e| {
            let mut pieces = vec![Piece::Sql("LIMIT ".to_owned())];
            pieces.extend(self.fragment(e).pieces);
            merge_text(pieces)
        })
    }

    fn update(&self, u: &ast::Update) -> Res<Statement> {
        let mut sources = vec![&u.table];
        match &u.from {
            None => {}
            // MySQL `UPDATE t1, t2 SET …`: a comma join.
            Some(UpdateTableFromKind::BeforeSet(more)) if self.dialect == Dialect::MySql => {
                sources.extend(more.iter())
            }
            Some(_) => return Err(UnsupportedReason::JoinNotSupported),
        }
        let joined = sources.len() > 1 || !u.table.joins.is_empty();
        if !joined {
            let table = table_ref(&u.table.relation)?;
            return Ok(Statement::Update(Update {
                table,
                assignments: self.assignments(&u.assignments)?,
                selection: u.selection.as_ref().map(|s| self.fragment(s)),
                order_by: self.order_by(&u.order_by),
                limit: self.limit(&u.limit),
                returning: self.returning(&u.returning),
            }));
        }
        if self.dialect != Dialect::MySql {
            return Err(UnsupportedReason::JoinNotSupported);
        }
        let tables = tables_of(&sources)?;
        let from = self.sources(&sources);
        let mut targets: Vec<JoinTarget> = Vec::new();
        for a in self.assignments(&u.assignments)? {
            if a.column.qualifier.is_empty() {
                return Err(UnsupportedReason::UnqualifiedJoinColumn(
                    a.column.name.value,
                ));
            }
            let Some(t) = tables
                .iter()
                .position(|t| t.is_named_by(&a.column.qualifier, self.dialect))
            else {
                return Err(UnsupportedReason::UnknownQualifier(column_text(&a.column)));
            };
            match targets.iter_mut().find(|x| x.table == t) {
                Some(x) => x.assignments.push(a),
                None => targets.push(JoinTarget {
                    table: t,
                    assignments: vec![a],
                }),
            }
        }
        Ok(Statement::UpdateJoin(UpdateJoin {
            tables,
            from,
            targets,
            selection: u.selection.as_ref().map(|s| self.fragment(s)),
        }))
    }

    /// The FROM-like clause as written: comma-separated table sources with their joins.
    fn sources(&self, sources: &[&TableWithJoins]) -> Fragment {
        let owned: Vec<TableWithJoins> = sources.iter().map(|s| (*s).clone()).collect();
        self.list("", &owned)
    }

    fn delete(&self, d: &ast::Delete) -> Res<Statement> {
        let from = match &d.from {
            FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
        };
        // Multi-table forms: `DELETE t1, t2 FROM <sources>` and `DELETE FROM t1, t2 USING <sources>`.
        let (target_names, sources): (Vec<&ObjectName>, Vec<&TableWithJoins>) =
            match (&d.using, d.tables.is_empty()) {
                (None, true) => {
                    if let [one] = from.as_slice()
                        && one.joins.is_empty()
                    {
                        return Ok(Statement::Delete(Delete {
                            table: table_ref(&one.relation)?,
                            selection: d.selection.as_ref().map(|s| self.fragment(s)),
                            order_by: self.order_by(&d.order_by),
                            limit: self.limit(&d.limit),
                            returning: self.returning(&d.returning),
                        }));
                    }
                    return Err(UnsupportedReason::JoinNotSupported);
                }
                (None, false) => (d.tables.iter().collect(), from.iter().collect()),
                (Some(using), true) => {
                    let mut names = Vec::new();
                    for f in from {
                        if !f.joins.is_empty() {
                            return Err(UnsupportedReason::JoinNotSupported);
                        }
                        match &f.relation {
                            TableFactor::Table { name, .. } => names.push(name),
                            other => return Err(table_factor_error(other)),
                        }
                    }
                    (names, using.iter().collect())
                }
                (Some(_), false) => return Err(UnsupportedReason::JoinNotSupported),
            };
        if self.dialect != Dialect::MySql {
            return Err(UnsupportedReason::JoinNotSupported);
        }
        let tables = tables_of(&sources)?;
        let mut targets = Vec::new();
        for n in target_names {
            let q = idents(n)?;
            let Some(t) = tables.iter().position(|t| t.is_named_by(&q, self.dialect)) else {
                return Err(UnsupportedReason::UnknownDeleteTarget(n.to_string()));
            };
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
        Ok(Statement::MultiDelete(MultiDelete {
            tables,
            from: self.sources(&sources),
            targets,
            selection: d.selection.as_ref().map(|s| self.fragment(s)),
        }))
    }

    fn select_for_update(&self, q: &ast::Query, lock: RowLock) -> Res<SelectForUpdate> {
        let SetExpr::Select(select) = &*q.body else {
            return Err(UnsupportedReason::LockingSelectShape);
        };
        if select.from.is_empty() || q.with.is_some() {
            return Err(UnsupportedReason::LockingSelectShape);
        }
        let sources: Vec<&TableWithJoins> = select.from.iter().collect();
        let tables = tables_of(&sources)?;
        // The projection is not re-run, but its parameters must be counted as placed.
        let _ = self.list("", &select.projection);
        Ok(SelectForUpdate {
            tables,
            from: self.sources(&sources),
            selection: select.selection.as_ref().map(|s| self.fragment(s)),
            order_by: q.order_by.as_ref().map(|o| self.fragment(o)),
            limit: q
                .limit_clause
                .as_ref()
                .map(|l| trim_start(self.fragment(l))),
            lock,
        })
    }
}

/// Statements other than INSERT, UPDATE, DELETE and SELECT: classified by their leading words,
/// which stay stable across sqlparser releases where variant shapes do not.
fn classify_other(s: &ast::Statement) -> Res<Statement> {
    let text = s.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or_default().to_ascii_uppercase();
    let second = words.next().unwrap_or_default().to_ascii_uppercase();
    let two = format!("{first} {second}");
    match first.as_str() {
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" => {
            Ok(Statement::PassThrough(PassThroughKind::Show))
        }
        "SET" | "USE" => Ok(Statement::PassThrough(PassThroughKind::Session)),
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "COMMENT" | "GRANT" | "REVOKE" => {
            Err(UnsupportedReason::Ddl(two.trim().to_owned()))
        }
        "BEGIN" | "START" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "END" => {
            Err(UnsupportedReason::TransactionControl(first))
        }
        "MERGE" => Err(UnsupportedReason::Merge),
        "REPLACE" => Err(UnsupportedReason::Replace),
        _ => Err(UnsupportedReason::Other(first)),
    }
}

/// Java refuses `IN (SELECT …)` in any statement it images; so do we.
fn refuse_in_subquery(s: &ast::Statement) -> Res<()> {
    match visit_expressions(s, |e| match e {
        Expr::In {
            target: ast::InTarget::Subquery(_),
            ..
        } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    }) {
        ControlFlow::Break(()) => Err(UnsupportedReason::InSubquery),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn ident(i: &ast::Ident) -> Ident {
    Ident {
        value: i.value.clone(),
        quoted: i.quote_style.is_some(),
    }
}

fn idents(n: &ObjectName) -> Res<Vec<Ident>> {
    n.0.iter()
        .map(|p| {
            p.as_ident()
                .map(ident)
                .ok_or_else(|| UnsupportedReason::TableExpression(n.to_string()))
        })
        .collect()
}

fn last_ident(n: &ObjectName) -> Res<Ident> {
    idents(n)?
        .pop()
        .ok_or_else(|| UnsupportedReason::Other(format!("name {n}")))
}

fn table_name(n: &ObjectName) -> Res<TableName> {
    let parts = idents(n)?;
    if parts.is_empty() {
        return Err(UnsupportedReason::TableExpression(n.to_string()));
    }
    Ok(TableName { parts })
}

fn table_factor_error(f: &TableFactor) -> UnsupportedReason {
    match f {
        TableFactor::Derived { .. } => UnsupportedReason::SubqueryTable,
        other => UnsupportedReason::TableExpression(other.to_string()),
    }
}

fn table_ref(f: &TableFactor) -> Res<TableRef> {
    match f {
        TableFactor::Table {
            name, alias, args, ..
        } if args.is_none() => Ok(TableRef {
            name: table_name(name)?,
            alias: alias.as_ref().map(|a| ident(&a.name)),
        }),
        other => Err(table_factor_error(other)),
    }
}

/// Every table of the sources, joins included, in textual order.
fn tables_of(sources: &[&TableWithJoins]) -> Res<Vec<TableRef>> {
    let mut out = Vec::new();
    for s in sources {
        out.push(table_ref(&s.relation)?);
        for j in &s.joins {
            out.push(table_ref(&j.relation)?);
        }
    }
    Ok(out)
}

fn column_text(c: &Column) -> String {
    c.qualifier
        .iter()
        .chain(std::iter::once(&c.name))
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// Joins adjacent text pieces so fragments compare simply in tests and render in one push.
fn merge_text(pieces: Vec<Piece>) -> Fragment {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(Piece::Sql(a)), Piece::Sql(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    Fragment { pieces: out }
}

/// sqlparser renders some clauses with a leading space.
fn trim_start(mut f: Fragment) -> Fragment {
    if let Some(Piece::Sql(s)) = f.pieces.first_mut() {
        *s = s.trim_start().to_owned();
    }
    f
}
