package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * Issue 9: AT undo logs are interchangeable between seata-all's {@code DataSourceProxy} and
 * {@code ferrata-at}, on MariaDB (Connector/J, {@code jdbc:mysql:}) and PostgreSQL (PgJDBC).
 *
 * <ul>
 *   <li><b>Java writes, Rust rolls back</b>: the Java TM (this JVM) begins; the Java RM updates,
 *       inserts and deletes rows (int, bigint, decimal, varchar, datetime/timestamp, date,
 *       blob/bytea) and commits phase one, so Seata writes the undo log; the Java RM stops; the
 *       Java TM rolls back, the TC hands the branch to the Rust RM, whose {@code ferrata-at}
 *       restores the rows from the Java-written log.</li>
 *   <li><b>Rust writes, Java rolls back</b>: the same statements run by the Rust RM
 *       ({@code ferrata-interop-peer at}) inside the Java TM's XID; the Rust RM stops; Seata's
 *       undo executor in the Java RM restores the rows from the Rust-written log.</li>
 * </ul>
 * Both assert every column of every row equal to the state before the transaction, and the undo
 * table empty.
 *
 * <p><b>Routing.</b> Both RMs register the same resource id ({@code jdbc:mysql://host:port/db} or
 * {@code jdbc:postgresql://host:port/db}, checked from their ready lines) under different
 * application ids. The TC sends AT phase two to the channel of the branch's registering client,
 * else (that channel gone, no other channel of its application) to any channel that registered
 * the resource id (semantics §1.6). The writer is therefore stopped — its process exits, which
 * closes its TC connection — before the TM rolls back, leaving the other RM as the only one
 * registered for the resource. Seata's RM client is a JVM-wide singleton that cannot be
 * restarted, so the Java RM runs in its own JVM ({@link JavaRmProcess}, this module's test class
 * path, {@code -Duser.timezone=UTC}, matching ferrata-at's default {@code java_time_zone}); this
 * JVM is the TM only. Each scenario starts a fresh pair of RM processes, both speaking the same
 * stdin/stdout JSON-line protocol.
 *
 * <p>Needs {@code FERRATA_PEER_BIN} (as {@link MixedLanguageTest}), {@code FERRATA_MYSQL_URL} and
 * {@code FERRATA_POSTGRES_URL} ({@code scripts/services env}); fails (never skips) without them.
 * Tables: {@code at_java_item}, undo table {@code at_java_undo_log}. RM output:
 * {@code target/peer-logs/AtInterchangeTest-*.log}.
 */
class AtInterchangeTest {

    static final String TABLE = "at_java_item";
    static final String UNDO_TABLE = "at_java_undo_log";
    static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);
    static final Duration STOP_TIMEOUT = Duration.ofSeconds(20);
    static final Duration RESTORE_TIMEOUT = Duration.ofSeconds(30);

    private static TcServer tc;
    private static Path peerBin;
    private static Path logDir;
    private final List<RmProcess> started = new ArrayList<>();

    /** One database: how to reach it and its SQL flavour. */
    record Db(String name, String url, String jdbcUrl, String user, String password, String ddl, String blob1,
              String blob2) {

        static Db fromEnv(String name, String var) {
            String url = System.getenv(var);
            if (url == null || url.isBlank()) {
                throw new IllegalStateException(AtInterchangeTest.class.getSimpleName() + " needs " + var
                    + " (eval \"$(scripts/services env)\" after scripts/services start)");
            }
            URI uri = URI.create(url.trim());
            String[] userInfo = uri.getUserInfo().split(":", 2);
            boolean mysql = uri.getScheme().startsWith("mysql") || uri.getScheme().startsWith("mariadb");
            String jdbc = (mysql ? "jdbc:mysql://" : "jdbc:postgresql://") + uri.getHost() + ":" + uri.getPort()
                + uri.getPath();
            String ddl = mysql
                ? "CREATE TABLE " + TABLE + " (id BIGINT PRIMARY KEY, qty INT NOT NULL, total BIGINT,"
                    + " price DECIMAL(12,2), label VARCHAR(64), created DATETIME, day DATE, data BLOB)"
                : "CREATE TABLE " + TABLE + " (id BIGINT PRIMARY KEY, qty INT NOT NULL, total BIGINT,"
                    + " price NUMERIC(12,2), label VARCHAR(64), created TIMESTAMP, day DATE, data BYTEA)";
            return new Db(name, url.trim(), jdbc, userInfo[0], userInfo.length > 1 ? userInfo[1] : "", ddl,
                mysql ? "X'00FF10'" : "'\\x00ff10'", mysql ? "X'ABCD'" : "'\\xabcd'");
        }

        Connection connect() throws SQLException {
            return DriverManager.getConnection(jdbcUrl, user, password);
        }

        /** Statements of one branch: an UPDATE of every column type, an INSERT, a DELETE. */
        List<String> branchStatements() {
            return List.of(
                "UPDATE " + TABLE + " SET qty = qty + 5, total = 9000000000, price = 99.99, label = 'changed',"
                    + " created = '2031-02-03 04:05:06', day = '2031-02-03', data = " + blob2 + " WHERE id = 1",
                "INSERT INTO " + TABLE + " (id, qty, total, price, label, created, day, data) VALUES"
                    + " (10, 7, 70000000000, 7.70, 'inserted', '2024-05-06 07:08:09', '2024-05-06', " + blob2 + ")",
                "DELETE FROM " + TABLE + " WHERE id = 2");
        }
    }

    @BeforeAll
    static void startTcAndTm() throws IOException {
        peerBin = MixedLanguageTestSupport.peerBinary();
        logDir = moduleDir().resolve("target").resolve("peer-logs");
        Files.createDirectories(logDir);
        tc = TcServer.forTestClass(AtInterchangeTest.class);
        Seata.initTm(tc);
    }

    @AfterAll
    static void stopTc() {
        if (tc != null) {
            tc.close();
        }
    }

    @BeforeEach
    void cleanContext() {
        Seata.clearContext();
    }

    @AfterEach
    void stopRms() {
        Seata.clearContext();
        for (RmProcess rm : started) {
            rm.kill();
        }
    }

    @Test
    void mariadbJavaWritesRustRollsBack() throws Exception {
        javaWritesRustRollsBack(Db.fromEnv("mariadb", "FERRATA_MYSQL_URL"));
    }

    @Test
    void mariadbRustWritesJavaRollsBack() throws Exception {
        rustWritesJavaRollsBack(Db.fromEnv("mariadb", "FERRATA_MYSQL_URL"));
    }

    @Test
    void postgresJavaWritesRustRollsBack() throws Exception {
        javaWritesRustRollsBack(Db.fromEnv("postgres", "FERRATA_POSTGRES_URL"));
    }

    @Test
    void postgresRustWritesJavaRollsBack() throws Exception {
        rustWritesJavaRollsBack(Db.fromEnv("postgres", "FERRATA_POSTGRES_URL"));
    }

    private void javaWritesRustRollsBack(Db db) throws Exception {
        List<List<String>> before = resetTable(db);
        RmProcess rust = startRust(db, "java-writes");
        RmProcess java = startJava(db, "java-writes");
        assertEquals(java.resourceId, rust.resourceId, "both RMs must register the same resource id");

        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(60_000, Seata.uniqueName("at-java-writes-" + db.name));
        String xid = tx.getXid();
        Seata.clearContext();
        java.branch(xid, db.branchStatements());
        assertNotEquals(before, rows(db), "the Java branch changed the rows");
        assertEquals(1, undoRows(db, xid), "Java wrote one undo log for its branch");
        java.stop();

        tx.rollback();
        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(),
            "the Rust RM rolled back the Java branch; Rust RM log " + rust.log + ":\n" + tail(rust.log, 30));
        assertRestored(db, before, xid, rust);
        rust.stop();
    }

    private void rustWritesJavaRollsBack(Db db) throws Exception {
        List<List<String>> before = resetTable(db);
        RmProcess rust = startRust(db, "rust-writes");
        RmProcess java = startJava(db, "rust-writes");
        assertEquals(rust.resourceId, java.resourceId, "both RMs must register the same resource id");

        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(60_000, Seata.uniqueName("at-rust-writes-" + db.name));
        String xid = tx.getXid();
        Seata.clearContext();
        rust.branch(xid, db.branchStatements());
        assertNotEquals(before, rows(db), "the Rust branch changed the rows");
        assertEquals(1, undoRows(db, xid), "Rust wrote one undo log for its branch");
        rust.stop();

        tx.rollback();
        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(),
            "the Java RM rolled back the Rust branch; Java RM log " + java.log + ":\n" + tail(java.log, 60));
        assertRestored(db, before, xid, java);
        java.stop();
    }

    private static void assertRestored(Db db, List<List<String>> before, String xid, RmProcess restorer)
        throws SQLException {
        assertEquals(before, rows(db), "every row restored exactly by the " + restorer.name + " RM; log "
            + restorer.log + ":\n" + tail(restorer.log, 40));
        assertEquals(0, undoRows(db, xid), "undo log of " + xid + " deleted");
        assertEquals(0, undoRows(db, null), "undo table empty");
    }

    // ------------------------------------------------------------------------- database

    /** Recreates the test table with three rows; returns its rows. */
    private static List<List<String>> resetTable(Db db) throws SQLException {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + TABLE);
            st.execute(db.ddl);
            st.execute("INSERT INTO " + TABLE + " (id, qty, total, price, label, created, day, data) VALUES"
                + " (1, 1, 10000000000, 12.50, 'ann', '2024-01-02 03:04:05', '2024-01-02', " + db.blob1 + "),"
                + " (2, 2, -5, 0.01, 'bob', '1999-12-31 23:59:59', '1999-12-31', NULL),"
                + " (3, 3, NULL, NULL, NULL, NULL, NULL, NULL)");
            // the undo table is created by the Rust RM (Seata's DDL) when missing; empty it here
            try {
                st.execute("DELETE FROM " + UNDO_TABLE);
            } catch (SQLException missing) {
                // created on the first Rust RM start
            }
        }
        return rows(db);
    }

    /** Every column of every row as text (binary as hex), by id. */
    private static List<List<String>> rows(Db db) throws SQLException {
        List<List<String>> rows = new ArrayList<>();
        try (Connection c = db.connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT * FROM " + TABLE + " ORDER BY id")) {
            ResultSetMetaData md = rs.getMetaData();
            while (rs.next()) {
                List<String> row = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    String name = md.getColumnName(i).toLowerCase();
                    if (name.equals("data")) {
                        byte[] bytes = rs.getBytes(i);
                        row.add(name + "=" + (bytes == null ? "null" : HexFormat.of().formatHex(bytes)));
                    } else {
                        row.add(name + "=" + rs.getString(i));
                    }
                }
                rows.add(row);
            }
        }
        return rows;
    }

    private static int undoRows(Db db, String xid) throws SQLException {
        String sql = "SELECT COUNT(*) FROM " + UNDO_TABLE + (xid == null ? "" : " WHERE xid = '" + xid + "'");
        try (Connection c = db.connect(); Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            rs.next();
            return rs.getInt(1);
        }
    }

    // ------------------------------------------------------------------- RM processes

    private RmProcess startRust(Db db, String scenario) throws IOException {
        List<String> cmd = List.of(peerBin.toString(), "at", "--tc", tc.address(), "--db-url", db.url,
            "--undo-table", UNDO_TABLE);
        return start("rust", db, scenario, cmd);
    }

    private RmProcess startJava(Db db, String scenario) throws IOException {
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = List.of(java.toString(), "-Duser.timezone=UTC", "-Djava.net.preferIPv4Stack=true",
            "-cp", System.getProperty("java.class.path"), JavaRmProcess.class.getName(), tc.host(),
            String.valueOf(tc.port()), db.jdbcUrl, db.user, db.password, UNDO_TABLE);
        return start("java", db, scenario, cmd);
    }

    private RmProcess start(String name, Db db, String scenario, List<String> cmd) throws IOException {
        Path log = logDir.resolve(AtInterchangeTest.class.getSimpleName() + "-" + db.name + "-" + scenario + "-"
            + name + ".log");
        Files.deleteIfExists(log);
        System.out.println("[at-test] starting " + name + " RM: " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        RmProcess rm = new RmProcess(name, pb.start(), log);
        started.add(rm);
        Map<String, Object> ready = rm.read(READY_TIMEOUT);
        assertEquals(Boolean.TRUE, ready.get("ready"), name + " RM ready line: " + ready);
        rm.resourceId = (String) ready.get("resource_id");
        assertEquals(db.jdbcUrl, rm.resourceId, name + " RM resource id");
        return rm;
    }

    /** An RM process: JSON lines to its stdin, JSON lines from its stdout, stderr to a log. */
    static final class RmProcess {
        final String name;
        final Process process;
        final Path log;
        final Writer stdin;
        final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        String resourceId;

        RmProcess(String name, Process process, Path log) {
            this.name = name;
            this.process = process;
            this.log = log;
            this.stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
            Thread reader = new Thread(() -> {
                try (BufferedReader out = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = out.readLine()) != null) {
                        lines.add(line);
                    }
                } catch (IOException ignored) {
                    // process gone
                }
            }, "at-rm-" + name + "-stdout");
            reader.setDaemon(true);
            reader.start();
        }

        Map<String, Object> read(Duration timeout) {
            String line;
            try {
                line = lines.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted", e);
            }
            if (line == null) {
                throw new AssertionError(name + " RM answered nothing within " + timeout.toSeconds() + " s (alive: "
                    + process.isAlive() + "); log " + log + ":\n" + tail(log, 60));
            }
            return MixedLanguageTest.Json.object(line);
        }

        /** Runs {@code statements} as one branch of {@code xid} and waits for phase one to end. */
        void branch(String xid, List<String> statements) throws IOException {
            StringBuilder sb = new StringBuilder("{\"xid\":\"").append(JavaRmProcess.escape(xid)).append("\",\"sql\":[");
            for (int i = 0; i < statements.size(); i++) {
                sb.append(i == 0 ? "\"" : ",\"").append(JavaRmProcess.escape(statements.get(i))).append('"');
            }
            stdin.write(sb.append("]}\n").toString());
            stdin.flush();
            Map<String, Object> answer = read(COMMAND_TIMEOUT);
            assertEquals(Boolean.TRUE, answer.get("ok"), name + " RM branch of " + xid + ": " + answer + "; log "
                + log + ":\n" + tail(log, 60));
            assertEquals(List.of(1L, 1L, 1L), answer.get("rows"), "rows changed per statement");
        }

        /** {@code quit}, then waits for the process (and so its TC connection) to end. */
        void stop() throws IOException, InterruptedException {
            stdin.write("quit\n");
            stdin.flush();
            if (!process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new AssertionError(name + " RM did not exit within " + STOP_TIMEOUT.toSeconds()
                    + " s of quit; log " + log + ":\n" + tail(log, 40));
            }
            assertEquals(0, process.exitValue(), name + " RM exit code; log " + log + ":\n" + tail(log, 40));
        }

        void kill() {
            if (process.isAlive()) {
                process.destroyForcibly();
                try {
                    process.waitFor(STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    // -------------------------------------------------------------------------- helpers

    /** {@code target/peer-logs} of this module, created: where the suites' processes log. */
    static Path peerLogDir() throws IOException {
        Path dir = moduleDir().resolve("target").resolve("peer-logs");
        Files.createDirectories(dir);
        return dir;
    }

    private static Path moduleDir() {
        String dir = System.getProperty("interop.module.dir");
        return (dir == null ? Paths.get("") : Paths.get(dir)).toAbsolutePath();
    }

    static String tail(Path file, int lines) {
        if (file == null || !Files.exists(file)) {
            return "(no log)";
        }
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException | UncheckedIOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    /** FERRATA_PEER_BIN, checked as {@link MixedLanguageTest} does. */
    static final class MixedLanguageTestSupport {
        static Path peerBinary() {
            String bin = System.getenv(MixedLanguageTest.ENV_PEER_BIN);
            if (bin == null || bin.isBlank()) {
                throw new IllegalStateException(AtInterchangeTest.class.getSimpleName() + " needs "
                    + MixedLanguageTest.ENV_PEER_BIN + "=/path/to/ferrata-interop-peer (cargo build -p"
                    + " ferrata-interop-peer)");
            }
            Path path = Paths.get(bin.trim()).toAbsolutePath();
            if (!Files.isExecutable(path)) {
                throw new IllegalStateException(MixedLanguageTest.ENV_PEER_BIN + " is not an executable file: " + path);
            }
            return path;
        }
    }
}
