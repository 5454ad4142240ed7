//! JDBC type codes (`java.sql.Types`) of database column types, as the Java drivers report them
//! through `DatabaseMetaData.getColumns`: Java's undo logs record them per field and bind
//! restored values with them, so a Rust-written log must carry the same codes.

use crate::undo::jdbc_type::*;

/// A MySQL/MariaDB column: `data_type` is information_schema's DATA_TYPE (`int`),
/// `column_type` its COLUMN_TYPE (`int(10) unsigned`). Follows MySQL Connector/J's
/// defaults (`tinyInt1isBit=true`: `tinyint(1)` is BIT).
pub fn of_mysql(data_type: &str, column_type: &str) -> i32 {
    let column_type = column_type.to_ascii_lowercase();
    match data_type.to_ascii_lowercase().as_str() {
        "bit" | "bool" | "boolean" => BIT,
        "tinyint" if column_type.starts_with("tinyint(1)") => BIT,
        "tinyint" => TINYINT,
        "smallint" => SMALLINT,
        "mediumint" | "int" | "integer" => INTEGER,
        "bigint" => BIGINT,
        "float" => REAL,
        "double" | "real" => DOUBLE,
        "decimal" | "numeric" => DECIMAL,
        "char" | "enum" | "set" => CHAR,
        "varchar" => VARCHAR,
        "tinytext" | "text" | "mediumtext" | "longtext" | "json" => LONGVARCHAR,
        "binary" => BINARY,
        "varbinary" | "tinyblob" => VARBINARY,
        "blob" | "mediumblob" | "longblob" => LONGVARBINARY,
        "date" | "year" => DATE,
        "time" => TIME,
        "datetime" | "timestamp" => TIMESTAMP,
        _ => OTHER,
    }
}

/// A PostgreSQL column by its type name (`pg_type.typname`: `int4`, `timestamptz`), as
/// PgJDBC reports it (`bool` is BIT, `text` is VARCHAR, `bytea` BINARY, JSON OTHER).
pub fn of_postgres(type_name: &str) -> i32 {
    match type_name {
        "bool" => BIT,
        "int2" => SMALLINT,
        "int4" | "oid" => INTEGER,
        "int8" => BIGINT,
        "float4" => REAL,
        "float8" | "money" => DOUBLE,
        "numeric" => NUMERIC,
        "bpchar" | "char" => CHAR,
        "varchar" | "text" | "name" => VARCHAR,
        "bytea" => BINARY,
        "date" => DATE,
        "time" | "timetz" => TIME,
        "timestamp" | "timestamptz" => TIMESTAMP,
        name if name.starts_with('_') => ARRAY,
        _ => OTHER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_tinyint_1_is_bit_like_connector_j() {
        assert_eq!(of_mysql("tinyint", "tinyint(1)"), BIT);
        assert_eq!(of_mysql("tinyint", "tinyint(4)"), TINYINT);
        assert_eq!(of_mysql("bigint", "bigint(20) unsigned"), BIGINT);
        assert_eq!(of_mysql("json", "json"), LONGVARCHAR);
        assert_eq!(of_mysql("geometry", "geometry"), OTHER);
    }

    #[test]
    fn postgres_types_follow_pgjdbc() {
        assert_eq!(of_postgres("bool"), BIT);
        assert_eq!(of_postgres("text"), VARCHAR);
        assert_eq!(of_postgres("jsonb"), OTHER);
        assert_eq!(of_postgres("_int4"), ARRAY);
    }
}
