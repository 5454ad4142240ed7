//! A batch on PostgreSQL in two statements, whatever its size and mix: one read (arrays in
//! `= ANY`, the rows it will change locked) and one write (every change a data-modifying `WITH`
//! over `UNNEST`ed arrays). A database round trip costs more than the rows it carries here. Each
//! statement holds only the parts the batch has rows for: a few shapes per phase, each parsed
//! and planned once per connection (the sessions keep generic plans, see `postgres.rs`).
//!
//! All parts of the write see the same snapshot and none sees another's rows, so the net
//! changes are folded first: no row is inserted and then updated or deleted, or changed twice.

use std::collections::{HashMap, HashSet};

use ferrata_core::{BranchId, TransactionId};
use sqlx::{Postgres, Row};

use super::{ReadRows, TxState, Writes};
use crate::dialect::numbered;
use crate::ops::Tx;
use crate::timestamp;

/// The read: the batch's transactions, locked; then, when it names any, its branches and the
/// holders of the row keys it wants, locked (`$1`, `$2`, `$3`: ids, branch ids, keys).
const READ_GLOBALS: &str = "\
WITH g AS MATERIALIZED (
    SELECT transaction_id, status, xid FROM global_table
    WHERE transaction_id = ANY($1::BIGINT[]) ORDER BY transaction_id FOR UPDATE)";
const READ_LOCKS: &str = ",
l AS MATERIALIZED (
    SELECT row_key, transaction_id, branch_id FROM lock_table
    WHERE row_key = ANY($3::TEXT[]) ORDER BY row_key FOR UPDATE)";
const SELECT_GLOBALS: &str =
    "\nSELECT 0::SMALLINT, transaction_id, CAST(status AS BIGINT), xid::TEXT FROM g";
const SELECT_BRANCHES: &str = "\nUNION ALL
SELECT 1::SMALLINT, transaction_id, branch_id, NULL::TEXT FROM branch_table
    WHERE branch_id = ANY($2::BIGINT[])";
const SELECT_LOCKS: &str =
    "\nUNION ALL\nSELECT 2::SMALLINT, transaction_id, branch_id, row_key::TEXT FROM l";

pub(super) async fn read(
    tx: &mut Tx<Postgres>,
    ids: &[TransactionId],
    branch_ids: &[i64],
    keys: &[&str],
) -> Result<ReadRows, sqlx::Error> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let mut sql = String::from(READ_GLOBALS);
    if !keys.is_empty() {
        sql.push_str(READ_LOCKS);
    }
    sql.push_str(SELECT_GLOBALS);
    if !branch_ids.is_empty() {
        sql.push_str(SELECT_BRANCHES);
    }
    if !keys.is_empty() {
        sql.push_str(SELECT_LOCKS);
    }
    // Unused parameters are still bound: one statement text per shape, its types fixed.
    let rows = sqlx::query(&sql)
        .bind(ids)
        .bind(branch_ids)
        .bind(keys)
        .fetch_all(&mut **tx)
        .await?;
    let mut globals = HashMap::new();
    let mut branches = HashMap::new();
    let mut holders = Vec::new();
    for row in rows {
        let kind: i16 = row.try_get(0)?;
        let transaction_id: Option<i64> = row.try_get(1)?;
        let number: Option<i64> = row.try_get(2)?;
        let text: Option<String> = row.try_get(3)?;
        let (transaction_id, number) = (
            transaction_id.unwrap_or_default(),
            number.unwrap_or_default(),
        );
        match kind {
            0 => {
                globals.insert(
                    TransactionId(transaction_id),
                    TxState {
                        status: Some(crate::ops::global_status(number)?),
                        xid: text.unwrap_or_default(),
                        ..TxState::default()
                    },
                );
            }
            1 => {
                branches.insert(BranchId(number), TransactionId(transaction_id));
            }
            _ => holders.push((text.unwrap_or_default(), transaction_id, number)),
        }
    }
    Ok((globals, branches, holders))
}

/// The parts of the write, each a data-modifying `WITH` entry with `?` placeholders; a batch
/// sends those it has rows for (a statement of a dozen shapes at most, each prepared once per
/// connection: a part with no rows still costs its executor set-up).
const UPSERT_GLOBALS: &str = "ug AS (
    INSERT INTO global_table (xid, transaction_id, status, application_id,
        transaction_service_group, transaction_name, timeout, begin_time, application_data,
        gmt_create, gmt_modified)
    SELECT u.xid, u.id, u.status, u.app, u.grp, u.name, u.timeout, u.began, u.data,
        CAST(u.at AS TIMESTAMP(6)), CAST(u.at AS TIMESTAMP(6))
    FROM UNNEST(?::TEXT[], ?::BIGINT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[], ?::TEXT[],
        ?::BIGINT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[])
        AS u(xid, id, status, app, grp, name, timeout, began, data, at)
    ON CONFLICT (xid) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
        status = EXCLUDED.status, application_id = EXCLUDED.application_id,
        transaction_service_group = EXCLUDED.transaction_service_group,
        transaction_name = EXCLUDED.transaction_name, timeout = EXCLUDED.timeout,
        begin_time = EXCLUDED.begin_time, application_data = EXCLUDED.application_data,
        gmt_modified = EXCLUDED.gmt_modified)";
const SET_GLOBAL_STATUS: &str = "sg AS (
    UPDATE global_table AS g SET status = u.status, gmt_modified = CAST(? AS TIMESTAMP(6))
    FROM UNNEST(?::TEXT[], ?::BIGINT[]) AS u(xid, status) WHERE g.xid = u.xid)";
const UPSERT_BRANCHES: &str = "ub AS (
    INSERT INTO branch_table (branch_id, xid, transaction_id, resource_id, branch_type, status,
        client_id, application_data, gmt_create, gmt_modified)
    SELECT u.id, u.xid, u.tx, u.resource, u.kind, u.status, u.client, u.data,
        CAST(u.at AS TIMESTAMP(6)), CAST(u.at AS TIMESTAMP(6))
    FROM UNNEST(?::BIGINT[], ?::TEXT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[], ?::BIGINT[],
        ?::TEXT[], ?::TEXT[], ?::TEXT[])
        AS u(id, xid, tx, resource, kind, status, client, data, at)
    ON CONFLICT (branch_id) DO UPDATE SET xid = EXCLUDED.xid,
        transaction_id = EXCLUDED.transaction_id, resource_id = EXCLUDED.resource_id,
        branch_type = EXCLUDED.branch_type, status = EXCLUDED.status,
        client_id = EXCLUDED.client_id, application_data = EXCLUDED.application_data,
        gmt_modified = EXCLUDED.gmt_modified)";
const SET_BRANCH_STATUS: &str = "sb AS (
    UPDATE branch_table AS b SET status = u.status, gmt_modified = CAST(? AS TIMESTAMP(6)),
        application_data = COALESCE(u.data, b.application_data)
    FROM UNNEST(?::BIGINT[], ?::BIGINT[], ?::TEXT[]) AS u(id, status, data)
    WHERE b.branch_id = u.id)";
const INSERT_LOCKS: &str = "il AS (
    INSERT INTO lock_table (row_key, xid, transaction_id, branch_id, resource_id, table_name,
        pk, status, gmt_create, gmt_modified)
    SELECT u.key, u.xid, u.tx, u.branch, u.resource, u.tab, u.pk, 0,
        CAST(t.at AS TIMESTAMP(6)), CAST(t.at AS TIMESTAMP(6))
    FROM (SELECT CAST(? AS TEXT) AS at) AS t,
        UNNEST(?::TEXT[], ?::TEXT[], ?::BIGINT[], ?::BIGINT[], ?::TEXT[], ?::TEXT[], ?::TEXT[])
        WITH ORDINALITY AS u(key, xid, tx, branch, resource, tab, pk, n)
    ORDER BY u.n
    ON CONFLICT (row_key) DO NOTHING RETURNING 1)";
const DELETE_LOCKS: &str = "dl AS (
    DELETE FROM lock_table WHERE xid = ANY(?::TEXT[]) OR branch_id = ANY(?::BIGINT[]))";
const DELETE_BRANCHES: &str = "db AS (
    DELETE FROM branch_table WHERE branch_id = ANY(?::BIGINT[]) OR xid = ANY(?::TEXT[]))";
const DELETE_GLOBALS: &str = "dg AS (DELETE FROM global_table WHERE xid = ANY(?::TEXT[]))";

/// A bound value of the write.
enum Param {
    Text(String),
    Texts(Vec<String>),
    MaybeTexts(Vec<Option<String>>),
    Ints(Vec<i64>),
}

/// The write's parts and their values, in placeholder order.
#[derive(Default)]
struct Statement {
    parts: Vec<&'static str>,
    params: Vec<Param>,
}

impl Statement {
    fn part(&mut self, part: &'static str, params: impl IntoIterator<Item = Param>) {
        self.parts.push(part);
        self.params.extend(params);
    }
}

/// Writes the batch's net changes; false when a lock row it inserted was taken by another
/// node between the read and the insert.
pub(super) async fn write(
    tx: &mut Tx<Postgres>,
    txs: &HashMap<TransactionId, TxState>,
    writes: Writes<'_>,
    micros: i64,
) -> Result<bool, sqlx::Error> {
    let state = |id: &TransactionId| txs.get(id);
    let removed = |id: &TransactionId| state(id).is_some_and(|s| s.removed);
    let released = |id: &TransactionId| state(id).is_some_and(|s| s.released);
    let xid_of = |id: &TransactionId| state(id).map_or("", |s| s.xid.as_str());
    let branch_removes: HashSet<BranchId> = writes.branch_removes.iter().copied().collect();

    // Transactions: an added one carries its final status; the others are updated.
    let mut g = GlobalRows::default();
    for (id, (global, at)) in &writes.global_upserts {
        if removed(id) {
            continue;
        }
        let status = writes
            .status_updates
            .get(id)
            .copied()
            .unwrap_or(global.status);
        g.xid.push(global.xid.clone());
        g.id.push(id.0);
        g.status.push(i64::from(status.code()));
        g.app.push(global.application_id.clone());
        g.group.push(global.transaction_service_group.clone());
        g.name.push(global.transaction_name.clone());
        g.timeout.push(i64::from(global.timeout_ms));
        g.began.push(global.begin_time_ms);
        g.data.push(global.application_data.clone());
        g.at.push(timestamp(*at));
    }
    let (mut status_xids, mut statuses) = (Vec::new(), Vec::new());
    for (id, status) in &writes.status_updates {
        if !removed(id) && !writes.global_upserts.contains_key(id) {
            status_xids.push(xid_of(id).to_owned());
            statuses.push(i64::from(status.code()));
        }
    }

    // Branches: an added one carries its final status and data; the others are updated.
    let mut b = BranchRows::default();
    let mut added = HashSet::new();
    for &(branch, at) in &writes.branch_upserts {
        if removed(&branch.transaction_id) || branch_removes.contains(&branch.branch_id) {
            continue;
        }
        added.insert(branch.branch_id);
        let update = writes.branch_updates.get(&branch.branch_id);
        let status = update.map_or(branch.status, |u| u.1);
        let data = update
            .and_then(|u| u.2)
            .unwrap_or(branch.application_data.as_str());
        b.id.push(branch.branch_id.0);
        b.xid.push(xid_of(&branch.transaction_id).to_owned());
        b.tx.push(branch.transaction_id.0);
        b.resource.push(branch.resource_id.clone());
        b.kind.push(branch.branch_type.name().to_owned());
        b.status.push(i64::from(status.code()));
        b.client.push(branch.client_id.clone());
        b.data.push(data.to_owned());
        b.at.push(timestamp(at));
    }
    let (mut update_ids, mut update_statuses, mut update_data) =
        (Vec::new(), Vec::new(), Vec::new());
    for (branch_id, (transaction_id, status, data)) in &writes.branch_updates {
        if added.contains(branch_id)
            || branch_removes.contains(branch_id)
            || removed(transaction_id)
        {
            continue;
        }
        update_ids.push(branch_id.0);
        update_statuses.push(i64::from(status.code()));
        update_data.push(data.map(str::to_owned));
    }

    // Lock rows: those a later op of the batch lets go again are not taken at all.
    let mut l = LockRows::default();
    let mut inserts = writes.lock_inserts;
    inserts.sort_by(|x, y| x.0.cmp(&y.0));
    for (key, branch, table, pk) in inserts {
        if released(&branch.transaction_id) || branch_removes.contains(&branch.branch_id) {
            continue;
        }
        l.key.push(key);
        l.xid.push(xid_of(&branch.transaction_id).to_owned());
        l.tx.push(branch.transaction_id.0);
        l.branch.push(branch.branch_id.0);
        l.resource.push(branch.resource_id.clone());
        l.table.push(table.to_owned());
        l.pk.push(pk.to_owned());
    }
    let wanted = l.key.len();

    let released_xids: Vec<String> = txs
        .values()
        .filter(|s| s.released)
        .map(|s| s.xid.clone())
        .collect();
    let removed_xids: Vec<String> = txs
        .values()
        .filter(|s| s.removed)
        .map(|s| s.xid.clone())
        .collect();
    let removed_branches: Vec<i64> = writes.branch_removes.iter().map(|b| b.0).collect();

    let at = timestamp(micros);
    let mut statement = Statement::default();
    if !g.id.is_empty() {
        statement.part(
            UPSERT_GLOBALS,
            [
                Param::Texts(g.xid),
                Param::Ints(g.id),
                Param::Ints(g.status),
                Param::Texts(g.app),
                Param::Texts(g.group),
                Param::Texts(g.name),
                Param::Ints(g.timeout),
                Param::Ints(g.began),
                Param::Texts(g.data),
                Param::Texts(g.at),
            ],
        );
    }
    if !status_xids.is_empty() {
        statement.part(
            SET_GLOBAL_STATUS,
            [
                Param::Text(at.clone()),
                Param::Texts(status_xids),
                Param::Ints(statuses),
            ],
        );
    }
    if !b.id.is_empty() {
        statement.part(
            UPSERT_BRANCHES,
            [
                Param::Ints(b.id),
                Param::Texts(b.xid),
                Param::Ints(b.tx),
                Param::Texts(b.resource),
                Param::Texts(b.kind),
                Param::Ints(b.status),
                Param::Texts(b.client),
                Param::Texts(b.data),
                Param::Texts(b.at),
            ],
        );
    }
    if !update_ids.is_empty() {
        statement.part(
            SET_BRANCH_STATUS,
            [
                Param::Text(at.clone()),
                Param::Ints(update_ids),
                Param::Ints(update_statuses),
                Param::MaybeTexts(update_data),
            ],
        );
    }
    if wanted > 0 {
        statement.part(
            INSERT_LOCKS,
            [
                Param::Text(at),
                Param::Texts(l.key),
                Param::Texts(l.xid),
                Param::Ints(l.tx),
                Param::Ints(l.branch),
                Param::Texts(l.resource),
                Param::Texts(l.table),
                Param::Texts(l.pk),
            ],
        );
    }
    if !released_xids.is_empty() || !removed_branches.is_empty() {
        statement.part(
            DELETE_LOCKS,
            [
                Param::Texts(released_xids.clone()),
                Param::Ints(removed_branches.clone()),
            ],
        );
    }
    if !removed_branches.is_empty() || !removed_xids.is_empty() {
        statement.part(
            DELETE_BRANCHES,
            [
                Param::Ints(removed_branches),
                Param::Texts(removed_xids.clone()),
            ],
        );
    }
    if !removed_xids.is_empty() {
        statement.part(DELETE_GLOBALS, [Param::Texts(removed_xids)]);
    }
    if statement.parts.is_empty() {
        return Ok(true);
    }
    let counted = if wanted > 0 {
        "SELECT count(*) FROM il"
    } else {
        "SELECT CAST(0 AS BIGINT)"
    };
    let sql = numbered(&format!("WITH {} {counted}", statement.parts.join(",\n")));
    let mut query = sqlx::query_scalar::<_, i64>(&sql);
    for param in statement.params {
        query = match param {
            Param::Text(value) => query.bind(value),
            Param::Texts(values) => query.bind(values),
            Param::MaybeTexts(values) => query.bind(values),
            Param::Ints(values) => query.bind(values),
        };
    }
    let inserted = query.fetch_one(&mut **tx).await?;
    // Each row was absent when read: one not inserted now is another node's.
    Ok(usize::try_from(inserted).ok() == Some(wanted))
}

/// `global_table` rows to upsert, column by column.
#[derive(Default)]
struct GlobalRows {
    xid: Vec<String>,
    id: Vec<i64>,
    status: Vec<i64>,
    app: Vec<String>,
    group: Vec<String>,
    name: Vec<String>,
    timeout: Vec<i64>,
    began: Vec<i64>,
    data: Vec<String>,
    at: Vec<String>,
}

/// `branch_table` rows to upsert, column by column.
#[derive(Default)]
struct BranchRows {
    id: Vec<i64>,
    xid: Vec<String>,
    tx: Vec<i64>,
    resource: Vec<String>,
    kind: Vec<String>,
    status: Vec<i64>,
    client: Vec<String>,
    data: Vec<String>,
    at: Vec<String>,
}

/// `lock_table` rows to insert, column by column.
#[derive(Default)]
struct LockRows {
    key: Vec<String>,
    xid: Vec<String>,
    tx: Vec<i64>,
    branch: Vec<i64>,
    resource: Vec<String>,
    table: Vec<String>,
    pk: Vec<String>,
}
