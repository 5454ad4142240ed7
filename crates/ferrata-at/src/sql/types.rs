//! Our own model of a recognized statement: what the AT executor needs to know about it, with
//! expressions kept as SQL fragments whose bind parameters are numbered by the original statement.

use std::fmt;

/// The database a statement was written for: decides quoting, placeholders and case folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// MySQL and MariaDB: `?` placeholders, backtick quoting, case-preserving names.
    MySql,
    /// PostgreSQL: `$n` placeholders, double-quote quoting, unquoted names fold to lower case.
    Postgres,
}

impl Dialect {
    /// Quotes an identifier as the database spells it exactly (a name read from the catalog).
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", name.replace('`', "``")),
            Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    fn quote_char(self) -> char {
        match self {
            Dialect::MySql => '`',
            Dialect::Postgres => '"',
        }
    }
}

/// One name part as written: its text without quotes and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name without quotes (doubled quote characters already undone).
    pub value: String,
    /// Whether the statement quoted it (backticks or double quotes).
    pub quoted: bool,
}

impl Ident {
    /// An unquoted name.
    pub fn new(value: impl Into<String>) -> Self {
        Ident {
            value: value.into(),
            quoted: false,
        }
    }

    /// A quoted name.
    pub fn quoted(value: impl Into<String>) -> Self {
        Ident {
            value: value.into(),
            quoted: true,
        }
    }

    /// The name as the statement wrote it, re-quoted for `dialect` when it was quoted, so the
    /// generated SQL resolves to the same object (PostgreSQL folds only unquoted names).
    pub fn render(&self, dialect: Dialect) -> String {
        if self.quoted {
            let q = dialect.quote_char();
            let doubled: String = [q, q].iter().collect();
            format!("{q}{}{q}", self.value.replace(q, &doubled))
        } else {
            self.value.clone()
        }
    }

    /// The name the database resolves it to: PostgreSQL folds unquoted names to lower case;
    /// MySQL keeps the text (its case sensitivity depends on the server, so lookups there
    /// should compare case-insensitively, see [`Ident::matches`]).
    pub fn normalized(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Postgres if !self.quoted => self.value.to_lowercase(),
            _ => self.value.clone(),
        }
    }

    /// Whether this name, as written, denotes the catalog name `catalog_name`: MySQL column and
    /// alias names never depend on case; PostgreSQL compares the folded name exactly.
    pub fn matches(&self, catalog_name: &str, dialect: Dialect) -> bool {
        match dialect {
            Dialect::MySql => self.value.eq_ignore_ascii_case(catalog_name),
            Dialect::Postgres => self.normalized(dialect) == catalog_name,
        }
    }
}

/// A table name with its qualification (`schema.table`, or `catalog.schema.table`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// The dotted parts, outermost first; never empty.
    pub parts: Vec<Ident>,
}

impl TableName {
    /// The last part: the table itself.
    pub fn table(&self) -> &Ident {
        // Constructed only by the parser, which never yields an empty name.
        &self.parts[self.parts.len() - 1]
    }

    /// The part before the table (schema, or MySQL database), if qualified.
    pub fn schema(&self) -> Option<&Ident> {
        self.parts.len().checked_sub(2).map(|i| &self.parts[i])
    }

    /// The name as written, for generated SQL.
    pub fn render(&self, dialect: Dialect) -> String {
        self.parts
            .iter()
            .map(|p| p.render(dialect))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The name without quotes, parts joined by `.`: what Java's resource manager puts in undo
    /// logs and lock keys (it keeps the name as written, case preserved).
    pub fn unquoted(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.value.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A table as referenced by a statement: its name and the alias the statement gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// The table's name.
    pub name: TableName,
    /// `t AS a` or `t a`.
    pub alias: Option<Ident>,
}

impl TableRef {
    /// `name [alias]`, for a FROM clause.
    pub fn render(&self, dialect: Dialect) -> String {
        match &self.alias {
            Some(a) => format!("{} {}", self.name.render(dialect), a.render(dialect)),
            None => self.name.render(dialect),
        }
    }

    /// What columns of this table are qualified with in generated SQL: the alias, else the name.
    pub fn qualifier(&self, dialect: Dialect) -> String {
        match &self.alias {
            Some(a) => a.render(dialect),
            None => self.name.render(dialect),
        }
    }

    /// Whether a column qualifier such as `t` in `t.col` designates this table: the alias if it
    /// has one (SQL hides the name behind an alias), else the table name or its qualified form.
    pub fn is_named_by(&self, qualifier: &[Ident], dialect: Dialect) -> bool {
        let same = |a: &Ident, b: &Ident| match dialect {
            Dialect::MySql => a.value.eq_ignore_ascii_case(&b.value),
            Dialect::Postgres => a.normalized(dialect) == b.normalized(dialect),
        };
        match (&self.alias, qualifier) {
            (Some(alias), [q]) => same(alias, q),
            (Some(_), _) => false,
            (None, q) => {
                q.len() <= self.name.parts.len()
                    && q.iter()
                        .rev()
                        .zip(self.name.parts.iter().rev())
                        .all(|(a, b)| same(a, b))
            }
        }
    }
}

/// A piece of an SQL fragment: text, or a reference to a bind parameter of the statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    /// SQL text, rendered with the statement's own quoting.
    Sql(String),
    /// The statement's bind parameter with this 1-based ordinal (`?` number n, or `$n`).
    Param(usize),
}

/// An expression or clause of the statement, re-rendered from the parse tree, with its bind
/// parameters kept apart so that a generated query can renumber them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Fragment {
    /// Text and parameters in order.
    pub pieces: Vec<Piece>,
}

impl Fragment {
    /// A fragment of plain text.
    pub fn text(sql: impl Into<String>) -> Self {
        Fragment {
            pieces: vec![Piece::Sql(sql.into())],
        }
    }

    /// The statement parameters it uses, in order of appearance (repeats kept).
    pub fn params(&self) -> Vec<usize> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Param(n) => Some(*n),
                Piece::Sql(_) => None,
            })
            .collect()
    }

    /// Appends the fragment to `out`, numbering its parameters through `params`.
    pub fn render_into(&self, out: &mut String, params: &mut ParamList) {
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => out.push_str(s),
                Piece::Param(n) => out.push_str(&params.placeholder(*n)),
            }
        }
    }
}

impl fmt::Display for Fragment {
    /// The fragment with parameters shown by original ordinal (`$n`-style), for messages and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pieces {
            match p {
                Piece::Sql(s) => f.write_str(s)?,
                Piece::Param(n) => write!(f, "${n}")?,
            }
        }
        Ok(())
    }
}

/// The parameters a generated query binds, collected while rendering it.
#[derive(Debug, Clone)]
pub struct ParamList {
    dialect: Dialect,
    /// Ordinals of the original statement, in the generated query's binding order.
    pub ordinals: Vec<usize>,
}

impl ParamList {
    /// An empty list for a query in `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        ParamList {
            dialect,
            ordinals: Vec::new(),
        }
    }

    /// The placeholder text for the statement's parameter `ordinal`. MySQL binds positionally,
    /// so every use is a new `?`; PostgreSQL gets dense `$k` numbers (it refuses a query whose
    /// `$n` leave gaps) and a parameter used twice keeps one number, so its type is inferred once.
    pub fn placeholder(&mut self, ordinal: usize) -> String {
        match self.dialect {
            Dialect::MySql => {
                self.ordinals.push(ordinal);
                "?".to_owned()
            }
            Dialect::Postgres => {
                let k = match self.ordinals.iter().position(|&o| o == ordinal) {
                    Some(i) => i + 1,
                    None => {
                        self.ordinals.push(ordinal);
                        self.ordinals.len()
                    }
                };
                format!("${k}")
            }
        }
    }
}

/// A value supplied for one column of an inserted row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InsertValue {
    /// The statement's bind parameter with this 1-based ordinal.
    Param(usize),
    /// `NULL`.
    Null,
    /// A numeric literal, as written (a leading `-` included).
    Number(String),
    /// A string literal's value (quotes and escapes undone).
    String(String),
    /// `TRUE` / `FALSE`.
    Boolean(bool),
    /// `DEFAULT`: the database fills the column (AUTO_INCREMENT, SERIAL, identity, defaults).
    Default,
    /// Any other expression (`NOW()`, `nextval('s')`, `? + 1`): its value is known only after
    /// the insert.
    Expr(Fragment),
}

/// A column reference as written: `col` or `t.col` (`schema.t.col`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column {
    /// The qualifier parts before the column, possibly empty.
    pub qualifier: Vec<Ident>,
    /// The column name.
    pub name: Ident,
}

/// `column = value` in SET or an upsert's update list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// The assigned column.
    pub column: Column,
    /// The new value's expression.
    pub value: Fragment,
}

/// What an INSERT does when a row collides with a unique key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OnConflict {
    /// MySQL `ON DUPLICATE KEY UPDATE assignments`.
    DuplicateKeyUpdate {
        /// The assignments applied to the existing row.
        assignments: Vec<Assignment>,
    },
    /// PostgreSQL `ON CONFLICT [target] DO NOTHING`.
    DoNothing {
        /// The conflict target, if given.
        target: Option<ConflictTarget>,
    },
    /// PostgreSQL `ON CONFLICT target DO UPDATE SET assignments [WHERE condition]`.
    DoUpdate {
        /// The conflict target (PostgreSQL requires one for DO UPDATE).
        target: Option<ConflictTarget>,
        /// The assignments applied to the existing row.
        assignments: Vec<Assignment>,
        /// The `WHERE` of the DO UPDATE action.
        condition: Option<Fragment>,
    },
}

/// PostgreSQL's conflict target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConflictTarget {
    /// `(col, …) [WHERE index_predicate]`.
    Columns {
        /// The unique index's columns.
        columns: Vec<Ident>,
        /// The partial index predicate, if any.
        predicate: Option<Fragment>,
    },
    /// `ON CONSTRAINT name`.
    Constraint(TableName),
}

/// A single-table INSERT with VALUES rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Insert {
    /// The target table (PostgreSQL allows an alias: `INSERT INTO t AS a`).
    pub table: TableRef,
    /// The explicit column list; `None` means all columns in table order.
    pub columns: Option<Vec<Ident>>,
    /// One entry per VALUES row, one value per column.
    pub rows: Vec<Vec<InsertValue>>,
    /// MySQL `INSERT IGNORE`: rows that collide are skipped.
    pub ignore: bool,
    /// `ON DUPLICATE KEY UPDATE` / `ON CONFLICT`.
    pub on_conflict: Option<OnConflict>,
    /// The `RETURNING` list as written (PostgreSQL, MariaDB).
    pub returning: Option<Fragment>,
}

/// A single-table UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Update {
    /// The target table and its alias.
    pub table: TableRef,
    /// The SET list.
    pub assignments: Vec<Assignment>,
    /// The WHERE condition, if any.
    pub selection: Option<Fragment>,
    /// MySQL `ORDER BY …` (the whole clause).
    pub order_by: Option<Fragment>,
    /// MySQL `LIMIT …` (the whole clause).
    pub limit: Option<Fragment>,
    /// The `RETURNING` list as written.
    pub returning: Option<Fragment>,
}

/// A single-table DELETE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delete {
    /// The target table and its alias.
    pub table: TableRef,
    /// The WHERE condition, if any.
    pub selection: Option<Fragment>,
    /// MySQL `ORDER BY …` (the whole clause).
    pub order_by: Option<Fragment>,
    /// MySQL `LIMIT …` (the whole clause).
    pub limit: Option<Fragment>,
    /// The `RETURNING` list as written.
    pub returning: Option<Fragment>,
}

/// How a SELECT locks the rows it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowLock {
    /// `FOR UPDATE`: Java checks global locks for these (read-committed across services).
    Update,
    /// `FOR SHARE` / MySQL `LOCK IN SHARE MODE`: Java does not check global locks for these.
    Share,
}

/// A locking SELECT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SelectForUpdate {
    /// Every table of the FROM clause, in order.
    pub tables: Vec<TableRef>,
    /// The FROM clause (tables and joins) as written, without the `FROM` keyword.
    pub from: Fragment,
    /// The WHERE condition, if any.
    pub selection: Option<Fragment>,
    /// `ORDER BY …` (the whole clause).
    pub order_by: Option<Fragment>,
    /// `LIMIT …` (the whole clause).
    pub limit: Option<Fragment>,
    /// The lock strength requested.
    pub lock: RowLock,
}

/// One table written by a multi-table statement, with the SET columns that belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinTarget {
    /// Index into the statement's `tables`.
    pub table: usize,
    /// The assignments to this table's columns (empty for a multi-table DELETE).
    pub assignments: Vec<Assignment>,
}

/// MySQL `UPDATE t1 JOIN t2 ON … SET t1.a = …, t2.b = … WHERE …`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpdateJoin {
    /// Every table of the join, in order.
    pub tables: Vec<TableRef>,
    /// The table reference clause (tables and joins) as written.
    pub from: Fragment,
    /// The tables that SET writes, in order of their first assignment.
    pub targets: Vec<JoinTarget>,
    /// The WHERE condition, if any.
    pub selection: Option<Fragment>,
}

/// MySQL `DELETE t1, t2 FROM t1 JOIN t2 ON … WHERE …`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MultiDelete {
    /// Every table of the FROM clause, in order.
    pub tables: Vec<TableRef>,
    /// The FROM clause (tables and joins) as written.
    pub from: Fragment,
    /// The tables rows are deleted from (indices into `tables`), in the order listed.
    pub targets: Vec<usize>,
    /// The WHERE condition, if any.
    pub selection: Option<Fragment>,
}

/// Statements that change nothing AT must undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassThroughKind {
    /// A SELECT without a lock clause.
    Select,
    /// SHOW, DESCRIBE, EXPLAIN.
    Show,
    /// Session settings: SET, USE.
    Session,
}

/// Why AT refuses a statement inside a global transaction. Each message tells the user what
/// to change; refusing happens before the statement touches any data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum UnsupportedReason {
    /// Several statements in one string.
    #[error(
        "AT mode executes one statement per call; this string holds {0} statements: execute them separately"
    )]
    MultipleStatements(usize),
    /// `INSERT … SELECT`.
    #[error(
        "AT mode does not support INSERT ... SELECT: the inserted rows cannot be imaged; insert with VALUES instead"
    )]
    InsertSelect,
    /// `REPLACE INTO`.
    #[error(
        "AT mode does not support REPLACE: it deletes and inserts rows it cannot image; use INSERT ... ON DUPLICATE KEY UPDATE"
    )]
    Replace,
    /// `MERGE`.
    #[error("AT mode does not support MERGE; use INSERT ... ON CONFLICT or separate statements")]
    Merge,
    /// `WHERE x IN (SELECT …)`, as Java refuses.
    #[error(
        "AT mode does not support IN (SELECT ...) in a statement that writes or locks rows; select the keys first and use a value list"
    )]
    InSubquery,
    /// A derived table (subquery in FROM / as an UPDATE or DELETE target).
    #[error(
        "AT mode does not support a subquery as a table in a statement that writes or locks rows; name the table directly"
    )]
    SubqueryTable,
    /// A FROM item that is not a plain table (table function, UNNEST, …).
    #[error("AT mode supports only plain table names here, not {0}")]
    TableExpression(String),
    /// PostgreSQL `UPDATE … FROM` / `DELETE … USING`, and joins other than MySQL's.
    #[error(
        "AT mode supports multi-table UPDATE and DELETE only on MySQL/MariaDB; on PostgreSQL write one table per statement"
    )]
    JoinNotSupported,
    /// An UPDATE JOIN's SET column without a table qualifier.
    #[error(
        "in UPDATE ... JOIN, qualify every SET column with its table or alias (column {0}): AT must know which table each change belongs to"
    )]
    UnqualifiedJoinColumn(String),
    /// A SET column whose qualifier names no table of the statement.
    #[error("SET column {0} names no table of the statement")]
    UnknownQualifier(String),
    /// A multi-table DELETE target that is not in its FROM clause.
    #[error("DELETE target {0} is not a table of the FROM clause")]
    UnknownDeleteTarget(String),
    /// `SET (a, b) = (…)`.
    #[error("AT mode does not support tuple assignments (SET (a, b) = ...); assign each column")]
    TupleAssignment,
    /// Updating a primary-key column: the after image could not be matched to the before image.
    #[error(
        "AT mode does not support updating primary-key column {column} of table {table}: rows are tracked by their primary key"
    )]
    PrimaryKeyUpdate {
        /// The table.
        table: String,
        /// The primary-key column assigned.
        column: String,
    },
    /// An upsert whose rows give no complete primary-key or unique-key value to look rows up by.
    #[error(
        "AT mode cannot image this {0}: no row supplies a complete primary-key or unique-key value; use a plain INSERT or UPDATE"
    )]
    NoUniqueKeyValue(&'static str),
    /// DDL inside a global transaction.
    #[error(
        "DDL ({0}) cannot run inside a global transaction: it commits implicitly and cannot be undone; run it outside"
    )]
    Ddl(String),
    /// COMMIT, ROLLBACK, SAVEPOINT, BEGIN as SQL text.
    #[error(
        "transaction control ({0}) must go through the connection's API inside a global transaction, not SQL text"
    )]
    TransactionControl(String),
    /// A locking SELECT of a form AT cannot re-run (UNION, no FROM, …).
    #[error("AT mode supports SELECT ... FOR UPDATE only on a single SELECT with a FROM clause")]
    LockingSelectShape,
    /// A PostgreSQL statement using `?` placeholders, or a MySQL one using `$n`.
    #[error(
        "{0} placeholders are not valid for this database: MySQL uses ?, PostgreSQL uses $1, $2, ..."
    )]
    PlaceholderStyle(String),
    /// A bind parameter the recognizer could not place (in a clause it does not re-render).
    #[error("a bind parameter appears where AT cannot track it: {0}")]
    UntrackedParameter(String),
    /// Any other statement kind that may write data AT cannot image.
    #[error("AT mode does not support {0} inside a global transaction")]
    Other(String),
}

/// A statement as AT sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Statement {
    /// INSERT … VALUES (with upsert clauses).
    Insert(Insert),
    /// Single-table UPDATE.
    Update(Update),
    /// Single-table DELETE.
    Delete(Delete),
    /// SELECT … FOR UPDATE / FOR SHARE.
    SelectForUpdate(SelectForUpdate),
    /// MySQL UPDATE over a join.
    UpdateJoin(UpdateJoin),
    /// MySQL multi-table DELETE.
    MultiDelete(MultiDelete),
    /// Nothing to undo or lock: run it as is.
    PassThrough(PassThroughKind),
    /// AT cannot make this statement safe.
    Unsupported {
        /// Why, in words for the user.
        reason: UnsupportedReason,
    },
}

/// A parsed statement with the facts about its text the executor needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recognized {
    /// The dialect it was parsed with.
    pub dialect: Dialect,
    /// How many bind values the statement takes (highest `$n` on PostgreSQL).
    pub param_count: usize,
    /// The statement.
    pub statement: Statement,
}
