//! SQL the AT executor runs around a statement: before-image and lock-check queries re-using the
//! statement's own WHERE (with its bind parameters mapped), and after-image queries by primary key.

use super::types::{
    Assignment, Delete, Dialect, Fragment, Insert, InsertValue, MultiDelete, OnConflict, ParamList,
    SelectForUpdate, TableRef, UnsupportedReason, Update, UpdateJoin,
};

/// Java's resource manager queries at most this many rows per `IN (…)` list; callers split
/// larger primary-key sets into several after-image queries.
pub const MAX_IN_ROWS: usize = 1000;

/// A generated query and the statement parameters it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageQuery {
    /// The SQL text, with placeholders of the statement's dialect (PostgreSQL's renumbered
    /// densely from `$1`).
    pub sql: String,
    /// For each placeholder of `sql` in binding order (for PostgreSQL, for `$1`, `$2`, …): the
    /// 1-based ordinal of the original statement's parameter whose value it takes.
    pub params: Vec<usize>,
}

/// Assembles `SELECT <columns> FROM <from> [WHERE …] [tail…] <suffix>`.
fn select(
    dialect: Dialect,
    columns: &str,
    from: &Fragment,
    selection: Option<&Fragment>,
    tail: &[Option<&Fragment>],
    suffix: &str,
) -> ImageQuery {
    let mut params = ParamList::new(dialect);
    let mut sql = format!("SELECT {columns} FROM ");
    from.render_into(&mut sql, &mut params);
    if let Some(w) = selection {
        sql.push_str(" WHERE ");
        w.render_into(&mut sql, &mut params);
    }
    for f in tail.iter().flatten() {
        sql.push(' ');
        f.render_into(&mut sql, &mut params);
    }
    sql.push_str(suffix);
    ImageQuery {
        sql,
        params: params.ordinals,
    }
}

/// `q.c1, q.c2, …` with each catalog column name quoted.
fn column_list(dialect: Dialect, qualifier: &str, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{qualifier}.{}", dialect.quote(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns of a table's image when only the changed columns are tracked (Java's default,
/// `client.undo.onlyCareUpdateColumns=true`): the primary key, the assigned columns and the
/// columns the database changes by itself on update (MySQL `ON UPDATE CURRENT_TIMESTAMP`), in
/// table order. `table_columns` are the catalog names in table order.
pub fn tracked_columns<'a>(
    dialect: Dialect,
    table_columns: &[&'a str],
    primary_key: &[&str],
    on_update: &[&str],
    assignments: &[Assignment],
) -> Vec<&'a str> {
    table_columns
        .iter()
        .copied()
        .filter(|c| {
            primary_key.contains(c)
                || on_update.contains(c)
                || assignments
                    .iter()
                    .any(|a| a.column.name.matches(c, dialect))
        })
        .collect()
}

/// Refuses assignments to primary-key columns: rows are matched between images by primary key,
/// so a changed key would orphan the undo (Java fails on the image size mismatch instead).
pub fn check_primary_key_untouched(
    dialect: Dialect,
    table: &TableRef,
    primary_key: &[&str],
    assignments: &[Assignment],
) -> Result<(), UnsupportedReason> {
    for a in assignments {
        if let Some(pk) = primary_key
            .iter()
            .find(|pk| a.column.name.matches(pk, dialect))
        {
            return Err(UnsupportedReason::PrimaryKeyUpdate {
                table: table.name.unquoted(),
                column: (*pk).to_owned(),
            });
        }
    }
    Ok(())
}

impl Update {
    /// The before image: `SELECT <columns> FROM <table> [alias] [WHERE …] [ORDER BY …] [LIMIT …]
    /// FOR UPDATE`, columns qualified by the alias (or table) so a subquery in WHERE cannot
    /// capture them. Pass [`tracked_columns`] for Java's default, or every column.
    pub fn before_image_query(&self, dialect: Dialect, columns: &[&str]) -> ImageQuery {
        let cols = column_list(dialect, &self.table.qualifier(dialect), columns);
        select(
            dialect,
            &cols,
            &Fragment::text(self.table.render(dialect)),
            self.selection.as_ref(),
            &[self.order_by.as_ref(), self.limit.as_ref()],
            " FOR UPDATE",
        )
    }
}

impl Delete {
    /// The before image: as for UPDATE; Java images every column of a deleted row, since the
    /// undo re-inserts it.
    pub fn before_image_query(&self, dialect: Dialect, columns: &[&str]) -> ImageQuery {
        let cols = column_list(dialect, &self.table.qualifier(dialect), columns);
        select(
            dialect,
            &cols,
            &Fragment::text(self.table.render(dialect)),
            self.selection.as_ref(),
            &[self.order_by.as_ref(), self.limit.as_ref()],
            " FOR UPDATE",
        )
    }
}

impl SelectForUpdate {
    /// The lock-check query: the primary keys of `tables[table]` among the rows the statement
    /// matches (same FROM, WHERE, ORDER BY, LIMIT), `FOR UPDATE`, as Java re-selects them before
    /// asking the TC whether they are globally locked.
    pub fn lock_query(&self, dialect: Dialect, table: usize, primary_key: &[&str]) -> ImageQuery {
        let cols = column_list(dialect, &self.tables[table].qualifier(dialect), primary_key);
        select(
            dialect,
            &cols,
            &self.from,
            self.selection.as_ref(),
            &[self.order_by.as_ref(), self.limit.as_ref()],
            " FOR UPDATE",
        )
    }
}

/// `SELECT <q.columns> FROM <join> [WHERE …] GROUP BY <q.columns> FOR UPDATE`: grouping on every
/// selected column (the primary key among them) removes the duplicates a join produces and is
/// valid under ONLY_FULL_GROUP_BY on MySQL and MariaDB alike, as Java does for older servers.
fn join_image(
    dialect: Dialect,
    table: &TableRef,
    from: &Fragment,
    selection: Option<&Fragment>,
    columns: &[&str],
) -> ImageQuery {
    let cols = column_list(dialect, &table.qualifier(dialect), columns);
    let group = Fragment::text(format!("GROUP BY {cols}"));
    select(
        dialect,
        &cols,
        from,
        selection,
        &[Some(&group)],
        " FOR UPDATE",
    )
}

impl UpdateJoin {
    /// The before image of `tables[table]` (one of the targets) through the join and WHERE.
    /// The after image is read by primary key ([`after_image_query`]).
    pub fn before_image_query(
        &self,
        dialect: Dialect,
        table: usize,
        columns: &[&str],
    ) -> ImageQuery {
        join_image(
            dialect,
            &self.tables[table],
            &self.from,
            self.selection.as_ref(),
            columns,
        )
    }

    /// The assignments that write `tables[table]`.
    pub fn assignments_of(&self, table: usize) -> &[Assignment] {
        self.targets
            .iter()
            .find(|t| t.table == table)
            .map(|t| t.assignments.as_slice())
            .unwrap_or_default()
    }
}

impl MultiDelete {
    /// The before image of `tables[table]` (one of the targets): every given column of the rows
    /// the join and WHERE select.
    pub fn before_image_query(
        &self,
        dialect: Dialect,
        table: usize,
        columns: &[&str],
    ) -> ImageQuery {
        join_image(
            dialect,
            &self.tables[table],
            &self.from,
            self.selection.as_ref(),
            columns,
        )
    }
}

/// How rows are selected by primary key in an after-image query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkPredicate {
    /// `pk IN (?, ?)` or `(pk1, pk2) IN ((?, ?), (?, ?))`, as Java writes it.
    RowIn,
    /// `(pk1 = ? AND pk2 = ?) OR (…)`: index ranges on every optimizer, including MariaDB and
    /// MySQL releases that scan for row-constructor IN lists.
    OrChain,
}

impl PkPredicate {
    /// The choice for `dialect` and a key of `key_columns` columns: IN lists for one column and
    /// for PostgreSQL; OR chains for composite keys on MySQL/MariaDB.
    pub fn for_dialect(dialect: Dialect, key_columns: usize) -> Self {
        match dialect {
            Dialect::MySql if key_columns > 1 => PkPredicate::OrChain,
            _ => PkPredicate::RowIn,
        }
    }
}

/// `SELECT <columns> FROM <table> WHERE <rows by primary key>` (no lock: the rows are already
/// locked by this transaction). Bind the key values row by row, each row's values in
/// `primary_key` order; `rows` should not exceed [`MAX_IN_ROWS`]. The table is written without
/// its alias, as the statement named it.
pub fn after_image_query(
    dialect: Dialect,
    table: &TableRef,
    columns: &[&str],
    primary_key: &[&str],
    rows: usize,
    predicate: PkPredicate,
) -> String {
    let mut params = ParamList::new(dialect);
    let mut next = 0usize;
    let mut placeholder = || {
        next += 1;
        params.placeholder(next)
    };
    let cols = columns
        .iter()
        .map(|c| dialect.quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let keys: Vec<String> = primary_key.iter().map(|c| dialect.quote(c)).collect();
    let condition = match (predicate, keys.as_slice()) {
        (_, []) => "1 = 0".to_owned(),
        (_, _) if rows == 0 => "1 = 0".to_owned(),
        (PkPredicate::RowIn, [one]) => {
            let list: Vec<String> = (0..rows).map(|_| placeholder()).collect();
            format!("{one} IN ({})", list.join(", "))
        }
        (PkPredicate::RowIn, many) => {
            let tuples: Vec<String> = (0..rows)
                .map(|_| {
                    let t: Vec<String> = many.iter().map(|_| placeholder()).collect();
                    format!("({})", t.join(", "))
                })
                .collect();
            format!("({}) IN ({})", many.join(", "), tuples.join(", "))
        }
        (PkPredicate::OrChain, many) => {
            let terms: Vec<String> = (0..rows)
                .map(|_| {
                    let t: Vec<String> = many
                        .iter()
                        .map(|k| format!("{k} = {}", placeholder()))
                        .collect();
                    format!("({})", t.join(" AND "))
                })
                .collect();
            terms.join(" OR ")
        }
    };
    format!(
        "SELECT {cols} FROM {} WHERE {condition}",
        table.name.render(dialect)
    )
}

/// A query whose placeholders take values of the statement: bound parameters or literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueQuery {
    /// The SQL text (PostgreSQL placeholders numbered from `$1`).
    pub sql: String,
    /// What to bind to each placeholder, in order: [`InsertValue::Param`] takes the statement's
    /// parameter; literals are bound as given.
    pub binds: Vec<InsertValue>,
}

impl Insert {
    /// For an upsert (`ON DUPLICATE KEY UPDATE`, `ON CONFLICT`): the rows the statement may
    /// collide with, `FOR UPDATE`, as Java's before image — every row whose primary key or a
    /// unique key equals the values a VALUES row supplies. `unique_keys` lists the primary key
    /// and each unique index (catalog column names); `table_columns` gives the column order
    /// when the statement has no column list. A key is used for a row only when the row gives
    /// every column of it as a parameter or literal (NULL never collides; DEFAULT and
    /// expressions are unknown before the insert).
    pub fn conflict_image_query(
        &self,
        dialect: Dialect,
        image_columns: &[&str],
        table_columns: &[&str],
        unique_keys: &[Vec<&str>],
    ) -> Result<ValueQuery, UnsupportedReason> {
        let kind = match &self.on_conflict {
            Some(OnConflict::DuplicateKeyUpdate { .. }) => "INSERT ... ON DUPLICATE KEY UPDATE",
            _ => "INSERT ... ON CONFLICT",
        };
        let position = |column: &str| -> Option<usize> {
            match &self.columns {
                Some(list) => list.iter().position(|c| c.matches(column, dialect)),
                None => table_columns.iter().position(|c| *c == column),
            }
        };
        let mut binds = Vec::new();
        let mut terms = Vec::new();
        for row in &self.rows {
            for key in unique_keys {
                let values: Option<Vec<&InsertValue>> = key
                    .iter()
                    .map(|c| position(c).and_then(|i| row.get(i)))
                    .map(|v| {
                        v.filter(|v| {
                            matches!(
                                v,
                                InsertValue::Param(_)
                                    | InsertValue::Number(_)
                                    | InsertValue::String(_)
                                    | InsertValue::Boolean(_)
                            )
                        })
                    })
                    .collect();
                let Some(values) = values else { continue };
                if key.is_empty() {
                    continue;
                }
                let mut parts = Vec::new();
                for (c, v) in key.iter().zip(values) {
                    binds.push(v.clone());
                    let placeholder = match dialect {
                        Dialect::MySql => "?".to_owned(),
                        Dialect::Postgres => format!("${}", binds.len()),
                    };
                    parts.push(format!("{} = {placeholder}", dialect.quote(c)));
                }
                terms.push(format!("({})", parts.join(" AND ")));
            }
        }
        if terms.is_empty() {
            return Err(UnsupportedReason::NoUniqueKeyValue(kind));
        }
        let cols = image_columns
            .iter()
            .map(|c| dialect.quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(ValueQuery {
            sql: format!(
                "SELECT {cols} FROM {} WHERE {} FOR UPDATE",
                self.table.name.render(dialect),
                terms.join(" OR ")
            ),
            binds,
        })
    }
}
