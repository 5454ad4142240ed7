package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.seata2.AtInterchangeTest.Db;
import dev.ferrata.interop.seata2.AtInterchangeTest.RmProcess;
import org.apache.seata.core.model.GlobalStatus;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 12, point 1: seata-all 2.6.0's Saga state-machine engine ({@link SagaEngineProcess}, its
 * own JVM, Seata's {@code seata_state_*} tables on MariaDB) against ferrata-server:
 *
 * <ul>
 *   <li>forward success: both steps run, the engine reports Committed and the TC forgets the
 *       transaction;</li>
 *   <li>a failing step: the engine compensates the step before it and reports Rollbacked;</li>
 *   <li>the engine process is killed in the middle of a saga and started again: the TC times the
 *       saga out and sends its one rollback request (branch id -1, resource
 *       {@code <application>#<group>}) to the restarted engine, which compensates what ran, and
 *       the transaction ends.</li>
 * </ul>
 *
 * <p>The engine's transaction timeout is 8 s; the TC retries phase 2 at most 1 s apart. Needs
 * {@code FERRATA_BIN} = ferrata-server and {@code FERRATA_MYSQL_URL}; fails (never skips)
 * without them. Engine logs in {@code target/peer-logs/SagaEngineTest-*.log}.
 */
class SagaEngineTest {

    static final String MACHINE = "ferrataPurchase";
    static final int TIMEOUT_MS = 8_000;
    static final Duration READY_TIMEOUT = Duration.ofSeconds(90);
    static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(60);
    static final Duration END_TIMEOUT = Duration.ofSeconds(60);

    private static TcServer tc;
    private static Db db;
    private static Path logDir;
    private final List<RmProcess> started = new ArrayList<>();

    @BeforeAll
    static void startTcAndTables() throws Exception {
        logDir = AtInterchangeTest.peerLogDir();
        db = Db.fromEnv("mariadb", "FERRATA_MYSQL_URL");
        createTables();
        tc = TcServer.managedWithConfig(SagaEngineTest.class, "saga",
            "[coordinator]\nretry_backoff_initial = \"200ms\"\nretry_backoff_max = \"1s\"\n");
        // This JVM asks the TC for transaction statuses; the engine is its own TM and RM.
        Seata.initTm(tc);
    }

    @AfterAll
    static void stopTc() {
        if (tc != null) {
            tc.close();
        }
    }

    @AfterEach
    void stopEngines() {
        started.forEach(RmProcess::kill);
        started.clear();
    }

    @Test
    void forwardSuccessAndCompensationAfterAFailingStep() throws Exception {
        RmProcess engine = startEngine("forward-and-compensate");

        String ok = key();
        Map<String, Object> done = run(engine, ok, "ok");
        assertEquals("SU", done.get("status"), "forward success: " + done);
        assertEquals(List.of("reduce-inventory", "reduce-balance"), ledger(ok));
        assertEquals(GlobalStatus.Finished, Seata.status((String) done.get("xid")),
            "the engine's GlobalReport(Committed) ended the transaction at the TC");

        String failing = key();
        Map<String, Object> compensated = run(engine, failing, "fail");
        assertEquals("SU", compensated.get("compensation"), "the failed saga was compensated: " + compensated);
        List<String> calls = ledger(failing);
        assertEquals(List.of("reduce-inventory", "balance-failed"), calls.subList(0, 2), "forward steps: " + calls);
        assertTrue(calls.contains("compensate-inventory"), "the inventory step was compensated: " + calls);
        assertEquals(GlobalStatus.Finished, Seata.status((String) compensated.get("xid")),
            "the engine's GlobalReport(Rollbacked) ended the transaction at the TC");
        engine.stop();
    }

    @Test
    void anEngineKilledMidSagaCompensatesItAfterItsRestart() throws Exception {
        RmProcess first = startEngine("killed");
        String key = key();
        first.stdin.write(MACHINE + " " + key + " hang\n");
        first.stdin.flush();
        Await.condition("the saga reaches its hanging balance step", COMMAND_TIMEOUT,
            () -> ledgerOrEmpty(key).contains("balance-hanging"));
        String xid = instanceId(key);
        assertEquals(GlobalStatus.Begin, Seata.status(xid), "the saga is under way at the TC");
        first.kill();

        RmProcess restarted = startEngine("restarted");
        try {
            Await.condition("the TC times the saga out and the restarted engine compensates it", END_TIMEOUT,
                () -> {
                    try {
                        return Seata.status(xid) == GlobalStatus.Finished;
                    } catch (Exception e) {
                        return false;
                    }
                });
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; engine log " + restarted.log + ":\n"
                + AtInterchangeTest.tail(restarted.log, 60), e);
        }
        List<String> calls = ledger(key);
        assertTrue(calls.contains("compensate-inventory"), "the inventory step was compensated: " + calls);
        assertTrue(!calls.contains("reduce-balance"), "the hanging step never completed: " + calls);
        assertEquals("SU", compensationStatus(key), "the instance's compensation succeeded");
        restarted.stop();
    }

    // ------------------------------------------------------------------------- engine

    private RmProcess startEngine(String scenario) throws IOException {
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        List<String> cmd = List.of(java.toString(), "-Djava.net.preferIPv4Stack=true",
            "-cp", System.getProperty("java.class.path"), SagaEngineProcess.class.getName(), tc.host(),
            String.valueOf(tc.port()), db.jdbcUrl(), db.user(), db.password(), String.valueOf(TIMEOUT_MS));
        Path log = logDir.resolve(SagaEngineTest.class.getSimpleName() + "-" + scenario + ".log");
        Files.deleteIfExists(log);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        RmProcess engine = new RmProcess("saga-engine", pb.start(), log);
        started.add(engine);
        Map<String, Object> ready = engine.read(READY_TIMEOUT);
        assertEquals(Boolean.TRUE, ready.get("ready"), "engine ready line: " + ready);
        return engine;
    }

    private static Map<String, Object> run(RmProcess engine, String key, String mode) throws IOException {
        engine.stdin.write(MACHINE + " " + key + " " + mode + "\n");
        engine.stdin.flush();
        Map<String, Object> answer = engine.read(COMMAND_TIMEOUT);
        assertTrue(answer.containsKey("xid"), "engine answer: " + answer + "; log " + engine.log + ":\n"
            + AtInterchangeTest.tail(engine.log, 60));
        return answer;
    }

    private static String key() {
        return "ferrata-" + UUID.randomUUID().toString().substring(0, 18);
    }

    // ------------------------------------------------------------------------- database

    /** Seata's Saga tables (script/client/saga/db/mysql.sql) and the actions' ledger, fresh. */
    private static void createTables() throws SQLException {
        try (Connection c = db.connect(); Statement st = c.createStatement()) {
            for (String table : List.of("seata_state_inst", "seata_state_machine_inst", "seata_state_machine_def",
                SagaEngineProcess.LEDGER)) {
                st.execute("DROP TABLE IF EXISTS " + table);
            }
            st.execute("CREATE TABLE seata_state_machine_def (id VARCHAR(32) NOT NULL, name VARCHAR(128) NOT NULL,"
                + " tenant_id VARCHAR(32) NOT NULL, app_name VARCHAR(32) NOT NULL, type VARCHAR(20),"
                + " comment_ VARCHAR(255), ver VARCHAR(16) NOT NULL, gmt_create DATETIME(3) NOT NULL,"
                + " status VARCHAR(2) NOT NULL, content TEXT, recover_strategy VARCHAR(16), PRIMARY KEY (id))");
            st.execute("CREATE TABLE seata_state_machine_inst (id VARCHAR(128) NOT NULL,"
                + " machine_id VARCHAR(32) NOT NULL, tenant_id VARCHAR(32) NOT NULL, parent_id VARCHAR(128),"
                + " gmt_started DATETIME(3) NOT NULL, business_key VARCHAR(48), start_params TEXT,"
                + " gmt_end DATETIME(3), excep BLOB, end_params TEXT, status VARCHAR(2),"
                + " compensation_status VARCHAR(2), is_running TINYINT(1), gmt_updated DATETIME(3) NOT NULL,"
                + " PRIMARY KEY (id), UNIQUE KEY unikey_buz_tenant (business_key, tenant_id))");
            st.execute("CREATE TABLE seata_state_inst (id VARCHAR(48) NOT NULL, machine_inst_id VARCHAR(128) NOT NULL,"
                + " name VARCHAR(128) NOT NULL, type VARCHAR(20), service_name VARCHAR(128),"
                + " service_method VARCHAR(128), service_type VARCHAR(16), business_key VARCHAR(48),"
                + " state_id_compensated_for VARCHAR(50), state_id_retried_for VARCHAR(50),"
                + " gmt_started DATETIME(3) NOT NULL, is_for_update TINYINT(1), input_params TEXT,"
                + " output_params TEXT, status VARCHAR(2) NOT NULL, excep BLOB, gmt_updated DATETIME(3),"
                + " gmt_end DATETIME(3), PRIMARY KEY (id, machine_inst_id))");
            st.execute("CREATE TABLE " + SagaEngineProcess.LEDGER + " (seq BIGINT AUTO_INCREMENT PRIMARY KEY,"
                + " business_key VARCHAR(64) NOT NULL, action VARCHAR(64) NOT NULL)");
        }
    }

    /** What the actions did for {@code key}, in order. */
    private static List<String> ledger(String key) throws SQLException {
        List<String> calls = new ArrayList<>();
        try (Connection c = db.connect(); PreparedStatement st = c.prepareStatement(
            "SELECT action FROM " + SagaEngineProcess.LEDGER + " WHERE business_key = ? ORDER BY seq")) {
            st.setString(1, key);
            try (ResultSet rs = st.executeQuery()) {
                while (rs.next()) {
                    calls.add(rs.getString(1));
                }
            }
        }
        return calls;
    }

    private static List<String> ledgerOrEmpty(String key) {
        try {
            return ledger(key);
        } catch (SQLException e) {
            return List.of();
        }
    }

    private static String instanceColumn(String key, String column) throws SQLException {
        try (Connection c = db.connect(); PreparedStatement st = c.prepareStatement(
            "SELECT " + column + " FROM seata_state_machine_inst WHERE business_key = ?")) {
            st.setString(1, key);
            try (ResultSet rs = st.executeQuery()) {
                assertTrue(rs.next(), "a machine instance for " + key);
                return rs.getString(1);
            }
        }
    }

    /** The machine instance's id: the saga's XID. */
    private static String instanceId(String key) throws SQLException {
        return instanceColumn(key, "id");
    }

    private static String compensationStatus(String key) throws SQLException {
        return instanceColumn(key, "compensation_status");
    }
}
