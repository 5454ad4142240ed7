//! The saga tables' SQL on MySQL/MariaDB: `?` placeholders, `CURRENT_TIMESTAMP(3)` as the clock,
//! Seata's MySQL column types but MEDIUMTEXT/MEDIUMBLOB for parameters and errors (TEXT stops
//! at 64 KB, and a context that outgrew it would make every later write of the instance fail).

use sqlx::MySql;

use super::sql::sealed::{Dialect, StoreSql};
use super::sql::{DEFINITION_COLUMNS, MACHINE_COLUMNS, STATE_COLUMNS, StoreDatabase};

impl StoreDatabase for MySql {}

impl Dialect for MySql {
    fn store_sql(p: &str) -> StoreSql {
        StoreSql {
            create_tables: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_machine_def (id VARCHAR(32) NOT NULL, \
                     name VARCHAR(128) NOT NULL, tenant_id VARCHAR(32) NOT NULL, \
                     app_name VARCHAR(32) NOT NULL, type VARCHAR(20), comment_ VARCHAR(255), \
                     ver VARCHAR(16) NOT NULL, gmt_create DATETIME(3) NOT NULL, \
                     status VARCHAR(2) NOT NULL, content TEXT, recover_strategy VARCHAR(16), \
                     PRIMARY KEY (id)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_machine_inst (id VARCHAR(128) NOT NULL, \
                     machine_id VARCHAR(32) NOT NULL, tenant_id VARCHAR(32) NOT NULL, \
                     parent_id VARCHAR(128), gmt_started DATETIME(3) NOT NULL, \
                     business_key VARCHAR(48), start_params MEDIUMTEXT, gmt_end DATETIME(3), \
                     excep MEDIUMBLOB, end_params MEDIUMTEXT, status VARCHAR(2), \
                     compensation_status VARCHAR(2), is_running TINYINT(1), \
                     gmt_updated DATETIME(3) NOT NULL, PRIMARY KEY (id), \
                     UNIQUE KEY unikey_buz_tenant (business_key, tenant_id)) \
                     ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {p}state_inst (id VARCHAR(48) NOT NULL, \
                     machine_inst_id VARCHAR(128) NOT NULL, name VARCHAR(128) NOT NULL, \
                     type VARCHAR(20), service_name VARCHAR(128), service_method VARCHAR(128), \
                     service_type VARCHAR(16), business_key VARCHAR(48), \
                     state_id_compensated_for VARCHAR(50), state_id_retried_for VARCHAR(50), \
                     gmt_started DATETIME(3) NOT NULL, is_for_update TINYINT(1), \
                     input_params MEDIUMTEXT, output_params MEDIUMTEXT, status VARCHAR(2) NOT NULL, \
                     excep MEDIUMBLOB, gmt_updated DATETIME(3), gmt_end DATETIME(3), \
                     PRIMARY KEY (id, machine_inst_id)) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
                ),
            ],
            insert_definition: format!(
                "INSERT INTO {p}state_machine_def (id, name, tenant_id, app_name, comment_, ver, \
                 content, recover_strategy, type, status, gmt_create) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'STATE_LANG', 'AC', CURRENT_TIMESTAMP(3))"
            ),
            latest_definition: format!(
                "SELECT {DEFINITION_COLUMNS} FROM {p}state_machine_def \
                 WHERE name = ? AND tenant_id = ? AND app_name = ? \
                 ORDER BY gmt_create DESC, id DESC LIMIT 1"
            ),
            definition: format!(
                "SELECT {DEFINITION_COLUMNS} FROM {p}state_machine_def WHERE id = ?"
            ),
            insert_machine: format!(
                "INSERT INTO {p}state_machine_inst (id, machine_id, tenant_id, parent_id, \
                 business_key, start_params, status, is_running, gmt_started, gmt_updated) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))"
            ),
            update_machine: format!(
                "UPDATE {p}state_machine_inst SET status = ?, compensation_status = ?, \
                 end_params = ?, excep = ?, is_running = ?, gmt_updated = CURRENT_TIMESTAMP(3), \
                 gmt_end = CURRENT_TIMESTAMP(3) WHERE id = ?"
            ),
            machine: format!("SELECT {MACHINE_COLUMNS} FROM {p}state_machine_inst WHERE id = ?"),
            insert_state: format!(
                "INSERT INTO {p}state_inst ({STATE_COLUMNS}, gmt_started, gmt_updated) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
                 CURRENT_TIMESTAMP(3), CURRENT_TIMESTAMP(3))"
            ),
            update_state: format!(
                "UPDATE {p}state_inst SET input_params = ?, output_params = ?, status = ?, \
                 excep = ?, gmt_updated = CURRENT_TIMESTAMP(3), gmt_end = CURRENT_TIMESTAMP(3) \
                 WHERE id = ? AND machine_inst_id = ?"
            ),
            states: format!(
                "SELECT {STATE_COLUMNS} FROM {p}state_inst WHERE machine_inst_id = ? ORDER BY id"
            ),
        }
    }
}
