//! [`StateLogStore`] on a SQL database through sqlx: one generic implementation, the SQL text
//! per dialect (`mysql.rs`, `postgres.rs`). Timestamps come from the database clock.

use sqlx::{Database, Pool, Row};

use super::{
    DEFAULT_TABLE_PREFIX, DefinitionRecord, MachineInstanceRecord, StateInstanceRecord,
    StateLogStore, StoreError, StoreFuture, check_table_prefix,
};
use crate::model::ExecutionStatus;

pub(crate) mod sealed {
    /// The statements of one dialect with the table prefix filled in. Parameter order follows
    /// the column lists in `sql.rs`.
    #[derive(Debug, Clone)]
    pub struct StoreSql {
        pub create_tables: Vec<String>,
        pub insert_definition: String,
        pub latest_definition: String,
        pub definition: String,
        pub insert_machine: String,
        pub update_machine: String,
        pub machine: String,
        pub insert_state: String,
        pub update_state: String,
        pub states: String,
    }

    pub trait Dialect: sqlx::Database {
        /// `prefix` has passed `check_table_prefix`.
        fn store_sql(prefix: &str) -> StoreSql;
    }
}

/// The databases the saga tables live on: `sqlx::MySql` (feature `mysql`, also MariaDB) and
/// `sqlx::Postgres` (feature `postgres`).
pub trait StoreDatabase: sealed::Dialect {}

/// The saga tables in one database pool.
pub struct SqlStateLogStore<DB: Database> {
    pool: Pool<DB>,
    prefix: String,
    sql: sealed::StoreSql,
}

impl<DB: Database> std::fmt::Debug for SqlStateLogStore<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStateLogStore")
            .field("database", &DB::NAME)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl<DB: StoreDatabase> SqlStateLogStore<DB> {
    /// Seata's tables (`seata_state_machine_def`, ...) in `pool`.
    pub fn new(pool: Pool<DB>) -> Self {
        SqlStateLogStore {
            pool,
            prefix: DEFAULT_TABLE_PREFIX.to_owned(),
            sql: DB::store_sql(DEFAULT_TABLE_PREFIX),
        }
    }

    /// Tables named `<prefix>state_machine_def`, ... (Java's `tablePrefix`, default `seata_`).
    pub fn with_prefix(pool: Pool<DB>, prefix: &str) -> Result<Self, StoreError> {
        check_table_prefix(prefix)?;
        Ok(SqlStateLogStore {
            pool,
            prefix: prefix.to_owned(),
            sql: DB::store_sql(prefix),
        })
    }
}

fn status(
    table: &'static str,
    id: &str,
    code: Option<String>,
) -> Result<ExecutionStatus, StoreError> {
    let code = code.unwrap_or_default();
    ExecutionStatus::from_code(&code).ok_or_else(|| StoreError::Malformed {
        table,
        id: id.to_owned(),
        reason: format!("status {code:?}"),
    })
}

fn text(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
}

impl<DB> StateLogStore for SqlStateLogStore<DB>
where
    DB: StoreDatabase,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<bool>: sqlx::Decode<'q, DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<Vec<u8>>: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    fn create_tables(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // One statement each, so they can go as prepared statements (`raw_sql`'s executor
            // bounds do not hold inside a `Send` boxed future).
            for statement in &self.sql.create_tables {
                // Two engines starting together race on PostgreSQL's catalog (a duplicate type
                // name) even with IF NOT EXISTS; the loser's next try finds the table.
                let mut attempt = 0;
                loop {
                    match sqlx::query(statement).execute(&self.pool).await {
                        Ok(_) => break,
                        Err(_) if attempt < 3 => {
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt))
                                .await;
                        }
                        Err(error) => return Err(error.into()),
                    }
                }
            }
            Ok(())
        })
    }

    fn latest_definition<'a>(
        &'a self,
        name: &'a str,
        tenant_id: &'a str,
        app_name: &'a str,
    ) -> StoreFuture<'a, Option<DefinitionRecord>> {
        Box::pin(async move {
            let row = sqlx::query(&self.sql.latest_definition)
                .bind(name.to_owned())
                .bind(tenant_id.to_owned())
                .bind(app_name.to_owned())
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| definition_from::<DB>(&row)).transpose()
        })
    }

    fn definition<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<DefinitionRecord>> {
        Box::pin(async move {
            let row = sqlx::query(&self.sql.definition)
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row| definition_from::<DB>(&row)).transpose()
        })
    }

    fn insert_definition<'a>(&'a self, d: &'a DefinitionRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(&self.sql.insert_definition)
                .bind(d.id.clone())
                .bind(d.name.clone())
                .bind(d.tenant_id.clone())
                .bind(d.app_name.clone())
                .bind(d.comment.clone())
                .bind(d.version.clone())
                .bind(d.content.clone())
                .bind(d.recover_strategy.clone())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn insert_machine<'a>(&'a self, m: &'a MachineInstanceRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(&self.sql.insert_machine)
                .bind(m.id.clone())
                .bind(m.machine_id.clone())
                .bind(m.tenant_id.clone())
                .bind(m.parent_id.clone())
                .bind(m.business_key.clone())
                .bind(m.start_params.clone())
                .bind(m.status.code().to_owned())
                .bind(m.running)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn update_machine<'a>(&'a self, m: &'a MachineInstanceRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(&self.sql.update_machine)
                .bind(m.status.code().to_owned())
                .bind(m.compensation_status.map(|s| s.code().to_owned()))
                .bind(m.end_params.clone())
                .bind(m.error.clone().map(String::into_bytes))
                .bind(m.running)
                .bind(m.id.clone())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineInstanceRecord>> {
        Box::pin(async move {
            let Some(row) = sqlx::query(&self.sql.machine)
                .bind(id.to_owned())
                .fetch_optional(&self.pool)
                .await?
            else {
                return Ok(None);
            };
            let id: String = row.try_get(0)?;
            let compensation: Option<String> = row.try_get(9)?;
            Ok(Some(MachineInstanceRecord {
                machine_id: row.try_get(1)?,
                tenant_id: row.try_get(2)?,
                parent_id: row.try_get(3)?,
                business_key: row.try_get(4)?,
                start_params: row.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                end_params: row.try_get(6)?,
                error: text(row.try_get(7)?),
                status: status("state_machine_inst", &id, row.try_get(8)?)?,
                compensation_status: match compensation {
                    Some(code) => Some(status("state_machine_inst", &id, Some(code))?),
                    None => None,
                },
                running: row.try_get::<Option<bool>, _>(10)?.unwrap_or(false),
                id,
            }))
        })
    }

    fn insert_state<'a>(&'a self, s: &'a StateInstanceRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(&self.sql.insert_state)
                .bind(s.id.clone())
                .bind(s.machine_instance_id.clone())
                .bind(s.name.clone())
                .bind(s.state_type.clone())
                .bind(s.service_name.clone())
                .bind(s.service_method.clone())
                .bind(s.service_type.clone())
                .bind(s.business_key.clone())
                .bind(s.compensated_for.clone())
                .bind(s.retried_for.clone())
                .bind(s.for_update)
                .bind(s.input.clone())
                .bind(s.output.clone())
                .bind(s.status.code().to_owned())
                .bind(s.error.clone().map(String::into_bytes))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn update_state<'a>(&'a self, s: &'a StateInstanceRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(&self.sql.update_state)
                .bind(s.input.clone())
                .bind(s.output.clone())
                .bind(s.status.code().to_owned())
                .bind(s.error.clone().map(String::into_bytes))
                .bind(s.id.clone())
                .bind(s.machine_instance_id.clone())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn states<'a>(&'a self, machine_id: &'a str) -> StoreFuture<'a, Vec<StateInstanceRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&self.sql.states)
                .bind(machine_id.to_owned())
                .fetch_all(&self.pool)
                .await?;
            let mut states = Vec::with_capacity(rows.len());
            for row in rows {
                let id: String = row.try_get(0)?;
                states.push(StateInstanceRecord {
                    machine_instance_id: row.try_get(1)?,
                    name: row.try_get(2)?,
                    state_type: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    service_name: row.try_get(4)?,
                    service_method: row.try_get(5)?,
                    service_type: row.try_get(6)?,
                    business_key: row.try_get(7)?,
                    compensated_for: row.try_get(8)?,
                    retried_for: row.try_get(9)?,
                    for_update: row.try_get::<Option<bool>, _>(10)?.unwrap_or(false),
                    input: row.try_get::<Option<String>, _>(11)?.unwrap_or_default(),
                    output: row.try_get(12)?,
                    status: status("state_inst", &id, row.try_get(13)?)?,
                    error: text(row.try_get(14)?),
                    id,
                });
            }
            Ok(states)
        })
    }
}

fn definition_from<DB>(row: &DB::Row) -> Result<DefinitionRecord, StoreError>
where
    DB: Database,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Decode<'q, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    Ok(DefinitionRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        tenant_id: row.try_get(2)?,
        app_name: row.try_get(3)?,
        comment: row.try_get(4)?,
        version: row.try_get(5)?,
        content: row.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
        recover_strategy: row.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
    })
}

/// Column lists shared by both dialects, in bind order.
pub(crate) const DEFINITION_COLUMNS: &str =
    "id, name, tenant_id, app_name, comment_, ver, content, recover_strategy";
pub(crate) const MACHINE_COLUMNS: &str = "id, machine_id, tenant_id, parent_id, business_key, \
     start_params, end_params, excep, status, compensation_status, is_running";
pub(crate) const STATE_COLUMNS: &str = "id, machine_inst_id, name, type, service_name, \
     service_method, service_type, business_key, state_id_compensated_for, state_id_retried_for, \
     is_for_update, input_params, output_params, status, excep";
