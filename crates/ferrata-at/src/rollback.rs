//! Phase-2 rollback of an AT branch (semantics 4.7): under the undo row's lock, check that
//! the rows are still what the branch left, restore the before images in reverse order, and
//! delete the undo log; with no undo log, leave the global-finished marker.

use std::sync::Arc;

use ferrata::BranchStatus;

use crate::database::{AtDatabase, TimeZone, same_value};
use crate::error::AtError;
use crate::image::{self, key_values};
use crate::meta::{ColumnMeta, TableMeta};
use crate::source::Shared;
use crate::undo::{Field, Row, SqlType, SqlUndoLog, TableRecords, decode_rollback_info};
use crate::undo_table::{Inserted, LogStatus};

/// Times a rollback starts over after a concurrent marker insert (unique-key race).
const MARKER_RACE_ATTEMPTS: u32 = 3;

/// Why a rollback could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// A row changed outside the global transaction since the branch wrote it: restoring
    /// the before image would destroy that change. An operator must repair the data.
    #[error(transparent)]
    DirtyData(Box<DirtyRow>),
    #[error(transparent)]
    Failed(#[from] AtError),
}

impl From<sqlx::Error> for RollbackError {
    fn from(error: sqlx::Error) -> Self {
        RollbackError::Failed(error.into())
    }
}

/// A row that changed outside the global transaction, as the rollback found it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "dirty rollback of branch {branch_id} of {xid}: row {table} {key} was changed outside the global transaction (now {current}, the branch left {expected}); repair it by hand, then mark the branch resolved"
)]
pub struct DirtyRow {
    pub xid: String,
    pub branch_id: i64,
    pub table: String,
    pub key: String,
    pub current: String,
    pub expected: String,
}

/// Rolls a branch back and says what to answer the TC.
pub(crate) async fn rollback_branch<DB: AtDatabase>(
    shared: &Arc<Shared<DB>>,
    xid: &str,
    branch_id: i64,
) -> BranchStatus {
    for _ in 0..MARKER_RACE_ATTEMPTS {
        match try_rollback(shared, xid, branch_id).await {
            Ok(Some(status)) => return status,
            Ok(None) => continue,
            Err(RollbackError::DirtyData(_)) => {
                return BranchStatus::PhaseTwoRollbackFailedUnretryable;
            }
            Err(RollbackError::Failed(error)) => {
                tracing::warn!(%xid, branch_id, %error, "AT rollback failed; the TC will retry it");
                return BranchStatus::PhaseTwoRollbackFailedRetryable;
            }
        }
    }
    BranchStatus::PhaseTwoRollbackFailedRetryable
}

/// One attempt; `None` when a concurrent marker insert means starting over.
async fn try_rollback<DB: AtDatabase>(
    shared: &Arc<Shared<DB>>,
    xid: &str,
    branch_id: i64,
) -> Result<Option<BranchStatus>, RollbackError> {
    let mut tx = shared.pool.begin().await?;
    let table = &shared.undo_table;
    let Some(row) = table
        .lock(&mut tx, branch_id, xid)
        .await
        .map_err(AtError::from)?
    else {
        // Phase one has not committed (or never will): the marker makes a late commit fail
        // on the unique key instead of leaving changes nobody undoes.
        return match table
            .insert_marker(&mut tx, branch_id, xid)
            .await
            .map_err(AtError::from)?
        {
            Inserted::Yes => {
                tx.commit().await?;
                Ok(Some(BranchStatus::PhaseTwoRollbacked))
            }
            Inserted::AlreadyExists => Ok(None),
        };
    };
    if row.status != LogStatus::Normal {
        // A marker: finished by an earlier rollback.
        tx.commit().await?;
        return Ok(Some(BranchStatus::PhaseTwoRollbacked));
    }
    let context = crate::undo::UndoContext::parse(&row.context);
    let sub_ids = context.sub_ids().map_err(AtError::from)?;
    let mut chunks = Vec::with_capacity(sub_ids.len());
    for sub_id in &sub_ids {
        // A missing chunk leaves the count short, which decoding reports.
        if let Some(chunk) = table
            .lock(&mut tx, *sub_id, xid)
            .await
            .map_err(AtError::from)?
        {
            chunks.push(chunk.rollback_info);
        }
    }
    let chunk_refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
    let log = decode_rollback_info(
        &row.context,
        &row.rollback_info,
        &chunk_refs,
        &shared.settings.undo,
    )
    .map_err(AtError::from)?;
    let zone = shared.settings.java_time_zone;
    for item in log.sql_undo_logs.iter().rev() {
        let meta = shared.meta(&mut tx, &item.table_name).await?;
        if shared.settings.data_validation
            && !still_as_left::<DB>(&mut tx, &meta, item, xid, branch_id, zone).await?
        {
            continue;
        }
        compensate::<DB>(&mut tx, &meta, item, zone).await?;
    }
    table
        .delete(&mut tx, branch_id, xid)
        .await
        .map_err(AtError::from)?;
    for sub_id in sub_ids {
        table
            .delete(&mut tx, sub_id, xid)
            .await
            .map_err(AtError::from)?;
    }
    tx.commit().await?;
    Ok(Some(BranchStatus::PhaseTwoRollbacked))
}

/// The rows an undo item restores from (before image) and the rows it left (after image).
fn images(item: &SqlUndoLog) -> (&[Row], &[Row]) {
    fn rows(image: &Option<TableRecords>) -> &[Row] {
        image.as_ref().map_or(&[], |i| i.rows.as_slice())
    }
    (rows(&item.before_image), rows(&item.after_image))
}

/// Java's data validation: true to restore; false when there is nothing to do (images equal,
/// or the rows are already back to the before image); a dirty-data error when the rows are
/// neither what the branch left nor what it found.
async fn still_as_left<DB: AtDatabase>(
    conn: &mut DB::Connection,
    meta: &TableMeta,
    item: &SqlUndoLog,
    xid: &str,
    branch_id: i64,
    zone: TimeZone,
) -> Result<bool, RollbackError> {
    let (before, after) = images(item);
    if rows_equal(meta, before, after) {
        return Ok(false);
    }
    let keyed = if item.sql_type == SqlType::Insert {
        after
    } else {
        before
    };
    let Some(first) = keyed.first() else {
        return Ok(false);
    };
    let names: Vec<&str> = first.fields.iter().map(|f| f.name.as_str()).collect();
    let columns = image::columns_of(meta, &names).map_err(RollbackError::Failed)?;
    let table = crate::sql::TableRef {
        name: table_name_of(meta),
        alias: None,
    };
    let current = image::rows_by_key::<DB>(
        conn,
        &table,
        meta,
        &columns,
        &image::keys_of(meta, keyed),
        zone,
    )
    .await?;
    if rows_equal(meta, after, &current) {
        return Ok(true);
    }
    if rows_equal(meta, before, &current) {
        return Ok(false);
    }
    let changed = first_difference(meta, after, &current);
    let error = RollbackError::DirtyData(Box::new(DirtyRow {
        xid: xid.to_owned(),
        branch_id,
        table: meta.table_name.clone(),
        key: changed.0,
        current: changed.1,
        expected: changed.2,
    }));
    tracing::error!(%xid, branch_id, table = %meta.table_name, %error, "AT rollback refused: data changed outside the global transaction");
    Err(error)
}

/// The table as a statement would name it: schema-qualified catalog names.
fn table_name_of(meta: &TableMeta) -> crate::sql::TableName {
    crate::sql::TableName {
        parts: vec![
            crate::sql::Ident::quoted(meta.schema.clone()),
            crate::sql::Ident::quoted(meta.table_name.clone()),
        ],
    }
}

fn key_string(meta: &TableMeta, row: &Row) -> String {
    key_values(meta, row)
        .iter()
        .map(|f| format!("{}={}", f.name, image::key_token(&f.value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Same rows (matched by primary key) with the same values, field by field.
fn rows_equal(meta: &TableMeta, left: &[Row], right: &[Row]) -> bool {
    left.len() == right.len()
        && left.iter().all(|l| {
            let key = key_string(meta, l);
            right
                .iter()
                .find(|r| key_string(meta, r) == key)
                .is_some_and(|r| row_equal(l, r))
        })
}

fn row_equal(left: &Row, right: &Row) -> bool {
    left.fields.iter().all(|l| {
        right
            .fields
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(&l.name))
            .is_some_and(|r| same_value(&l.value, &r.value, l.jdbc_type))
    })
}

/// (key, current, expected) of the first row that differs, for the dirty-data message.
fn first_difference(
    meta: &TableMeta,
    expected: &[Row],
    current: &[Row],
) -> (String, String, String) {
    for row in expected {
        let key = key_string(meta, row);
        match current.iter().find(|r| key_string(meta, r) == key) {
            Some(now) if row_equal(row, now) => continue,
            Some(now) => return (key, describe(now), describe(row)),
            None => return (key, "deleted".to_owned(), describe(row)),
        }
    }
    let extra = current.iter().find(|r| {
        !expected
            .iter()
            .any(|e| key_string(meta, e) == key_string(meta, r))
    });
    match extra {
        Some(row) => (key_string(meta, row), describe(row), "no row".to_owned()),
        None => (String::new(), String::new(), String::new()),
    }
}

fn describe(row: &Row) -> String {
    row.fields
        .iter()
        .map(|f| format!("{}={:?}", f.name, f.value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the compensating statements of one undo item, one per row.
async fn compensate<DB: AtDatabase>(
    conn: &mut DB::Connection,
    meta: &TableMeta,
    item: &SqlUndoLog,
    zone: TimeZone,
) -> Result<(), RollbackError> {
    let dialect = DB::SQL;
    let table = table_name_of(meta).render(dialect);
    let (before, after) = images(item);
    let column = |name: &str| -> Result<&ColumnMeta, RollbackError> {
        meta.column(name).ok_or_else(|| {
            RollbackError::Failed(AtError::Meta(crate::meta::MetaError::NotFound(format!(
                "{}.{name}",
                meta.table_name
            ))))
        })
    };
    // One statement per row: (rows, SQL for a row, the fields it binds in placeholder order).
    let rows = match item.sql_type {
        SqlType::Insert => after,
        SqlType::Update | SqlType::UpdateJoin | SqlType::MultiUpdate => before,
        SqlType::Delete | SqlType::MultiDelete => before,
        _ => {
            return Err(RollbackError::Failed(AtError::NotYetSupported(
                "undo of this statement type",
            )));
        }
    };
    for row in rows {
        let mut marks = Placeholders::new(dialect);
        let mut equals = |fields: &[&Field], separator: &str| -> Result<String, RollbackError> {
            Ok(fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{} = {}",
                        dialect.quote(&column(&f.name)?.name),
                        marks.next()
                    ))
                })
                .collect::<Result<Vec<_>, RollbackError>>()?
                .join(separator))
        };
        let (keys, values): (Vec<&Field>, Vec<&Field>) = row
            .fields
            .iter()
            .partition(|f| meta.is_primary_key(&f.name));
        let (sql, bound): (String, Vec<&Field>) = match item.sql_type {
            SqlType::Insert => {
                let keys = key_values(meta, row);
                (
                    format!("DELETE FROM {table} WHERE {}", equals(&keys, " AND ")?),
                    keys,
                )
            }
            SqlType::Delete | SqlType::MultiDelete => {
                let names = row
                    .fields
                    .iter()
                    .map(|f| Ok(dialect.quote(&column(&f.name)?.name)))
                    .collect::<Result<Vec<_>, RollbackError>>()?
                    .join(", ");
                let slots = row
                    .fields
                    .iter()
                    .map(|_| marks.next())
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    format!("INSERT INTO {table} ({names}) VALUES ({slots})"),
                    row.fields.iter().collect(),
                )
            }
            _ => {
                let set = equals(&values, ", ")?;
                let condition = equals(&keys, " AND ")?;
                (
                    format!("UPDATE {table} SET {set} WHERE {condition}"),
                    values.iter().chain(keys.iter()).copied().collect(),
                )
            }
        };
        let mut args = DB::Arguments::default();
        for f in bound {
            DB::bind_value(&mut args, &f.value, Some(column(&f.name)?), zone)
                .map_err(AtError::from)?;
        }
        DB::execute(conn, &sql, args).await?;
    }
    Ok(())
}

/// `?` or `$1, $2, …` in the order asked for.
struct Placeholders {
    dialect: crate::sql::Dialect,
    count: usize,
}

impl Placeholders {
    fn new(dialect: crate::sql::Dialect) -> Placeholders {
        Placeholders { dialect, count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        match self.dialect {
            crate::sql::Dialect::MySql => "?".to_owned(),
            crate::sql::Dialect::Postgres => format!("${}", self.count),
        }
    }
}
