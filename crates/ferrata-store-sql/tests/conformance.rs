//! The store conformance suite on real PostgreSQL and MariaDB (FERRATA_POSTGRES_URL and
//! FERRATA_MYSQL_URL, from scripts/services): every check runs in a schema (PostgreSQL) or
//! database (MariaDB) of its own, created for it and dropped after.

use std::sync::atomic::{AtomicU32, Ordering};

use ferrata_core::SessionTable;
use ferrata_store::SessionStore;
use ferrata_store::conformance::{self, Backend};
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
