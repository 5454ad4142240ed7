//! A bank in XA mode across two databases: each transfer debits an account on MariaDB and
//! credits one on PostgreSQL, one branch per database, from concurrent workers; a seeded
//! random share of the transfers fails (a branch rolled back in phase one, an overdraft, or the
//! TM deciding to roll back after both branches prepared). Money is never created or lost, every
//! account ends exactly where the committed transfers put it, and nothing stays prepared.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ferrata::{Client, GlobalStatus};
use ferrata_xa::XaDataSource;
use ferrata_xa::sqlx::{self, Executor as _, MySql, Postgres};
use support::*;

const ACCOUNTS: i64 = 4;
const OPENING: i64 = 1_000;
const WORKERS: u64 = 4;
const TRANSFERS_PER_WORKER: u64 = 15;

/// A tiny deterministic generator (xorshift), seeded per worker.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

#[derive(Debug, Clone, Copy)]
enum Fate {
    Commit,
    /// The credit branch fails in phase one and is rolled back; the TM rolls back.
    CreditFails,
    /// Both branches prepare; the TM rolls back anyway.
    TmRollsBack,
}

/// (debited MariaDB account, credited PostgreSQL account, amount) of a committed transfer.
type Transfer = (i64, i64, i64);

async fn open_accounts(mysql: &sqlx::MySqlPool, postgres: &sqlx::PgPool) {
    for (create, rows) in [
        (
            "CREATE TABLE xa_bank_debit (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
            "INSERT INTO xa_bank_debit (id, balance) VALUES ",
        ),
        (
            "CREATE TABLE xa_bank_credit (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
            "INSERT INTO xa_bank_credit (id, balance) VALUES ",
        ),
    ] {
        let values: Vec<String> = (1..=ACCOUNTS)
            .map(|id| format!("({id}, {OPENING})"))
            .collect();
        let insert = format!("{rows}{}", values.join(", "));
        if create.contains("debit") {
            mysql
                .execute("DROP TABLE IF EXISTS xa_bank_debit")
                .await
                .unwrap();
            mysql.execute(create).await.unwrap();
            mysql.execute(&*insert).await.unwrap();
        } else {
            postgres
                .execute("DROP TABLE IF EXISTS xa_bank_credit")
                .await
                .unwrap();
            postgres.execute(create).await.unwrap();
            postgres.execute(&*insert).await.unwrap();
        }
    }
}

/// One worker's transfers; returns the committed ones and every XID it began.
async fn worker(
    seed: u64,
    client: Client,
    debit: XaDataSource<MySql>,
    credit: XaDataSource<Postgres>,
) -> (Vec<Transfer>, Vec<String>) {
    let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut committed = Vec::new();
    let mut xids = Vec::new();
    for _ in 0..TRANSFERS_PER_WORKER {
        let from = i64::try_from(dice.roll(4)).unwrap() + 1;
        let to = i64::try_from(dice.roll(4)).unwrap() + 1;
        // Now and then more than an account can hold: the debit fails as an overdraft.
        let amount =
            i64::try_from(dice.roll(60) + 1).unwrap() * if dice.roll(10) == 0 { 100 } else { 1 };
        let fate = match dice.roll(6) {
            0 => Fate::CreditFails,
            1 => Fate::TmRollsBack,
            _ => Fate::Commit,
        };
        let tx = client
            .begin(Duration::from_secs(60), "xa-bank")
            .await
            .unwrap();
        let xid = tx.xid().to_owned();
        xids.push(xid.clone());

        let mut debit_branch = debit.begin(&xid).await.unwrap();
        let debited = sqlx::query(&format!(
            "UPDATE xa_bank_debit SET balance = balance - {amount} WHERE id = {from} AND balance >= {amount}"
        ))
        .execute(&mut *debit_branch.connection())
        .await
        .unwrap()
        .rows_affected();
        if debited == 0 {
            debit_branch.rollback().await.unwrap();
            assert_eq!(tx.rollback().await.unwrap(), GlobalStatus::Rollbacked);
            continue;
        }
        debit_branch.prepare().await.unwrap();

        let mut credit_branch = credit.begin(&xid).await.unwrap();
        sqlx::query(&format!(
            "UPDATE xa_bank_credit SET balance = balance + {amount} WHERE id = {to}"
        ))
        .execute(&mut *credit_branch.connection())
        .await
        .unwrap();
        match fate {
            Fate::CreditFails => {
                credit_branch.rollback().await.unwrap();
                assert_eq!(tx.rollback().await.unwrap(), GlobalStatus::Rollbacked);
            }
            Fate::TmRollsBack => {
                credit_branch.prepare().await.unwrap();
                assert_eq!(tx.rollback().await.unwrap(), GlobalStatus::Rollbacked);
            }
            Fate::Commit => {
                credit_branch.prepare().await.unwrap();
                assert_eq!(tx.commit().await.unwrap(), GlobalStatus::Committed);
                committed.push((from, to, amount));
            }
        }
    }
    (committed, xids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_with_failures_keep_every_balance_exact() {
    let server = server();
    let client = client(&server, "xa-bank").await;
    let mysql = mysql_pool(12).await;
    let postgres = postgres_pool(12).await;
    open_accounts(&mysql, &postgres).await;
    let debit = XaDataSource::register(&client, mysql.clone(), "jdbc:mysql://127.0.0.1/xa-bank")
        .await
        .unwrap();
    let credit = XaDataSource::register(
        &client,
        postgres.clone(),
        "jdbc:postgresql://127.0.0.1/xa-bank",
    )
    .await
    .unwrap();

    let workers: Vec<_> = (1..=WORKERS)
        .map(|seed| tokio::spawn(worker(seed, client.clone(), debit.clone(), credit.clone())))
        .collect();
    let mut committed = Vec::new();
    let mut xids = Vec::new();
    for worker in workers {
        let (done, began) = worker.await.unwrap();
        committed.extend(done);
        xids.extend(began);
    }
    assert!(!committed.is_empty(), "some transfers commit");
    assert!(
        committed.len() < xids.len(),
        "some transfers fail ({} of {})",
        committed.len(),
        xids.len()
    );

    let mut expected_debit: BTreeMap<i64, i64> = (1..=ACCOUNTS).map(|id| (id, OPENING)).collect();
    let mut expected_credit = expected_debit.clone();
    for (from, to, amount) in &committed {
        *expected_debit.get_mut(from).unwrap() -= amount;
        *expected_credit.get_mut(to).unwrap() += amount;
    }
    let debit_rows: BTreeMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("SELECT id, balance FROM xa_bank_debit")
            .fetch_all(&mysql)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let credit_rows: BTreeMap<i64, i64> =
        sqlx::query_as::<_, (i64, i64)>("SELECT id, balance FROM xa_bank_credit")
            .fetch_all(&postgres)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(debit_rows, expected_debit, "MariaDB balances");
    assert_eq!(credit_rows, expected_credit, "PostgreSQL balances");
    let total: i64 = debit_rows.values().chain(credit_rows.values()).sum();
    assert_eq!(total, 2 * ACCOUNTS * OPENING, "no money created or lost");

    for (name, left) in [
        (
            "MariaDB",
            debit.recover(|id| xids.contains(&id.xid)).await.unwrap(),
        ),
        (
            "PostgreSQL",
            credit.recover(|id| xids.contains(&id.xid)).await.unwrap(),
        ),
    ] {
        let ours: Vec<_> = left
            .left_to_the_tc
            .iter()
            .chain(&left.rolled_back)
            .collect();
        assert!(
            ours.is_empty(),
            "{name}: prepared branches left behind: {ours:?}"
        );
    }
    for xid in &xids {
        assert_eq!(
            client.status(xid).await.unwrap(),
            GlobalStatus::Finished,
            "{xid}"
        );
    }
}
