package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 9: a Java AT resource manager (seata-all's real {@code DataSourceProxy}, {@link JavaRmProcess})
 * and a Rust one ({@code ferrata-at}, {@code ferrata-interop-peer at}) are branches of one global
 * transaction on the same table, on MariaDB and on PostgreSQL.
 *
 * <ul>
 *   <li><b>Java TM</b> (this JVM) and <b>Rust TM</b> (the Rust peer's {@code {"tm":…}} commands):
 *       the Java RM updates rows 1 and 2, the Rust RM rows 3 and 4, in the same XID. Commit keeps
 *       both changes, then both RMs delete their undo logs (asynchronously) and the TC holds no
 *       lock on the four rows; rollback restores every row exactly, with no undo log and no lock
 *       left.</li>
 *   <li><b>A lock held by one blocks the other</b>: the holder's branch updated row R (phase one
 *       done, its transaction still open); the other RM's update of R in a second transaction
 *       fails with the lock wait timeout (Java: seata-all's {@code LockWaitTimeoutException};
 *       Rust: {@code kind} {@code LockWaitTimeout}) and leaves R as the holder left it. Once the
 *       holder ends (committed when Rust holds, rolled back when Java holds), the same update in
 *       the second transaction succeeds and commits.</li>
 * </ul>
 *
 * <p>Both RMs register the same resource id (the JDBC URL; checked from their ready lines), so
 * their lock keys ({@code table:pk}) name the same rows in the TC; each RM's branches get their
 * phase two on its own connection. Global locks are observed with GlobalLockQuery through the
 * Rust peer ({@code {"lock_query":…}}). Lock retries are kept short on both sides: Java RM
 * {@code client.rm.lock.retryInterval}/{@code retryTimes}, Rust {@code --lock-retry-interval-ms}/
 * {@code --lock-retry-times}. One Java RM JVM and one Rust RM process per database serve every
 * test of the class.
 *
 * <p>Needs {@code FERRATA_PEER_BIN}, {@code FERRATA_MYSQL_URL}, {@code FERRATA_POSTGRES_URL}
 * (as {@link AtInterchangeTest}); fails (never skips) without them. Tables
 * {@code at_mixed_account}, undo table {@code at_mixed_undo_log}; RM output:
 * {@code target/peer-logs/AtMixedTransactionTest-*.log}.
 */
class AtMixedTransactionTest {

    static final String TABLE = "at_mixed_account";
    static final String UNDO_TABLE = "at_mixed_undo_log";
    /** Every row of the table: the Java RM changes rows 1 and 2, the Rust RM rows 3 and 4. */
    static final String ALL_ROWS = TABLE + ":1,2,3,4";
    static final int LOCK_RETRY_INTERVAL_MS = 50;
    static final int LOCK_RETRY_TIMES = 10;
    static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);
    static final Duration EVENTUALLY = Duration.ofSeconds(30);

    private static TcServer tc;
    private static Path peerBin;
    private static Path logDir;
    /** The RM pair of each database, started on first use. */
    private static final Map<String, Rms> rmsByDb = new HashMap<>();
    /** Transactions a test began and has not ended: rolled back after the test. */
    private final List<Runnable> openTransactions = new ArrayList<>();

    /** One database: its URL for the Rust peer, its JDBC URL for the Java side (SeataDbTakeoverTest's too). */
    record Db(String name, String url, String jdbcUrl, String user, String password, boolean mysql) {

        static Db fromEnv(String name, String var) {
            String url = System.getenv(var);
            if (url == null || url.isBlank()) {
                throw new IllegalStateException("this test needs " + var
                    + " (eval \"$(scripts/services env)\" after scripts/services start)");
            }
            URI uri = URI.create(url.trim());
            String[] userInfo = uri.getUserInfo().split(":", 2);
            boolean mysql = uri.getScheme().startsWith("mysql") || uri.getScheme().startsWith("mariadb");
            String jdbc = (mysql ? "jdbc:mysql://" : "jdbc:postgresql://") + uri.getHost() + ":" + uri.getPort()
                + uri.getPath();
            return new Db(name, url.trim(), jdbc, userInfo[0], userInfo.length > 1 ? userInfo[1] : "", mysql);
        }

        Connection connect() throws SQLException {
            return DriverManager.getConnection(jdbcUrl, user, password);
        }
    }

    /** The two resource managers of one database. */
    record Rms(AtInterchangeTest.RmProcess java, AtInterchangeTest.RmProcess rust) {
    }

    @BeforeAll
    static void startTcAndTm() throws IOException {
        peerBin = AtInterchangeTest.MixedLanguageTestSupport.peerBinary();
        logDir = moduleDir().resolve("target").resolve("peer-logs");
        Files.createDirectories(logDir);
        tc = TcServer.forTestClass(AtMixedTransactionTest.class);
        Seata.initTm(tc);
    }

    @AfterAll
    static void stopAll() {
        try {
            for (Rms rms : rmsByDb.values()) {
                rms.java.kill();
                rms.rust.kill();
            }
            rmsByDb.clear();
        } finally {
            if (tc != null) {
                tc.close();
            }
        }
    }

    @BeforeEach
    void cleanContext() {
        Seata.clearContext();
    }

    @AfterEach
    void endOpenTransactions() {
        Seata.clearContext();
        for (Runnable end : openTransactions) {
            try {
                end.run();
            } catch (RuntimeException | AssertionError e) {
                System.out.println("[at-mixed] rolling back a transaction left open: " + Await.describe(e));
            }
        }
        openTransactions.clear();
    }

    static Db mariadb() {
        return Db.fromEnv("mariadb", "FERRATA_MYSQL_URL");
    }

    static Db postgres() {
        return Db.fromEnv("postgres", "FERRATA_POSTGRES_URL");
    }

    // ------------------------------------------------------------- one transaction, both RMs

    @Test
    void mariadbJavaTmCommitKeepsBoth() throws Exception {
        javaTm(mariadb(), true);
    }

    @Test
    void mariadbJavaTmRollbackRestoresBoth() throws Exception {
        javaTm(mariadb(), false);
    }

    @Test
    void mariadbRustTmCommitKeepsBoth() throws Exception {
        rustTm(mariadb(), true);
    }

    @Test
    void mariadbRustTmRollbackRestoresBoth() throws Exception {
        rustTm(mariadb(), false);
    }

    @Test
    void postgresJavaTmCommitKeepsBoth() throws Exception {
        javaTm(postgres(), true);
    }

    @Test
    void postgresJavaTmRollbackRestoresBoth() throws Exception {
        javaTm(postgres(), false);
    }

    @Test
    void postgresRustTmCommitKeepsBoth() throws Exception {
        rustTm(postgres(), true);
    }

    @Test
    void postgresRustTmRollbackRestoresBoth() throws Exception {
        rustTm(postgres(), false);
    }

    /** The Java TM begins and ends; both RMs work in its XID. */
    private void javaTm(Db db, boolean commit) throws Exception {
        Rms rms = rms(db);
        List<String> before = resetTable(db);
        GlobalTransaction tx = javaBegin("at-mixed-java-tm-" + db.name);
        String xid = tx.getXid();

        bothBranches(db, rms, xid);

        if (commit) {
            tx.commit();
            assertEquals(GlobalStatus.Committed, tx.getLocalStatus(), "GlobalCommit answer for " + xid);
        } else {
            tx.rollback();
            assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(), "GlobalRollback answer for " + xid);
        }
        Seata.clearContext();
        assertEnd(db, rms, xid, before, commit);
    }

    /** The Rust peer begins and ends (its stdin {@code tm} commands); both RMs work in its XID. */
    private void rustTm(Db db, boolean commit) throws Exception {
        Rms rms = rms(db);
        List<String> before = resetTable(db);
        String xid = rustBegin(rms.rust, "at-mixed-rust-tm-" + db.name);
        assertEquals(tc.port(), Xid.parse(xid).port(), "the Rust TM began " + xid + " on this class's TC");
        assertEquals(GlobalStatus.Begin, Seata.status(xid), "a transaction the Rust TM began is live");

        bothBranches(db, rms, xid);

        String status = rustEnd(rms.rust, xid, commit);
        assertEquals(commit ? "Committed" : "Rollbacked", status, "the TC's answer to the Rust TM for " + xid);
        assertEnd(db, rms, xid, before, commit);
    }

    /**
     * Java updates rows 1 and 2, Rust rows 3 and 4, each one branch of {@code xid}; checks the
     * rows, one undo log per branch, and that the TC locks all four rows for {@code xid}.
     */
    private void bothBranches(Db db, Rms rms, String xid) throws Exception {
        List<Long> javaRows = branch(rms.java, xid,
            "UPDATE " + TABLE + " SET balance = balance - 30, note = 'java' WHERE id IN (1, 2)");
        assertEquals(List.of(2L), javaRows, "rows the Java branch updated");
        List<Long> rustRows = branch(rms.rust, xid,
            "UPDATE " + TABLE + " SET balance = balance + 30, note = 'rust' WHERE id IN (3, 4)");
        assertEquals(List.of(2L), rustRows, "rows the Rust branch updated");

        assertEquals(changedRows(), rows(db), "both branches' changes are in the table (phase one committed)");
        assertEquals(2, undoRows(db, xid), "one undo log per branch (Java's and Rust's) for " + xid);
        assertEquals(Boolean.FALSE, lockable(rms.rust, ALL_ROWS, ""),
            "while " + xid + " is open the TC holds the global locks of all four rows");
        assertEquals(Boolean.TRUE, lockable(rms.rust, ALL_ROWS, xid), "the rows are free for " + xid + " itself");
    }

    /** After the end of {@code xid}: the rows, the undo logs and the global locks. */
    private void assertEnd(Db db, Rms rms, String xid, List<String> before, boolean commit) throws Exception {
        if (commit) {
            assertEquals(changedRows(), rows(db), "commit keeps the Java and the Rust change");
            Await.condition("undo logs of " + xid + " deleted by both RMs (asynchronous commit)", EVENTUALLY,
                () -> undoRowsUnchecked(db, xid) == 0);
        } else {
            assertEquals(before, rows(db), "rollback restores the Java and the Rust rows exactly; Java RM log "
                + rms.java.log + ":\n" + AtInterchangeTest.tail(rms.java.log, 30) + "\nRust RM log " + rms.rust.log
                + ":\n" + AtInterchangeTest.tail(rms.rust.log, 30));
            assertEquals(0, undoRows(db, xid), "rollback deleted both undo logs of " + xid);
        }
        Await.condition("no global lock left on " + ALL_ROWS + " after " + xid + " ended", EVENTUALLY,
            () -> Boolean.TRUE.equals(lockable(rms.rust, ALL_ROWS, "")));
        assertEquals(0, undoRows(db, null), "undo table empty");
        if (commit) {
            assertEquals(changedRows(), rows(db), "the committed rows stay as they are");
        }
    }

    /** The table after both branches of {@link #bothBranches}. */
    private static List<String> changedRows() {
        return List.of("1|70|java", "2|170|java", "3|330|rust", "4|430|rust");
    }

    // ------------------------------------------------------ a lock held by one blocks the other

    @Test
    void mariadbRustLockBlocksJava() throws Exception {
        rustHoldsJavaWaits(mariadb());
    }

    @Test
    void mariadbJavaLockBlocksRust() throws Exception {
        javaHoldsRustWaits(mariadb());
    }

    @Test
    void postgresRustLockBlocksJava() throws Exception {
        rustHoldsJavaWaits(postgres());
    }

    @Test
    void postgresJavaLockBlocksRust() throws Exception {
        javaHoldsRustWaits(postgres());
    }

    /**
     * The Rust RM updates row 3 in T1 (phase one done, T1 open); the Java RM's update of row 3 in
     * T2 times out waiting for the global lock and leaves the row as T1 left it; T1 commits, and
     * the same update in T2 then goes through and commits on top of T1's.
     */
    private void rustHoldsJavaWaits(Db db) throws Exception {
        Rms rms = rms(db);
        resetTable(db);
        GlobalTransaction holder = javaBegin("at-mixed-rust-holds-" + db.name);
        assertEquals(List.of(1L), branch(rms.rust, holder.getXid(),
            "UPDATE " + TABLE + " SET balance = balance - 5, note = 'rust-holder' WHERE id = 3"));
        List<String> held = List.of("1|100|a", "2|200|b", "3|295|rust-holder", "4|400|d");
        assertEquals(held, rows(db), "the Rust holder's change of row 3");

        GlobalTransaction waiter = javaBegin("at-mixed-java-waits-" + db.name);
        String javaUpdate = "UPDATE " + TABLE + " SET balance = balance + 100, note = 'java-waiter' WHERE id = 3";
        Map<String, Object> blocked = command(rms.java, branchLine(waiter.getXid(), javaUpdate));
        assertEquals(Boolean.FALSE, blocked.get("ok"), "the Java RM must not get row 3 while the Rust branch of "
            + holder.getXid() + " holds it: " + blocked);
        assertTrue(String.valueOf(blocked.get("error")).contains("LockWaitTimeoutException"),
            "the Java RM fails with seata-all's global lock wait timeout: " + blocked);
        assertEquals(held, rows(db), "the blocked Java branch left row 3 as the Rust holder left it");
        assertEquals(0, undoRows(db, waiter.getXid()), "no undo log of the blocked Java branch");
        assertEquals(GlobalStatus.Begin, Seata.status(waiter.getXid()), "the waiting transaction is still live");

        holder.commit();
        assertEquals(GlobalStatus.Committed, holder.getLocalStatus(), "the holder commits");
        Seata.clearContext();
        Await.condition("the TC released row 3 after " + holder.getXid() + " committed", EVENTUALLY,
            () -> Boolean.TRUE.equals(lockable(rms.rust, TABLE + ":3", waiter.getXid())));

        assertEquals(List.of(1L), branch(rms.java, waiter.getXid(), javaUpdate),
            "once the holder ended, the Java RM gets row 3");
        waiter.commit();
        assertEquals(GlobalStatus.Committed, waiter.getLocalStatus(), "the waiter commits");
        Seata.clearContext();
        assertEquals(List.of("1|100|a", "2|200|b", "3|395|java-waiter", "4|400|d"), rows(db),
            "both changes of row 3, in order (no lost update)");
        Await.condition("undo logs deleted after both commits", EVENTUALLY, () -> undoRowsUnchecked(db, null) == 0);
        Await.condition("no global lock left", EVENTUALLY,
            () -> Boolean.TRUE.equals(lockable(rms.rust, ALL_ROWS, "")));
    }

    /**
     * The mirror: the Java RM updates row 1 in T1 (phase one done, T1 open); the Rust RM's update
     * of row 1 in T2 reports {@code LockWaitTimeout} and leaves the row as T1 left it; T1 rolls
     * back (row 1 restored), and the same update in T2 then goes through and commits.
     */
    private void javaHoldsRustWaits(Db db) throws Exception {
        Rms rms = rms(db);
        List<String> before = resetTable(db);
        GlobalTransaction holder = javaBegin("at-mixed-java-holds-" + db.name);
        assertEquals(List.of(1L), branch(rms.java, holder.getXid(),
            "UPDATE " + TABLE + " SET balance = balance - 7, note = 'java-holder' WHERE id = 1"));
        List<String> held = List.of("1|93|java-holder", "2|200|b", "3|300|c", "4|400|d");
        assertEquals(held, rows(db), "the Java holder's change of row 1");

        GlobalTransaction waiter = javaBegin("at-mixed-rust-waits-" + db.name);
        String rustUpdate = "UPDATE " + TABLE + " SET balance = balance + 1000, note = 'rust-waiter' WHERE id = 1";
        Map<String, Object> blocked = command(rms.rust, branchLine(waiter.getXid(), rustUpdate));
        assertEquals(Boolean.FALSE, blocked.get("ok"), "the Rust RM must not get row 1 while the Java branch of "
            + holder.getXid() + " holds it: " + blocked);
        assertEquals("LockWaitTimeout", blocked.get("kind"), "the Rust RM fails with a lock wait timeout: "
            + blocked);
        assertEquals(held, rows(db), "the blocked Rust branch left row 1 as the Java holder left it");
        assertEquals(0, undoRows(db, waiter.getXid()), "no undo log of the blocked Rust branch");
        assertEquals(GlobalStatus.Begin, Seata.status(waiter.getXid()), "the waiting transaction is still live");

        holder.rollback();
        assertEquals(GlobalStatus.Rollbacked, holder.getLocalStatus(), "the holder rolls back");
        Seata.clearContext();
        assertEquals(before, rows(db), "the Java RM restored row 1");
        Await.condition("the TC released row 1 after " + holder.getXid() + " rolled back", EVENTUALLY,
            () -> Boolean.TRUE.equals(lockable(rms.rust, TABLE + ":1", waiter.getXid())));

        assertEquals(List.of(1L), branch(rms.rust, waiter.getXid(), rustUpdate),
            "once the holder ended, the Rust RM gets row 1");
        waiter.commit();
        assertEquals(GlobalStatus.Committed, waiter.getLocalStatus(), "the waiter commits");
        Seata.clearContext();
        assertEquals(List.of("1|1100|rust-waiter", "2|200|b", "3|300|c", "4|400|d"), rows(db),
            "the Rust change on top of the restored row 1");
        Await.condition("undo logs deleted", EVENTUALLY, () -> undoRowsUnchecked(db, null) == 0);
        Await.condition("no global lock left", EVENTUALLY,
            () -> Boolean.TRUE.equals(lockable(rms.rust, ALL_ROWS, "")));
    }

    // ----------------------------------------------------------------------- transactions

    /** Begins a Java TM transaction (this thread unbound afterwards); rolled back if left open. */
    private GlobalTransaction javaBegin(String name) throws Exception {
        Seata.clearContext();
        GlobalTransaction tx = GlobalTransactionContext.createNew();
        tx.begin(60_000, Seata.uniqueName(name));
        Seata.clearContext();
        openTransactions.add(() -> {
            if (tx.getLocalStatus() == GlobalStatus.Begin) {
                try {
                    tx.rollback();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        });
        return tx;
    }

    private String rustBegin(AtInterchangeTest.RmProcess rust, String name) throws IOException {
        Map<String, Object> answer = command(rust, "{\"tm\":\"begin\",\"timeout_ms\":60000,\"name\":\""
            + JavaRmProcess.escape(Seata.uniqueName(name)) + "\"}");
        assertEquals(Boolean.TRUE, answer.get("ok"), "Rust TM begin: " + answer);
        String xid = (String) answer.get("xid");
        openTransactions.add(() -> {
            try {
                command(rust, "{\"tm\":\"rollback\",\"xid\":\"" + JavaRmProcess.escape(xid) + "\"}");
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        return xid;
    }

    /** Commits or rolls back a transaction the Rust peer began; returns the TC's status. */
    private static String rustEnd(AtInterchangeTest.RmProcess rust, String xid, boolean commit) throws IOException {
        Map<String, Object> answer = command(rust, "{\"tm\":\"" + (commit ? "commit" : "rollback") + "\",\"xid\":\""
            + JavaRmProcess.escape(xid) + "\"}");
        assertEquals(Boolean.TRUE, answer.get("ok"), "Rust TM " + (commit ? "commit" : "rollback") + " of " + xid
            + ": " + answer + "; Rust RM log " + rust.log + ":\n" + AtInterchangeTest.tail(rust.log, 30));
        return (String) answer.get("status");
    }

    // ------------------------------------------------------------------------ RM commands

    private static String branchLine(String xid, String... statements) {
        StringBuilder sb = new StringBuilder("{\"xid\":\"").append(JavaRmProcess.escape(xid)).append("\",\"sql\":[");
        for (int i = 0; i < statements.length; i++) {
            sb.append(i == 0 ? "\"" : ",\"").append(JavaRmProcess.escape(statements[i])).append('"');
        }
        return sb.append("]}").toString();
    }

    /** Runs the statements as one branch of {@code xid}; returns the rows changed per statement. */
    @SuppressWarnings("unchecked")
    private static List<Long> branch(AtInterchangeTest.RmProcess rm, String xid, String... statements)
        throws IOException {
        Map<String, Object> answer = command(rm, branchLine(xid, statements));
        assertEquals(Boolean.TRUE, answer.get("ok"), rm.name + " RM branch of " + xid + ": " + answer + "; log "
            + rm.log + ":\n" + AtInterchangeTest.tail(rm.log, 40));
        return (List<Long>) answer.get("rows");
    }

    /** GlobalLockQuery (through the Rust peer): are {@code lockKeys} free for {@code xid}? */
    private static Boolean lockable(AtInterchangeTest.RmProcess rust, String lockKeys, String xid) {
        try {
            Map<String, Object> answer = command(rust, "{\"lock_query\":\"" + JavaRmProcess.escape(lockKeys)
                + "\",\"xid\":\"" + JavaRmProcess.escape(xid) + "\"}");
            assertEquals(Boolean.TRUE, answer.get("ok"), "lock query: " + answer);
            return (Boolean) answer.get("lockable");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** One line to the RM, its one-line answer. */
    private static Map<String, Object> command(AtInterchangeTest.RmProcess rm, String line) throws IOException {
        rm.stdin.write(line + "\n");
        rm.stdin.flush();
        return rm.read(COMMAND_TIMEOUT);
    }

    // ------------------------------------------------------------------------- RM processes

    /** The RM pair of {@code db}: started (and the table created) on first use. */
    private static synchronized Rms rms(Db db) throws Exception {
        Rms rms = rmsByDb.get(db.name);
        if (rms != null) {
            assertTrue(rms.java.process.isAlive(), "Java RM of " + db.name + " exited; log " + rms.java.log + ":\n"
                + AtInterchangeTest.tail(rms.java.log, 40));
            assertTrue(rms.rust.process.isAlive(), "Rust RM of " + db.name + " exited; log " + rms.rust.log + ":\n"
                + AtInterchangeTest.tail(rms.rust.log, 40));
            return rms;
        }
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + TABLE);
            st.execute("CREATE TABLE " + TABLE + " (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL,"
                + " note VARCHAR(32))");
        }
        // the Rust RM creates the undo table (Seata's DDL) when it is missing
        List<String> rustCmd = List.of(peerBin.toString(), "at", "--tc", tc.address(), "--db-url", db.url,
            "--undo-table", UNDO_TABLE, "--lock-retry-interval-ms", String.valueOf(LOCK_RETRY_INTERVAL_MS),
            "--lock-retry-times", String.valueOf(LOCK_RETRY_TIMES));
        AtInterchangeTest.RmProcess rust = start("rust", db, rustCmd);
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        List<String> javaCmd = List.of(java.toString(), "-Duser.timezone=UTC", "-Djava.net.preferIPv4Stack=true",
            "-Dclient.rm.lock.retryInterval=" + LOCK_RETRY_INTERVAL_MS,
            "-Dclient.rm.lock.retryTimes=" + LOCK_RETRY_TIMES,
            "-cp", System.getProperty("java.class.path"), JavaRmProcess.class.getName(), tc.host(),
            String.valueOf(tc.port()), db.jdbcUrl, db.user, db.password, UNDO_TABLE);
        AtInterchangeTest.RmProcess javaRm = start("java", db, javaCmd);
        assertEquals(javaRm.resourceId, rust.resourceId, "both RMs must register the same resource id");
        rms = new Rms(javaRm, rust);
        rmsByDb.put(db.name, rms);
        return rms;
    }

    private static AtInterchangeTest.RmProcess start(String name, Db db, List<String> cmd) throws IOException {
        Path log = logDir.resolve(AtMixedTransactionTest.class.getSimpleName() + "-" + db.name + "-" + name + ".log");
        Files.deleteIfExists(log);
        System.out.println("[at-mixed] starting " + name + " RM: " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        AtInterchangeTest.RmProcess rm = new AtInterchangeTest.RmProcess(name, pb.start(), log);
        Map<String, Object> ready;
        try {
            ready = rm.read(READY_TIMEOUT);
        } catch (AssertionError e) {
            rm.kill();
            throw e;
        }
        if (!Boolean.TRUE.equals(ready.get("ready"))) {
            rm.kill();
            throw new AssertionError(name + " RM ready line: " + ready);
        }
        rm.resourceId = (String) ready.get("resource_id");
        assertEquals(db.jdbcUrl, rm.resourceId, name + " RM resource id");
        return rm;
    }

    // ---------------------------------------------------------------------------- database

    /** Rows 1-4 (balances 100-400, notes a-d), an empty undo table; returns the rows. */
    private static List<String> resetTable(Db db) throws SQLException {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            st.execute("DELETE FROM " + TABLE);
            st.execute("INSERT INTO " + TABLE + " (id, balance, note) VALUES (1, 100, 'a'), (2, 200, 'b'),"
                + " (3, 300, 'c'), (4, 400, 'd')");
            st.execute("DELETE FROM " + UNDO_TABLE);
        }
        List<String> rows = rows(db);
        assertEquals(List.of("1|100|a", "2|200|b", "3|300|c", "4|400|d"), rows);
        return rows;
    }

    /** Every row as {@code id|balance|note}, by id. */
    private static List<String> rows(Db db) throws SQLException {
        List<String> rows = new ArrayList<>();
        try (Connection c = db.connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, balance, note FROM " + TABLE + " ORDER BY id")) {
            while (rs.next()) {
                rows.add(rs.getLong(1) + "|" + rs.getLong(2) + "|" + rs.getString(3));
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

    private static int undoRowsUnchecked(Db db, String xid) {
        try {
            return undoRows(db, xid);
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Path moduleDir() {
        String dir = System.getProperty("interop.module.dir");
        return (dir == null ? Paths.get("") : Paths.get(dir)).toAbsolutePath();
    }
}
