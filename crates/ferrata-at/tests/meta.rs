//! Table metadata read from real MariaDB and PostgreSQL servers (FERRATA_MYSQL_URL and
//! FERRATA_POSTGRES_URL, from scripts/services): columns, keys, type codes, refusals.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrata_testkit::database_url;

use ferrata_at::meta::{MetaError, load_mysql, load_postgres};
use ferrata_at::undo::jdbc_type;
use sqlx::Connection;

#[tokio::test]
async fn mariadb_tables_report_columns_keys_and_java_type_codes() -> anyhow::Result<()> {
    let mut conn = sqlx::MySqlConnection::connect(&database_url("FERRATA_MYSQL_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_meta_orders",
        "CREATE TABLE at_meta_orders (
            shop INT UNSIGNED NOT NULL, id BIGINT NOT NULL AUTO_INCREMENT,
            code VARCHAR(32) NOT NULL, flag TINYINT(1), amount DECIMAL(10,2),
            changed TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
            doc JSON, PRIMARY KEY (id, shop), UNIQUE KEY uk_code (code), KEY k_amount (amount))",
        "DROP TABLE IF EXISTS at_meta_nokey",
        "CREATE TABLE at_meta_nokey (a INT)",
    ] {
        sqlx::query(ddl).execute(&mut conn).await?;
    }
    let meta = load_mysql(&mut conn, "`ferrata`.`at_meta_orders`").await?;
    assert_eq!(meta.table_name, "at_meta_orders");
    assert_eq!(meta.schema, "ferrata");
    assert_eq!(
        meta.primary_key,
        ["id", "shop"],
        "key order, not column order"
    );
    assert_eq!(meta.unique_keys, [vec!["code".to_owned()]]);
    let names: Vec<_> = meta.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["shop", "id", "code", "flag", "amount", "changed", "doc"]
    );
    let column = |name| meta.column(name).unwrap();
    assert_eq!(column("shop").jdbc_type, jdbc_type::INTEGER);
    assert!(column("shop").column_type.contains("unsigned"));
    assert!(column("id").generated_key && !column("shop").generated_key);
    assert_eq!(column("flag").jdbc_type, jdbc_type::BIT);
    assert_eq!(column("amount").jdbc_type, jdbc_type::DECIMAL);
    assert!(column("changed").on_update && !column("amount").on_update);
    assert_eq!(column("changed").jdbc_type, jdbc_type::TIMESTAMP);
    // MariaDB's JSON is LONGTEXT with a check constraint.
    assert_eq!(column("doc").jdbc_type, jdbc_type::LONGVARCHAR);
    assert!(meta.is_primary_key("ID") && !meta.is_primary_key("code"));

    assert!(matches!(
        load_mysql(&mut conn, "at_meta_nokey").await,
        Err(MetaError::NoPrimaryKey(_))
    ));
    assert!(matches!(
        load_mysql(&mut conn, "at_meta_missing").await,
        Err(MetaError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn postgres_tables_resolve_like_the_statement_and_report_keys() -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(&database_url("FERRATA_POSTGRES_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_meta_orders, \"At_Meta_Mixed\", at_meta_nokey",
        "CREATE TABLE at_meta_orders (
            shop INT NOT NULL, id BIGSERIAL, code VARCHAR(32) NOT NULL, flag BOOLEAN,
            amount NUMERIC(10,2), at TIMESTAMPTZ, doc JSONB, tags TEXT[],
            PRIMARY KEY (id, shop), CONSTRAINT uk_code UNIQUE (code))",
        "CREATE UNIQUE INDEX at_meta_orders_shop_at ON at_meta_orders (shop, at)",
        "CREATE TABLE \"At_Meta_Mixed\" (\"Key\" INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY)",
        "CREATE TABLE at_meta_nokey (a INT)",
    ] {
        sqlx::query(ddl).execute(&mut conn).await?;
    }
    let meta = load_postgres(&mut conn, "AT_META_ORDERS").await?;
    assert_eq!(
        meta.table_name, "at_meta_orders",
        "unquoted names fold to lower case"
    );
    assert_eq!(meta.schema, "public");
    assert_eq!(meta.primary_key, ["id", "shop"]);
    assert_eq!(
        meta.unique_keys,
        [
            vec!["shop".to_owned(), "at".to_owned()],
            vec!["code".to_owned()]
        ]
    );
    let column = |name| meta.column(name).unwrap();
    assert!(column("id").generated_key && !column("shop").generated_key);
    assert_eq!(column("id").jdbc_type, jdbc_type::BIGINT);
    assert_eq!(column("flag").jdbc_type, jdbc_type::BIT);
    assert_eq!(column("amount").jdbc_type, jdbc_type::NUMERIC);
    assert_eq!(column("amount").column_type, "numeric(10,2)");
    assert_eq!(column("at").jdbc_type, jdbc_type::TIMESTAMP);
    assert_eq!(column("doc").jdbc_type, jdbc_type::OTHER);
    assert_eq!(column("tags").jdbc_type, jdbc_type::ARRAY);

    let mixed = load_postgres(&mut conn, "\"At_Meta_Mixed\"").await?;
    assert_eq!(mixed.table_name, "At_Meta_Mixed");
    assert_eq!(mixed.primary_key, ["Key"]);
    assert!(mixed.columns[0].generated_key);
    assert!(matches!(
        load_postgres(&mut conn, "at_meta_mixed").await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        load_postgres(&mut conn, "public.at_meta_nokey").await,
        Err(MetaError::NoPrimaryKey(_))
    ));
    Ok(())
}
