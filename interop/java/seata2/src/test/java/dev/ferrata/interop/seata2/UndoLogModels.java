package dev.ferrata.interop.seata2;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.sql.Date;
import java.sql.Time;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.sql.rowset.serial.SerialBlob;
import javax.sql.rowset.serial.SerialClob;

import org.apache.seata.rm.datasource.sql.struct.Field;
import org.apache.seata.rm.datasource.sql.struct.KeyType;
import org.apache.seata.rm.datasource.sql.struct.Row;
import org.apache.seata.rm.datasource.sql.struct.TableRecords;
import org.apache.seata.rm.datasource.undo.BranchUndoLog;
import org.apache.seata.rm.datasource.undo.SQLUndoLog;
import org.apache.seata.sqlparser.SQLType;
import org.postgresql.util.PGobject;

/**
 * The branch undo logs behind the undo-log test vectors shared with Rust
 * (crates/ferrata-at/tests/vectors). The Rust tests build the same models by hand
 * (crates/ferrata-at/tests/undo_vectors.rs): change both together.
 *
 * Values carry the Java classes the JDBC drivers hand to Seata's TableRecords.buildRecords
 * (ResultSet.getObject), with the column's JDBC type code from table metadata.
 */
final class UndoLogModels {
    private UndoLogModels() {}

    /** Epoch milliseconds of 2024-03-01T12:34:56Z. */
    static final long T0_MS = 1_709_296_496_000L;

    static Map<String, BranchUndoLog> all() throws Exception {
        Map<String, BranchUndoLog> m = new LinkedHashMap<>();
        m.put("mysql_types", mysqlTypes());
        m.put("postgres_types", postgresTypes());
        m.put("statements", statements());
        m.put("misc_values", miscValues());
        m.put("large", large());
        return m;
    }

    static Field f(String name, int type, Object value) {
        return new Field(name, type, value);
    }

    static Field pk(String name, int type, Object value) {
        Field field = new Field(name, type, value);
        field.setKeyType(KeyType.PRIMARY_KEY);
        return field;
    }

    static Row row(Field... fields) {
        Row row = new Row();
        row.setFields(new ArrayList<>(List.of(fields)));
        return row;
    }

    static TableRecords records(String table, Row... rows) {
        TableRecords records = new TableRecords();
        records.setTableName(table);
        records.setRows(new ArrayList<>(List.of(rows)));
        return records;
    }

    static SQLUndoLog item(SQLType type, String table, TableRecords before, TableRecords after) {
        SQLUndoLog log = new SQLUndoLog();
        log.setSqlType(type);
        log.setTableName(table);
        log.setBeforeImage(before);
        log.setAfterImage(after);
        return log;
    }

    static BranchUndoLog branch(String xid, long branchId, SQLUndoLog... items) {
        BranchUndoLog log = new BranchUndoLog();
        log.setXid(xid);
        log.setBranchId(branchId);
        log.setSqlUndoLogs(new ArrayList<>(List.of(items)));
        return log;
    }

    static Timestamp timestamp(long ms, int nanos) {
        Timestamp ts = new Timestamp(ms);
        ts.setNanos(nanos);
        return ts;
    }

    static byte[] bytes(int... values) {
        byte[] out = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (byte) values[i];
        }
        return out;
    }

    /** One row per image: what MySQL Connector/J 8.x returns for each column type. */
    static BranchUndoLog mysqlTypes() {
        Row before = row(
            pk("id", Types.BIGINT, 1L),
            f("c_tinyint", Types.TINYINT, 127),
            f("c_tinyint_u", Types.TINYINT, 255),
            f("c_smallint", Types.SMALLINT, -32768),
            f("c_smallint_u", Types.SMALLINT, 65535),
            f("c_mediumint", Types.INTEGER, 8388607),
            f("c_int", Types.INTEGER, Integer.MIN_VALUE),
            f("c_int_u", Types.INTEGER, 4294967295L),
            f("c_bigint", Types.BIGINT, Long.MIN_VALUE),
            f("c_bigint_u", Types.BIGINT, new BigInteger("18446744073709551615")),
            f("c_bit1", Types.BIT, true),
            f("c_bool", Types.BIT, false),
            f("c_decimal", Types.DECIMAL, new BigDecimal("12.50")),
            f("c_decimal_big", Types.DECIMAL, new BigDecimal("-12345678901234567890123456789.123456789")),
            f("c_decimal_tiny", Types.DECIMAL, new BigDecimal("0.0000000001")),
            f("c_decimal_zero", Types.DECIMAL, new BigDecimal("0.00")),
            f("c_decimal_int", Types.DECIMAL, new BigDecimal("99999999999999999999")),
            f("c_float", Types.REAL, 1.5f),
            f("c_float_max", Types.REAL, Float.MAX_VALUE),
            f("c_float_third", Types.REAL, 1.0f / 3.0f),
            f("c_double", Types.DOUBLE, 0.1),
            f("c_double_big", Types.DOUBLE, 1.0e300),
            f("c_double_small", Types.DOUBLE, -2.5e-300),
            f("c_double_int", Types.DOUBLE, 42.0),
            f("c_char", Types.CHAR, "abc"),
            f("c_varchar", Types.VARCHAR, "h\u00e9llo \"quoted\" \\ /\n\ttab \u6f22\u5b57 \ud83d\ude00 \u0001"),
            f("c_text", Types.LONGVARCHAR, "text ".repeat(20)),
            f("c_empty", Types.VARCHAR, ""),
            f("c_json", Types.LONGVARCHAR, "{\"a\": [1, 2.50, null], \"b\": \"x\"}"),
            f("c_enum", Types.CHAR, "medium"),
            f("c_set", Types.CHAR, "a,b"),
            f("c_blob", Types.LONGVARBINARY, bytes(0, 1, 2, 0x7f, 0x80, 0xfe, 0xff)),
            f("c_binary", Types.BINARY, bytes(0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0)),
            f("c_empty_blob", Types.LONGVARBINARY, new byte[0]),
            f("c_date", Types.DATE, new Date(1_709_251_200_000L)),
            f("c_time", Types.TIME, new Time(45_296_000L)),
            f("c_year", Types.DATE, new Date(1_704_067_200_000L)),
            f("c_datetime", Types.TIMESTAMP, LocalDateTime.of(2024, 3, 1, 12, 34, 56)),
            f("c_datetime3", Types.TIMESTAMP, LocalDateTime.of(2024, 3, 1, 12, 34, 56, 123_000_000)),
            f("c_datetime6", Types.TIMESTAMP, LocalDateTime.of(2024, 3, 1, 12, 34, 56, 123_456_000)),
            f("c_datetime_old", Types.TIMESTAMP, LocalDateTime.of(1969, 12, 31, 23, 59, 59, 999_999_000)),
            f("c_timestamp", Types.TIMESTAMP, new Timestamp(T0_MS)),
            f("c_timestamp3", Types.TIMESTAMP, timestamp(T0_MS + 789, 789_000_000)),
            f("c_timestamp6", Types.TIMESTAMP, timestamp(T0_MS + 123, 123_456_000)),
            f("c_timestamp_old", Types.TIMESTAMP, timestamp(-1L, 999_999_001)),
            f("c_null", Types.VARCHAR, null),
            f("c_null_int", Types.INTEGER, null));
        Row after = row(
            pk("id", Types.BIGINT, 1L),
            f("c_tinyint", Types.TINYINT, -128),
            f("c_int", Types.INTEGER, 0),
            f("c_bigint", Types.BIGINT, Long.MAX_VALUE),
            f("c_bigint_u", Types.BIGINT, BigInteger.ZERO),
            f("c_decimal", Types.DECIMAL, new BigDecimal("-0.01")),
            f("c_double", Types.DOUBLE, -0.0),
            f("c_varchar", Types.VARCHAR, null));
        return branch("192.168.0.7:8091:2000042", 2000043L,
            item(SQLType.UPDATE, "t_types", records("t_types", before), records("t_types", after)));
    }

    static PGobject pgobject(String type, String value) throws Exception {
        PGobject object = new PGobject();
        object.setType(type);
        object.setValue(value);
        return object;
    }

    /** One row per image: what PgJDBC 42.x returns for each column type. */
    static BranchUndoLog postgresTypes() throws Exception {
        Row before = row(
            pk("id", Types.INTEGER, 7),
            f("c_int2", Types.SMALLINT, -32768),
            f("c_int4", Types.INTEGER, Integer.MAX_VALUE),
            f("c_int8", Types.BIGINT, Long.MAX_VALUE),
            f("c_numeric", Types.NUMERIC, new BigDecimal("3.14159265358979323846264338327950288")),
            f("c_numeric_neg", Types.NUMERIC, new BigDecimal("-1000.000")),
            f("c_real", Types.REAL, -1.25f),
            f("c_float8", Types.DOUBLE, 1.7976931348623157e308),
            f("c_bool", Types.BIT, true),
            f("c_char", Types.CHAR, "ab  "),
            f("c_varchar", Types.VARCHAR, "varchar \u00fc"),
            f("c_text", Types.VARCHAR, "line1\nline2"),
            f("c_bytea", Types.BINARY, bytes(0x00, 0x10, 0xff)),
            f("c_date", Types.DATE, new Date(1_709_251_200_000L)),
            f("c_time", Types.TIME, new Time(45_296_000L)),
            f("c_timestamp", Types.TIMESTAMP, timestamp(T0_MS + 123, 123_456_000)),
            f("c_timestamptz", Types.TIMESTAMP, timestamp(T0_MS, 1_000)),
            f("c_json", Types.OTHER, pgobject("json", "{\"k\": [1, 2]}")),
            f("c_jsonb", Types.OTHER, pgobject("jsonb", "{\"k\": [1, 2]}")),
            f("c_enum", Types.VARCHAR, pgobject("mood", "happy")),
            f("c_null", Types.NUMERIC, null));
        Row after = row(
            pk("id", Types.INTEGER, 7),
            f("c_int2", Types.SMALLINT, 1),
            f("c_json", Types.OTHER, pgobject("json", null)));
        return branch("10.0.0.5:8091:7001", 7002L,
            item(SQLType.UPDATE, "public.t_pg", records("public.t_pg", before), records("public.t_pg", after)));
    }

    /** The statement kinds: empty images, several items, several rows, composite keys. */
    static BranchUndoLog statements() {
        TableRecords inserted = records("account",
            row(pk("id", Types.BIGINT, 10L), f("money", Types.INTEGER, 100)),
            row(pk("id", Types.BIGINT, 11L), f("money", Types.INTEGER, 200)));
        TableRecords beforeUpdate = records("account",
            row(pk("id", Types.BIGINT, 1L), f("money", Types.INTEGER, 100)));
        TableRecords afterUpdate = records("account",
            row(pk("id", Types.BIGINT, 1L), f("money", Types.INTEGER, 90)));
        TableRecords deleted = records("order_line",
            row(pk("order_id", Types.INTEGER, 5), pk("line_no", Types.INTEGER, 1),
                f("sku", Types.VARCHAR, "A-1")));
        TableRecords joinBefore = records("account",
            row(pk("id", Types.BIGINT, 2L), f("money", Types.INTEGER, 5)));
        TableRecords joinAfter = records("account",
            row(pk("id", Types.BIGINT, 2L), f("money", Types.INTEGER, 6)));
        return branch("127.0.0.1:8091:1", 2L,
            item(SQLType.INSERT, "account", new TableRecords.EmptyTableRecords(), inserted),
            item(SQLType.UPDATE, "account", beforeUpdate, afterUpdate),
            item(SQLType.DELETE, "order_line", deleted, new TableRecords.EmptyTableRecords()),
            item(SQLType.UPDATE_JOIN, "account", joinBefore, joinAfter));
    }

    /** Classes that other drivers produce and the parser has its own serializers for. */
    static BranchUndoLog miscValues() throws Exception {
        Row row = row(
            pk("id", Types.SMALLINT, (short) 3),
            f("c_byte", Types.TINYINT, (byte) -7),
            f("c_short", Types.SMALLINT, (short) 300),
            f("c_blob", Types.BLOB, new SerialBlob("blob bytes".getBytes(StandardCharsets.UTF_8))),
            f("c_clob", Types.CLOB, new SerialClob("clob \u00e9".toCharArray())),
            f("c_biginteger", Types.NUMERIC, new BigInteger("-170141183460469231731687303715884105728")));
        return branch("xid-misc", -1L,
            item(SQLType.UPDATE, "misc", records("misc", row), records("misc", row)));
    }

    /** Big enough that Java compresses it (above the 64 KiB default threshold). */
    static BranchUndoLog large() {
        List<Row> before = new ArrayList<>();
        List<Row> after = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            String name = "customer-" + i + "-" + "x".repeat(i % 50);
            before.add(row(pk("id", Types.BIGINT, (long) i), f("name", Types.VARCHAR, name),
                f("balance", Types.DECIMAL, new BigDecimal(i + ".25"))));
            after.add(row(pk("id", Types.BIGINT, (long) i), f("name", Types.VARCHAR, name),
                f("balance", Types.DECIMAL, new BigDecimal(i + ".75"))));
        }
        TableRecords b = records("customer");
        b.setRows(before);
        TableRecords a = records("customer");
        a.setRows(after);
        return branch("172.16.1.1:8091:99", 100L, item(SQLType.UPDATE, "customer", b, a));
    }
}
