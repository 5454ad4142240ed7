package dev.ferrata.interop.seata2;

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
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Issue 12, point 5: one global transaction with a Java XA branch (seata-all's
 * {@code DataSourceProxyXA} in {@link JavaRmProcess} {@code xa} mode) and a Rust XA branch
 * ({@code ferrata-xa} in {@code ferrata-interop-peer xa}), on MariaDB and on PostgreSQL, the
 * Java TM in this JVM. Both RMs register the same resource id (the JDBC URL) under different
 * applications; the TC sends each branch's phase 2 to the RM that registered it. Commit makes
 * both branches' changes visible, rollback leaves none, and nothing stays prepared.
 *
 * <p>Needs {@code FERRATA_PEER_BIN}, {@code FERRATA_MYSQL_URL} and {@code FERRATA_POSTGRES_URL}
 * (PostgreSQL with {@code max_prepared_transactions} > 0); fails (never skips) without them.
 * Table {@code xa_mixed_item}; RM logs in {@code target/peer-logs/XaMixedTransactionTest-*.log}.
 */
class XaMixedTransactionTest {

    static final String TABLE = "xa_mixed_item";

    private static TcServer tc;
    private static Path peerBin;
    private static Path logDir;
    private final List<RmProcess> started = new ArrayList<>();

    @BeforeAll
    static void startTcAndTm() throws IOException {
        peerBin = AtInterchangeTest.MixedLanguageTestSupport.peerBinary();
        logDir = AtInterchangeTest.peerLogDir();
        tc = TcServer.forTestClass(XaMixedTransactionTest.class);
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

    @Test
    void javaAndRustXaBranchesCommitAndRollBackTogether() throws Exception {
        for (Db db : List.of(Db.fromEnv("mariadb", "FERRATA_MYSQL_URL"),
            Db.fromEnv("postgres", "FERRATA_POSTGRES_URL"))) {
            List<List<String>> before = resetTable(db);
            RmProcess java = start(db, "java", List.of(
                Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
                "-Djava.net.preferIPv4Stack=true", "-cp", System.getProperty("java.class.path"),
                JavaRmProcess.class.getName(), tc.host(), String.valueOf(tc.port()), db.jdbcUrl(), db.user(),
                db.password(), "-", "xa"));
            RmProcess rust = start(db, "rust", List.of(peerBin.toString(), "xa", "--tc", tc.address(),
                "--db-url", db.url(), "--resource-id", db.jdbcUrl()));

            GlobalTransaction commit = begin("xa-mixed-commit-" + db.name());
            java.branch(commit.getXid(), javaStatements());
            rust.branch(commit.getXid(), rustStatements());
            assertEquals(before, rows(db), db.name() + ": prepared branches are invisible");
            commit.commit();
            assertEquals(GlobalStatus.Committed, commit.getLocalStatus(), db.name() + ": " + logs(java, rust));
            assertEquals(List.of(List.of("1", "11"), List.of("2", "21"), List.of("3", "31"), List.of("4", "41"),
                List.of("10", "100"), List.of("20", "200")), rows(db), db.name() + ": both branches committed");

            resetTable(db);
            GlobalTransaction rollback = begin("xa-mixed-rollback-" + db.name());
            java.branch(rollback.getXid(), javaStatements());
            rust.branch(rollback.getXid(), rustStatements());
            rollback.rollback();
            assertEquals(GlobalStatus.Rollbacked, rollback.getLocalStatus(), db.name() + ": " + logs(java, rust));
            assertEquals(before, rows(db), db.name() + ": neither branch left a trace");
            assertEquals(0, XaTransactionTest.prepared(db, commit.getXid()), db.name() + ": nothing left prepared");
            assertEquals(0, XaTransactionTest.prepared(db, rollback.getXid()), db.name() + ": nothing left prepared");
            java.stop();
            rust.stop();
        }
    }

    /** The Java branch: rows 1 and 2, and a new row 10 (one row per statement). */
    private static List<String> javaStatements() {
        return List.of("UPDATE " + TABLE + " SET qty = qty + 1 WHERE id = 1",
            "UPDATE " + TABLE + " SET qty = qty + 1 WHERE id = 2",
            "INSERT INTO " + TABLE + " (id, qty) VALUES (10, 100)");
    }

    /** The Rust branch: rows 3 and 4, and a new row 20. */
    private static List<String> rustStatements() {
        return List.of("UPDATE " + TABLE + " SET qty = qty + 1 WHERE id = 3",
            "UPDATE " + TABLE + " SET qty = qty + 1 WHERE id = 4",
            "INSERT INTO " + TABLE + " (id, qty) VALUES (20, 200)");
    }

    private static GlobalTransaction begin(String name) throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(60_000, Seata.uniqueName(name));
        Seata.clearContext();
        return tx;
    }

    private RmProcess start(Db db, String name, List<String> cmd) throws IOException {
        Path log = logDir.resolve(XaMixedTransactionTest.class.getSimpleName() + "-" + db.name() + "-" + name
            + ".log");
        Files.deleteIfExists(log);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        RmProcess rm = new RmProcess(name, pb.start(), log);
        started.add(rm);
        Map<String, Object> ready = rm.read(AtInterchangeTest.READY_TIMEOUT);
        assertEquals(Boolean.TRUE, ready.get("ready"), name + " RM ready line: " + ready);
        assertEquals(db.jdbcUrl(), ready.get("resource_id"), name + " RM resource id");
        return rm;
    }

    private static String logs(RmProcess... rms) {
        StringBuilder sb = new StringBuilder();
        for (RmProcess rm : rms) {
            sb.append("\n").append(rm.name).append(" RM log ").append(rm.log).append(":\n")
                .append(AtInterchangeTest.tail(rm.log, 30));
        }
        return sb.toString();
    }

    private static List<List<String>> resetTable(Db db) throws SQLException {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + TABLE);
            st.execute("CREATE TABLE " + TABLE + " (id BIGINT PRIMARY KEY, qty INT NOT NULL)");
            st.execute("INSERT INTO " + TABLE + " (id, qty) VALUES (1, 10), (2, 20), (3, 30), (4, 40)");
        }
        return rows(db);
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
}
