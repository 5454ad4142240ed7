package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.seata2.AtInterchangeTest.Db;
import dev.ferrata.interop.seata2.AtInterchangeTest.RmProcess;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * Issue 12, point 2: seata-all's XA resource manager ({@code DataSourceProxyXA}, in
 * {@link JavaRmProcess} {@code xa} mode) on MariaDB (Connector/J) and PostgreSQL (PgJDBC)
 * against ferrata-server, the TM in this JVM.
 *
 * <ul>
 *   <li>commit: the branch ends prepared in phase one (XA END + XA PREPARE), the TC's
 *       BranchCommit runs XA COMMIT; rollback runs XA ROLLBACK; no prepared transaction is
 *       left either way;</li>
 *   <li>the RM process is killed between prepare and commit: the TM's commit answers
 *       CommitRetrying (no RM to deliver to), the restarted RM registers the resource again and
 *       the TC's retry commits the prepared transaction from a new connection;</li>
 *   <li>XAER_NOTA: an outsider rolled the prepared transaction back while the RM was down, so
 *       the restarted RM answers BranchCommit with status 11; the TC retries until Seata's
 *       give-up time (begin + timeout + max({@code xaer_nota_retry_timeout}, timeout)) and then
 *       ends the transaction as committed (semantics §1.5).</li>
 * </ul>
 *
 * <p>The TC runs with {@code xaer_nota_retry_timeout = "1s"} and a 1 s retry backoff ceiling.
 * PostgreSQL needs {@code max_prepared_transactions} > 0 ({@code scripts/services} sets it).
 * Needs {@code FERRATA_MYSQL_URL} and {@code FERRATA_POSTGRES_URL}; fails (never skips) without
 * them. Table {@code xa_java_item}; RM logs in {@code target/peer-logs/XaTransactionTest-*.log}.
 */
class XaTransactionTest {

    static final String TABLE = "xa_java_item";
    static final int XA_FORMAT_ID = 9752;
    static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    /** Long enough for the TC's retries (1 s apart) and, for XAER_NOTA, its give-up time. */
    static final Duration END_TIMEOUT = Duration.ofSeconds(60);

    private static TcServer tc;
    private static Path logDir;
    private final List<RmProcess> started = new ArrayList<>();

    @BeforeAll
    static void startTcAndTm() throws IOException {
        logDir = AtInterchangeTest.peerLogDir();
        tc = TcServer.managedWithConfig(XaTransactionTest.class, "xa",
            "[coordinator]\nxaer_nota_retry_timeout = \"1s\"\nretry_backoff_initial = \"200ms\"\n"
                + "retry_backoff_max = \"1s\"\n");
        Seata.initTm(tc);
    }

    @AfterAll
    static void stopTc() {
        if (tc != null) {
            tc.close();
        }
    }

    @AfterEach
    void stopRms() {
        started.forEach(RmProcess::kill);
        started.clear();
    }

    private static List<Db> databases() {
        return List.of(Db.fromEnv("mariadb", "FERRATA_MYSQL_URL"), Db.fromEnv("postgres", "FERRATA_POSTGRES_URL"));
    }

    @Test
    void commitAndRollback() throws Exception {
        for (Db db : databases()) {
            List<List<String>> before = resetTable(db);
            RmProcess rm = startRm(db, "commit-rollback");

            GlobalTransaction commit = begin(60_000, "xa-commit-" + db.name());
            rm.branch(commit.getXid(), statements());
            assertEquals(1, prepared(db, commit.getXid()), db.name() + ": phase one ends prepared");
            commit.commit();
            assertEquals(GlobalStatus.Committed, commit.getLocalStatus(), db.name() + ": " + rmLog(rm));
            assertEquals(after(), rows(db), db.name() + ": the branch's changes are committed");
            assertEquals(0, prepared(db, commit.getXid()), db.name() + ": nothing left prepared");

            resetTable(db);
            GlobalTransaction rollback = begin(60_000, "xa-rollback-" + db.name());
            rm.branch(rollback.getXid(), statements());
            rollback.rollback();
            assertEquals(GlobalStatus.Rollbacked, rollback.getLocalStatus(), db.name() + ": " + rmLog(rm));
            assertEquals(before, rows(db), db.name() + ": the branch left no trace");
            assertEquals(0, prepared(db, rollback.getXid()), db.name() + ": nothing left prepared");
            rm.stop();
        }
    }

    @Test
    void rmKilledBetweenPrepareAndCommitCommitsAfterItsRestart() throws Exception {
        for (Db db : databases()) {
            List<List<String>> before = resetTable(db);
            RmProcess rm = startRm(db, "killed");
            GlobalTransaction tx = begin(60_000, "xa-killed-" + db.name());
            String xid = tx.getXid();
            rm.branch(xid, statements());
            rm.kill();
            assertEquals(1, prepared(db, xid), db.name() + ": the prepared transaction outlives its RM");
            assertEquals(before, rows(db), db.name() + ": not visible before phase two");

            tx.commit();
            assertEquals(GlobalStatus.CommitRetrying, tx.getLocalStatus(),
                db.name() + ": no RM to deliver the commit to");

            RmProcess restarted = startRm(db, "restarted");
            awaitEnded(db.name() + ": the TC's retry commits through the restarted RM", xid, restarted);
            assertEquals(after(), rows(db), db.name() + ": the prepared changes are committed");
            assertEquals(0, prepared(db, xid), db.name() + ": nothing left prepared");
            restarted.stop();
        }
    }

    @Test
    void xaerNotaCountsAsDoneAfterTheGiveUpTime() throws Exception {
        for (Db db : databases()) {
            List<List<String>> before = resetTable(db);
            RmProcess rm = startRm(db, "nota");
            // Give-up time: begin + 10 s + max(1 s, 10 s) = begin + 20 s. The commit comes well
            // before the 10 s timeout.
            GlobalTransaction tx = begin(10_000, "xa-nota-" + db.name());
            String xid = tx.getXid();
            rm.branch(xid, statements());
            rm.kill();
            rollbackPreparedFromOutside(db, xid);
            assertEquals(0, prepared(db, xid), db.name() + ": the outsider's rollback took");

            tx.commit();
            assertEquals(GlobalStatus.CommitRetrying, tx.getLocalStatus(), db.name());
            // The restarted RM answers every BranchCommit with XAER_NOTA (status 11): only the
            // give-up rule can end the transaction.
            RmProcess restarted = startRm(db, "nota-restarted");
            awaitEnded(db.name() + ": XAER_NOTA counts as committed after the give-up time", xid, restarted);
            assertEquals(before, rows(db), db.name() + ": the outsider's rollback stands");
            restarted.stop();
        }
    }

    // ------------------------------------------------------------------------- transactions

    private static GlobalTransaction begin(int timeoutMs, String name) throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(timeoutMs, Seata.uniqueName(name));
        Seata.clearContext();
        return tx;
    }

    /** Waits until the TC no longer knows {@code xid} (GlobalStatus answers Finished). */
    private static void awaitEnded(String what, String xid, RmProcess rm) {
        try {
            Await.condition(what, END_TIMEOUT, () -> {
                try {
                    return Seata.status(xid) == GlobalStatus.Finished;
                } catch (Exception e) {
                    return false;
                }
            });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; " + rmLog(rm), e);
        }
    }

    /** One branch's statements, one row each: UPDATE, INSERT, DELETE. */
    private static List<String> statements() {
        return List.of("UPDATE " + TABLE + " SET qty = qty + 5 WHERE id = 1",
            "INSERT INTO " + TABLE + " (id, qty) VALUES (10, 7)",
            "DELETE FROM " + TABLE + " WHERE id = 2");
    }

    /** The rows once {@link #statements()} committed on a fresh table. */
    private static List<List<String>> after() {
        return List.of(List.of("1", "15"), List.of("3", "30"), List.of("10", "7"));
    }

    // ------------------------------------------------------------------------- processes

    private RmProcess startRm(Db db, String scenario) throws IOException {
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = List.of(java.toString(), "-Djava.net.preferIPv4Stack=true",
            "-cp", System.getProperty("java.class.path"), JavaRmProcess.class.getName(), tc.host(),
            String.valueOf(tc.port()), db.jdbcUrl(), db.user(), db.password(), "-", "xa");
        Path log = logDir.resolve(XaTransactionTest.class.getSimpleName() + "-" + db.name() + "-" + scenario
            + ".log");
        Files.deleteIfExists(log);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        RmProcess rm = new RmProcess("java-xa", pb.start(), log);
        started.add(rm);
        Map<String, Object> ready = rm.read(READY_TIMEOUT);
        assertEquals(Boolean.TRUE, ready.get("ready"), "XA RM ready line: " + ready);
        assertEquals(db.jdbcUrl(), ready.get("resource_id"), "XA RM resource id");
        return rm;
    }

    private static String rmLog(RmProcess rm) {
        return "RM log " + rm.log + ":\n" + AtInterchangeTest.tail(rm.log, 40);
    }

    // ------------------------------------------------------------------------- database

    /** Recreates the table with three rows; returns its rows. */
    private static List<List<String>> resetTable(Db db) throws SQLException {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + TABLE);
            st.execute("CREATE TABLE " + TABLE + " (id BIGINT PRIMARY KEY, qty INT NOT NULL)");
            st.execute("INSERT INTO " + TABLE + " (id, qty) VALUES (1, 10), (2, 20), (3, 30)");
        }
        List<List<String>> rows = rows(db);
        assertNotEquals(after(), rows);
        return rows;
    }

    private static List<List<String>> rows(Db db) throws SQLException {
        List<List<String>> rows = new ArrayList<>();
        try (Connection c = db.connect(); Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, qty FROM " + TABLE + " ORDER BY id")) {
            while (rs.next()) {
                rows.add(List.of(rs.getString(1), rs.getString(2)));
            }
        }
        return rows;
    }

    private static boolean isMysql(Db db) {
        return db.jdbcUrl().startsWith("jdbc:mysql:");
    }

    /** Prepared XA transactions of {@code xid}'s branches (Seata's gtrid is the XID itself). */
    static int prepared(Db db, String xid) throws SQLException {
        return preparedIds(db, xid).size();
    }

    /**
     * The prepared transactions of {@code xid}: MariaDB's {@code XA RECOVER} rows as
     * {@code 'gtrid','bqual',formatId}, PostgreSQL's {@code pg_prepared_xacts} gids.
     */
    private static List<String> preparedIds(Db db, String xid) throws SQLException {
        List<String> ids = new ArrayList<>();
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            if (isMysql(db)) {
                try (ResultSet rs = st.executeQuery("XA RECOVER")) {
                    while (rs.next()) {
                        int gtridLength = rs.getInt("gtrid_length");
                        int bqualLength = rs.getInt("bqual_length");
                        String data = rs.getString("data");
                        String gtrid = data.substring(0, gtridLength);
                        if (rs.getInt("formatID") == XA_FORMAT_ID && gtrid.equals(xid)) {
                            String bqual = data.substring(gtridLength, gtridLength + bqualLength);
                            ids.add("'" + gtrid + "','" + bqual + "'," + XA_FORMAT_ID);
                        }
                    }
                }
            } else {
                // PgJDBC's gid: formatId_base64(gtrid)_base64(bqual).
                String gtrid = java.util.Base64.getEncoder().encodeToString(
                    xid.getBytes(java.nio.charset.StandardCharsets.UTF_8));
                try (ResultSet rs = st.executeQuery("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE '"
                    + XA_FORMAT_ID + "\\_" + gtrid.replace("_", "\\_") + "\\_%'")) {
                    while (rs.next()) {
                        ids.add(rs.getString(1));
                    }
                }
            }
        }
        return ids;
    }

    /** What a DBA (or another recovery tool) might do: roll the prepared branch back by hand. */
    private static void rollbackPreparedFromOutside(Db db, String xid) throws Exception {
        // The killed RM's session may take a moment to end on the server side; until it does,
        // MariaDB keeps the prepared transaction attached to it.
        List<String> ids = preparedIds(db, xid);
        assertEquals(1, ids.size(), db.name() + ": one prepared branch of " + xid + ": " + ids);
        String rollback = isMysql(db) ? "XA ROLLBACK " + ids.get(0) : "ROLLBACK PREPARED '" + ids.get(0) + "'";
        Await.until(db.name() + ": " + rollback + " from outside", Duration.ofSeconds(20), Duration.ofMillis(100),
            () -> {
                try (Connection c = db.connect(); Statement st = c.createStatement()) {
                    st.execute(rollback);
                }
                return Boolean.TRUE;
            });
    }
}
