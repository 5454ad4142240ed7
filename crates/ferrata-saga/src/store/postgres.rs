//! The saga tables' SQL on PostgreSQL: `$n` placeholders, `LOCALTIMESTAMP(3)` as the clock,
//! Seata's PostgreSQL column types.

use sqlx::Postgres;

use super::sql::sealed::{Dialect, StoreSql};
use super::sql::{DEFINITION_COLUMNS, MACHINE_COLUMNS, STATE_COLUMNS, StoreDatabase};

impl StoreDatabase for Postgres {}

impl Dialect for Postgres {
    fn store_sql(p: &str) -> StoreSql {
        StoreSql {
            create_tables: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_machine_def (id VARCHAR(32) NOT NULL, \
                     name VARCHAR(128) NOT NULL, tenant_id VARCHAR(32) NOT NULL, \
                     app_name VARCHAR(32) NOT NULL, type VARCHAR(20), comment_ VARCHAR(255), \
                     ver VARCHAR(16) NOT NULL, gmt_create TIMESTAMP(3) NOT NULL, \
                     status VARCHAR(2) NOT NULL, content TEXT, recover_strategy VARCHAR(16), \
                     CONSTRAINT pk_{p}state_machine_def PRIMARY KEY (id))"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_machine_inst (id VARCHAR(128) NOT NULL, \
                     machine_id VARCHAR(32) NOT NULL, tenant_id VARCHAR(32) NOT NULL, \
                     parent_id VARCHAR(128), gmt_started TIMESTAMP(3) NOT NULL, \
                     business_key VARCHAR(48), start_params TEXT, gmt_end TIMESTAMP(3), \
                     excep BYTEA, end_params TEXT, status VARCHAR(2), \
                     compensation_status VARCHAR(2), is_running BOOLEAN, \
                     gmt_updated TIMESTAMP(3) NOT NULL, \
                     CONSTRAINT pk_{p}state_machine_inst PRIMARY KEY (id), \
                     CONSTRAINT {p}unikey_buz_tenant UNIQUE (business_key, tenant_id))"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_inst (id VARCHAR(48) NOT NULL, \
                     machine_inst_id VARCHAR(128) NOT NULL, name VARCHAR(128) NOT NULL, \
                     type VARCHAR(20), service_name VARCHAR(128), service_method VARCHAR(128), \
                     service_type VARCHAR(16), business_key VARCHAR(48), \
                     state_id_compensated_for VARCHAR(50), state_id_retried_for VARCHAR(50), \
                     gmt_started TIMESTAMP(3) NOT NULL, is_for_update BOOLEAN, \
                     input_params TEXT, output_params TEXT, status VARCHAR(2) NOT NULL, \
                     excep BYTEA, gmt_updated TIMESTAMP(3), gmt_end TIMESTAMP(3), \
                     CONSTRAINT pk_{p}state_inst PRIMARY KEY (id, machine_inst_id))"
                ),
            ],
            insert_definition: format!(
                "INSERT INTO {p}state_machine_def (id, name, tenant_id, app_name, comment_, ver, \
                 content, recover_strategy, type, status, gmt_create) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'STATE_LANG', 'AC', LOCALTIMESTAMP(3))"
            ),
            latest_definition: format!(
                "SELECT {DEFINITION_COLUMNS} FROM {p}state_machine_def \
                 WHERE name = $1 AND tenant_id = $2 AND app_name = $3 \
                 ORDER BY gmt_create DESC, id DESC LIMIT 1"
            ),
            definition: format!(
                "SELECT {DEFINITION_COLUMNS} FROM {p}state_machine_def WHERE id = $1"
            ),
            insert_machine: format!(
                "INSERT INTO {p}state_machine_inst (id, machine_id, tenant_id, parent_id, \
                 business_key, start_params, status, is_running, gmt_started, gmt_updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, LOCALTIMESTAMP(3), LOCALTIMESTAMP(3))"
            ),
            update_machine: format!(
                "UPDATE {p}state_machine_inst SET status = $1, compensation_status = $2, \
                 end_params = $3, excep = $4, is_running = $5, gmt_updated = LOCALTIMESTAMP(3), \
                 gmt_end = LOCALTIMESTAMP(3) WHERE id = $6"
            ),
            machine: format!("SELECT {MACHINE_COLUMNS} FROM {p}state_machine_inst WHERE id = $1"),
            insert_state: format!(
                "INSERT INTO {p}state_inst ({STATE_COLUMNS}, gmt_started, gmt_updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 LOCALTIMESTAMP(3), LOCALTIMESTAMP(3))"
            ),
            update_state: format!(
                "UPDATE {p}state_inst SET input_params = $1, output_params = $2, status = $3, \
                 excep = $4, gmt_updated = LOCALTIMESTAMP(3), gmt_end = LOCALTIMESTAMP(3) \
                 WHERE id = $5 AND machine_inst_id = $6"
            ),
            states: format!(
                "SELECT {STATE_COLUMNS} FROM {p}state_inst WHERE machine_inst_id = $1 ORDER BY id"
            ),
        }
    }
}
