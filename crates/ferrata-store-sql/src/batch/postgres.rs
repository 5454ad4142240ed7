//! A batch on PostgreSQL in two statements, whatever its size and mix: one read (arrays in
//! `= ANY`, the rows it will change locked) and one write (every change a data-modifying `WITH`
//! over `UNNEST`ed arrays). A database round trip costs more than the rows it carries here, and
//! one statement shape per phase is parsed and planned once per connection.
//!
//! All parts of the write see the same snapshot and none sees another's rows, so the net
//! changes are folded first: no row is inserted and then updated or deleted, or changed twice.

use std::collections::{HashMap, HashSet};

use ferrata_core::{BranchId, TransactionId};
use sqlx::{Postgres, Row};

use super::{ReadRows, TxState, Writes};
use crate::ops::Tx;
use crate::timestamp;

const READ: &str = "\
WITH g AS MATERIALIZED (
    SELECT transaction_id, status, xid FROM global_table
    WHERE transaction_id = ANY($1::BIGINT[]) ORDER BY transaction_id FOR UPDATE),
l AS MATERIALIZED (
    SELECT row_key, transaction_id, branch_id FROM lock_table
    WHERE row_key = ANY($3::TEXT[]) ORDER BY row_key FOR UPDATE)
SELECT 0::SMALLINT, transaction_id, CAST(status AS BIGINT), xid::TEXT FROM g
UNION ALL
SELECT 1::SMALLINT, transaction_id, branch_id, NULL::TEXT FROM branch_table
    WHERE branch_id = ANY($2::BIGINT[])
UNION ALL
SELECT 2::SMALLINT, transaction_id, branch_id, row_key::TEXT FROM l";

pub(super) async fn read(
    tx: &mut Tx<Postgres>,
    ids: &[TransactionId],
    branch_ids: &[i64],
    keys: &[&str],
) -> Result<ReadRows, sqlx::Error> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(READ)
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

const WRITE: &str = "\
WITH ug AS (
    INSERT INTO global_table (xid, transaction_id, status, application_id,
        transaction_service_group, transaction_name, timeout, begin_time, application_data,
        gmt_create, gmt_modified)
    SELECT u.xid, u.id, u.status, u.app, u.grp, u.name, u.timeout, u.began, u.data,
        CAST(u.at AS TIMESTAMP(6)), CAST(u.at AS TIMESTAMP(6))
    FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
        $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[])
        AS u(xid, id, status, app, grp, name, timeout, began, data, at)
    ON CONFLICT (xid) DO UPDATE SET transaction_id = EXCLUDED.transaction_id,
        status = EXCLUDED.status, application_id = EXCLUDED.application_id,
        transaction_service_group = EXCLUDED.transaction_service_group,
        transaction_name = EXCLUDED.transaction_name, timeout = EXCLUDED.timeout,
        begin_time = EXCLUDED.begin_time, application_data = EXCLUDED.application_data,
        gmt_modified = EXCLUDED.gmt_modified),
sg AS (
    UPDATE global_table AS g SET status = u.status, gmt_modified = CAST($11 AS TIMESTAMP(6))
    FROM UNNEST($12::TEXT[], $13::BIGINT[]) AS u(xid, status) WHERE g.xid = u.xid),
ub AS (
    INSERT INTO branch_table (branch_id, xid, transaction_id, resource_id, branch_type, status,
        client_id, application_data, gmt_create, gmt_modified)
    SELECT u.id, u.xid, u.tx, u.resource, u.kind, u.status, u.client, u.data,
        CAST(u.at AS TIMESTAMP(6)), CAST(u.at AS TIMESTAMP(6))
    FROM UNNEST($14::BIGINT[], $15::TEXT[], $16::BIGINT[], $17::TEXT[], $18::TEXT[],
        $19::BIGINT[], $20::TEXT[], $21::TEXT[], $22::TEXT[])
        AS u(id, xid, tx, resource, kind, status, client, data, at)
    ON CONFLICT (branch_id) DO UPDATE SET xid = EXCLUDED.xid,
        transaction_id = EXCLUDED.transaction_id, resource_id = EXCLUDED.resource_id,
        branch_type = EXCLUDED.branch_type, status = EXCLUDED.status,
        client_id = EXCLUDED.client_id, application_data = EXCLUDED.application_data,
        gmt_modified = EXCLUDED.gmt_modified),
sb AS (
    UPDATE branch_table AS b SET status = u.status, gmt_modified = CAST($11 AS TIMESTAMP(6)),
        application_data = COALESCE(u.data, b.application_data)
    FROM UNNEST($23::BIGINT[], $24::BIGINT[], $25::TEXT[]) AS u(id, status, data)
    WHERE b.branch_id = u.id),
il AS (
    INSERT INTO lock_table (row_key, xid, transaction_id, branch_id, resource_id, table_name,
        pk, status, gmt_create, gmt_modified)
    SELECT u.key, u.xid, u.tx, u.branch, u.resource, u.tab, u.pk, 0,
        CAST($11 AS TIMESTAMP(6)), CAST($11 AS TIMESTAMP(6))
    FROM UNNEST($26::TEXT[], $27::TEXT[], $28::BIGINT[], $29::BIGINT[], $30::TEXT[],
        $31::TEXT[], $32::TEXT[]) WITH ORDINALITY AS u(key, xid, tx, branch, resource, tab, pk, n)
    ORDER BY u.n
    ON CONFLICT (row_key) DO NOTHING RETURNING 1),
dl AS (
    DELETE FROM lock_table WHERE xid = ANY($33::TEXT[]) OR branch_id = ANY($34::BIGINT[])),
db AS (
    DELETE FROM branch_table WHERE branch_id = ANY($34::BIGINT[]) OR xid = ANY($35::TEXT[])),
dg AS (
    DELETE FROM global_table WHERE xid = ANY($35::TEXT[]))
SELECT count(*) FROM il";

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

    let released_xids: Vec<&str> = txs
        .values()
        .filter(|s| s.released)
        .map(|s| s.xid.as_str())
        .collect();
    let removed_xids: Vec<&str> = txs
        .values()
        .filter(|s| s.removed)
        .map(|s| s.xid.as_str())
        .collect();
    let removed_branches: Vec<i64> = writes.branch_removes.iter().map(|b| b.0).collect();

    let inserted: i64 = sqlx::query_scalar(WRITE)
        .bind(g.xid)
        .bind(g.id)
        .bind(g.status)
        .bind(g.app)
        .bind(g.group)
        .bind(g.name)
        .bind(g.timeout)
        .bind(g.began)
        .bind(g.data)
        .bind(g.at)
        .bind(timestamp(micros))
        .bind(status_xids)
        .bind(statuses)
        .bind(b.id)
        .bind(b.xid)
        .bind(b.tx)
        .bind(b.resource)
        .bind(b.kind)
        .bind(b.status)
        .bind(b.client)
        .bind(b.data)
        .bind(b.at)
        .bind(update_ids)
        .bind(update_statuses)
        .bind(update_data)
        .bind(l.key)
        .bind(l.xid)
        .bind(l.tx)
        .bind(l.branch)
        .bind(l.resource)
        .bind(l.table)
        .bind(l.pk)
        .bind(released_xids)
        .bind(removed_branches)
        .bind(removed_xids)
        .fetch_one(&mut **tx)
        .await?;
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
