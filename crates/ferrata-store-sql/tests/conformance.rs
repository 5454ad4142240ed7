//! The store conformance suite on real PostgreSQL and MariaDB (FERRATA_POSTGRES_URL and
//! FERRATA_MYSQL_URL, from scripts/services): every check runs in a schema (PostgreSQL) or
//! database (MariaDB) of its own, created for it and dropped after. Also: the store goes on
//! after the database ended its idle sessions.

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::Duration;

use ferrata_core::{Record, SessionTable, TransactionId};
use ferrata_proto::GlobalStatus;
use ferrata_store::conformance::{self, Backend};
use ferrata_store::{OpOutcome, SessionStore, StoreOp};
use ferrata_store_sql::SqlStoreConfig;
use sqlx::{Connection, Executor};

static NEXT_PLACE: AtomicU32 = AtomicU32::new(0);

/// A schema or database of one check, dropped with it.
struct Place {
    url: String,
    name: String,
    drop_statement: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to drop the test schema");
        let url = self.url.clone();
        let statement = self.drop_statement.clone();
        let dropped: Result<(), sqlx::Error> = runtime.block_on(async move {
            let mut conn = sqlx::AnyConnection::connect(&url).await?;
            conn.execute(statement.as_str()).await?;
            Ok(())
        });
        if let Err(error) = dropped {
            eprintln!("could not drop test schema {}: {error}", self.name);
        }
    }
}

struct Database {
    url: String,
    drop_template: &'static str,
}

impl Backend for Database {
    type Place = Place;

    fn fresh(&mut self) -> Place {
        let name = format!(
            "ferrata_conformance_{}_{}",
            std::process::id(),
            NEXT_PLACE.fetch_add(1, Ordering::Relaxed)
        );
        Place {
            url: self.url.clone(),
            drop_statement: self.drop_template.replace("{}", &name),
            name,
        }
    }

    fn open(&mut self, place: &Place) -> (Box<dyn SessionStore>, SessionTable) {
        let mut config = SqlStoreConfig::new(self.url.clone());
        config.schema = Some(place.name.clone());
        match ferrata_store_sql::open(config) {
            Ok(opened) => opened,
            Err(error) => panic!("cannot open the store in {}: {error}", place.name),
        }
    }

    fn keeps_lock_keys(&self) -> bool {
        false
    }

    fn shared(&self) -> bool {
        true
    }
}

#[test]
fn postgres_store_passes_the_conformance_suite() {
    sqlx::any::install_default_drivers();
    conformance::run_backend(&mut Database {
        url: ferrata_testkit::database_url("FERRATA_POSTGRES_URL"),
        drop_template: "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
    });
}

#[test]
fn mysql_store_passes_the_conformance_suite() {
    sqlx::any::install_default_drivers();
    conformance::run_backend(&mut Database {
        url: ferrata_testkit::database_url("FERRATA_MYSQL_URL"),
        drop_template: "DROP DATABASE IF EXISTS `{}`",
    });
}

/// Batches on both sides of a pause longer than the abandoned-transaction timeout: the
/// database ends the sessions that idle inside a transaction (PostgreSQL) or at all (MariaDB),
/// including the one the store began ahead for its next batch, and the next batch still lands.
fn batches_survive_sessions_ended_while_idle(url: String, drop_template: &'static str) {
    sqlx::any::install_default_drivers();
    let mut database = Database { url, drop_template };
    let place = database.fresh();
    let mut config = SqlStoreConfig::new(database.url.clone());
    config.schema = Some(place.name.clone());
    config.abandoned_transaction_timeout = Some(Duration::from_secs(1));
    let (mut store, _) = ferrata_store_sql::open(config).expect("store opens");
    let mut outcomes = Vec::new();
    for (round, status) in [GlobalStatus::Begin, GlobalStatus::Committing]
        .into_iter()
        .enumerate()
    {
        if round > 0 {
            // Past the timeout (a whole second on MariaDB, which rounds it up).
            std::thread::sleep(Duration::from_millis(2_500));
        }
        let record = match status {
            GlobalStatus::Begin => Record::GlobalAdd(conformance::global(1, status)),
            _ => Record::GlobalUpdate {
                transaction_id: TransactionId(1),
                status,
            },
        };
        outcomes.clear();
        store
            .apply(&[StoreOp::put(record)], &mut outcomes)
            .unwrap_or_else(|e| panic!("batch {round} after an idle pause: {e}"));
        assert_eq!(outcomes, [OpOutcome::Applied], "batch {round}");
    }
    let stored = store
        .transaction(TransactionId(1))
        .expect("read back")
        .expect("the transaction is stored");
    assert_eq!(stored.global.status, GlobalStatus::Committing);
}

#[test]
fn postgres_batches_survive_sessions_ended_while_idle() {
    batches_survive_sessions_ended_while_idle(
        ferrata_testkit::database_url("FERRATA_POSTGRES_URL"),
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
    );
}

#[test]
fn mysql_batches_survive_sessions_ended_while_idle() {
    batches_survive_sessions_ended_while_idle(
        ferrata_testkit::database_url("FERRATA_MYSQL_URL"),
        "DROP DATABASE IF EXISTS `{}`",
    );
}
