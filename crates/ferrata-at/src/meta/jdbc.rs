//! JDBC type codes (`java.sql.Types`) of database column types, as the Java drivers report them
//! through `DatabaseMetaData.getColumns`: Java's undo logs record them per field and bind
//! restored values with them, so a Rust-written log must carry the same codes.

/// A `java.sql.Types` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JdbcType(pub i32);

impl JdbcType {
    pub const BIT: JdbcType = JdbcType(-7);
    pub const TINYINT: JdbcType = JdbcType(-6);
    pub const SMALLINT: JdbcType = JdbcType(5);
    pub const INTEGER: JdbcType = JdbcType(4);
    pub const BIGINT: JdbcType = JdbcType(-5);
    pub const REAL: JdbcType = JdbcType(7);
    pub const DOUBLE: JdbcType = JdbcType(8);
    pub const NUMERIC: JdbcType = JdbcType(2);
    pub const DECIMAL: JdbcType = JdbcType(3);
    pub const CHAR: JdbcType = JdbcType(1);
    pub const VARCHAR: JdbcType = JdbcType(12);
    pub const LONGVARCHAR: JdbcType = JdbcType(-1);
    pub const DATE: JdbcType = JdbcType(91);
    pub const TIME: JdbcType = JdbcType(92);
    pub const TIMESTAMP: JdbcType = JdbcType(93);
    pub const BINARY: JdbcType = JdbcType(-2);
    pub const VARBINARY: JdbcType = JdbcType(-3);
    pub const LONGVARBINARY: JdbcType = JdbcType(-4);
    pub const BOOLEAN: JdbcType = JdbcType(16);
    pub const OTHER: JdbcType = JdbcType(1111);
    pub const ARRAY: JdbcType = JdbcType(2003);

    /// A MySQL/MariaDB column: `data_type` is information_schema's DATA_TYPE (`int`),
    /// `column_type` its COLUMN_TYPE (`int(10) unsigned`). Follows MySQL Connector/J's
    /// defaults (`tinyInt1isBit=true`: `tinyint(1)` is BIT).
    pub fn of_mysql(data_type: &str, column_type: &str) -> JdbcType {
        let column_type = column_type.to_ascii_lowercase();
        match data_type.to_ascii_lowercase().as_str() {
            "bit" | "bool" | "boolean" => JdbcType::BIT,
            "tinyint" if column_type.starts_with("tinyint(1)") => JdbcType::BIT,
            "tinyint" => JdbcType::TINYINT,
            "smallint" => JdbcType::SMALLINT,
            "mediumint" | "int" | "integer" => JdbcType::INTEGER,
            "bigint" => JdbcType::BIGINT,
            "float" => JdbcType::REAL,
            "double" | "real" => JdbcType::DOUBLE,
            "decimal" | "numeric" => JdbcType::DECIMAL,
            "char" | "enum" | "set" => JdbcType::CHAR,
            "varchar" => JdbcType::VARCHAR,
            "tinytext" | "text" | "mediumtext" | "longtext" | "json" => JdbcType::LONGVARCHAR,
            "binary" => JdbcType::BINARY,
            "varbinary" | "tinyblob" => JdbcType::VARBINARY,
            "blob" | "mediumblob" | "longblob" => JdbcType::LONGVARBINARY,
            "date" | "year" => JdbcType::DATE,
            "time" => JdbcType::TIME,
            "datetime" | "timestamp" => JdbcType::TIMESTAMP,
            _ => JdbcType::OTHER,
        }
    }

    /// A PostgreSQL column by its type name (`pg_type.typname`: `int4`, `timestamptz`), as
    /// PgJDBC reports it (`bool` is BIT, `text` is VARCHAR, `bytea` BINARY, JSON OTHER).
    pub fn of_postgres(type_name: &str) -> JdbcType {
        match type_name {
            "bool" => JdbcType::BIT,
            "int2" => JdbcType::SMALLINT,
            "int4" | "oid" => JdbcType::INTEGER,
            "int8" => JdbcType::BIGINT,
            "float4" => JdbcType::REAL,
            "float8" | "money" => JdbcType::DOUBLE,
            "numeric" => JdbcType::NUMERIC,
            "bpchar" | "char" => JdbcType::CHAR,
            "varchar" | "text" | "name" => JdbcType::VARCHAR,
            "bytea" => JdbcType::BINARY,
            "date" => JdbcType::DATE,
            "time" | "timetz" => JdbcType::TIME,
            "timestamp" | "timestamptz" => JdbcType::TIMESTAMP,
            name if name.starts_with('_') => JdbcType::ARRAY,
            _ => JdbcType::OTHER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_tinyint_1_is_bit_like_connector_j() {
        assert_eq!(JdbcType::of_mysql("tinyint", "tinyint(1)"), JdbcType::BIT);
        assert_eq!(
            JdbcType::of_mysql("tinyint", "tinyint(4)"),
            JdbcType::TINYINT
        );
        assert_eq!(
            JdbcType::of_mysql("bigint", "bigint(20) unsigned"),
            JdbcType::BIGINT
        );
        assert_eq!(JdbcType::of_mysql("json", "json"), JdbcType::LONGVARCHAR);
        assert_eq!(JdbcType::of_mysql("geometry", "geometry"), JdbcType::OTHER);
    }

    #[test]
    fn postgres_types_follow_pgjdbc() {
        assert_eq!(JdbcType::of_postgres("bool"), JdbcType::BIT);
        assert_eq!(JdbcType::of_postgres("text"), JdbcType::VARCHAR);
        assert_eq!(JdbcType::of_postgres("jsonb"), JdbcType::OTHER);
        assert_eq!(JdbcType::of_postgres("_int4"), JdbcType::ARRAY);
    }
}
