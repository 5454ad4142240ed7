package dev.ferrata.interop.seata2;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import dev.ferrata.interop.seata2.AtInterchangeTest.Db;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.rm.tcc.api.BusinessActionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * One global transaction with Rust Saga steps calling a Java TCC service: {@code
 * ferrata-interop-peer saga} runs a ferrata-saga machine ({@code interop/rust-peer/machines/
 * mixed_tcc.json}, its tables {@code peer_saga_*} on MariaDB) whose first step POSTs (reqwest +
 * XidPropagation, {@code TX_XID}) to a JDK HTTP endpoint here; the endpoint binds the XID and runs
 * a Java TCC participant's try, which registers a TCC branch in the saga's transaction. The
 * second step is Rust: it succeeds, or fails and is compensated (a Rust refund).
 *
 * <ul>
 *   <li>commit: the saga succeeds (SU, Rust calls [charge]), the engine reports Committed, and
 *       the TC confirms the Java TCC branch exactly once (rollback never), then ends the
 *       transaction;</li>
 *   <li>compensate: the charge fails, the engine refunds it (calls [charge-failed, refund]) and
 *       reports Rollbacked, and the TC cancels the Java TCC branch exactly once (commit never),
 *       then ends the transaction.</li>
 * </ul>
 *
 * <p>That the TCC branch follows the saga's outcome is a Ferrata extension (seata-server's TC
 * would drop it unfinished), so the class is skipped with the reference TC. Needs {@code
 * FERRATA_BIN} = ferrata-server (started with {@code --config}: 1 s retry backoff), {@code
 * FERRATA_PEER_BIN} and {@code FERRATA_MYSQL_URL}; fails (never skips) without them. Peer logs in
 * {@code target/peer-logs/SagaTccMixedTest-*}. Everything on 127.0.0.1.
 */
class SagaTccMixedTest {

    static final String JAVA_ACTION = "interopSagaJavaStock";
    static final Duration PHASE_TWO_TIMEOUT = Duration.ofSeconds(15);
    /** How long to keep watching after the expected phase two, to catch a duplicate or the opposite one. */
    static final Duration SETTLE = Duration.ofMillis(1500);
    static final Duration END_TIMEOUT = Duration.ofSeconds(15);
    /** The saga's transaction timeout (far beyond a run): the engine's report ends it, not the TC's timer. */
    static final int SAGA_TIMEOUT_SECS = 60;
    static final Duration RUN_TIMEOUT = Duration.ofSeconds(SAGA_TIMEOUT_SECS + 30);

    private static final CallRecorder recorder = new CallRecorder();
    /** Branch ids registered by the endpoint's try, by the XID it bound. */
    private static final Map<String, List<Long>> javaTries = new ConcurrentHashMap<>();
    private static final AtomicInteger runs = new AtomicInteger();

    private static TcServer tc;
    private static Db db;
    private static Path peerBin;
    private static Path logDir;
    private static Seata.RecordingTccAction javaAction;
    private static HttpServer javaEndpoint;
    private static ExecutorService javaEndpointThreads;
    private static String javaEndpointUrl;

    @BeforeAll
    static void startTcEndpointAndClients() throws Exception {
        Assumptions.assumeFalse(TcServer.referenceTcConfigured(),
            "a saga's TCC participant following the saga's outcome is a Ferrata extension");
        peerBin = AtInterchangeTest.MixedLanguageTestSupport.peerBinary();
        logDir = AtInterchangeTest.peerLogDir();
        db = Db.fromEnv("mariadb", "FERRATA_MYSQL_URL");
        tc = TcServer.managedWithConfig(SagaTccMixedTest.class, "saga-tcc",
            "[coordinator]\nretry_backoff_initial = \"200ms\"\nretry_backoff_max = \"1s\"\n");
        Seata.initTm(tc);
        javaAction = new Seata.RecordingTccAction(recorder);
        Seata.registerTccResource(JAVA_ACTION, javaAction);
        Seata.initRm();
        startJavaEndpoint();
    }

    @AfterAll
    static void stopAll() {
        if (javaEndpoint != null) {
            javaEndpoint.stop(0);
            javaEndpointThreads.shutdownNow();
        }
        if (tc != null) {
            tc.close();
        }
    }

    @BeforeEach
    @AfterEach
    void cleanContext() {
        Seata.clearContext();
    }

    @Test
    void aSucceedingSagaConfirmsTheJavaTccBranchOnce() throws Exception {
        String key = key();
        SagaRun run = runSaga("commit", key);
        assertEquals(0, run.exitCode(), "peer exit code; " + run);
        assertEquals("SU", run.report().get("status"), "saga status; " + run);
        assertNull(run.report().get("compensationStatus"), "nothing compensated; " + run);
        assertEquals(List.of("charge"), run.report().get("calls"), "Rust service calls; " + run);
        String xid = checkJavaTry(run, key);
        long branchId = javaTries.get(xid).get(0);

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a confirm) of the Java TCC branch of "
            + xid + ", got " + calls + "; TC log:\n" + tc.tail(40));
        Call call = calls.get(0);
        assertEquals(branchId, call.branchId(), "BranchCommitRequest branch id");
        assertEquals(JAVA_ACTION, call.resourceId(), "BranchCommitRequest resource id");
        assertEquals(key, call.context().get("probe"), "actionContext in phase two: " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.ROLLBACK).isEmpty(), "cancel must never run on commit");
        awaitEnded(xid);
    }

    @Test
    void aCompensatedSagaCancelsTheJavaTccBranchOnce() throws Exception {
        String key = key();
        SagaRun run = runSaga("compensate", key);
        assertEquals(0, run.exitCode(), "peer exit code; " + run);
        assertEquals("FA", run.report().get("status"), "saga status; " + run);
        assertEquals("SU", run.report().get("compensationStatus"), "compensation status; " + run);
        assertEquals(List.of("charge-failed", "refund"), run.report().get("calls"),
            "the failed charge and then its refund; " + run);
        String xid = checkJavaTry(run, key);
        long branchId = javaTries.get(xid).get(0);

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.ROLLBACK, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a cancel) of the Java TCC branch of "
            + xid + ", got " + calls + "; TC log:\n" + tc.tail(40));
        Call call = calls.get(0);
        assertEquals(branchId, call.branchId(), "BranchRollbackRequest branch id");
        assertEquals(JAVA_ACTION, call.resourceId(), "BranchRollbackRequest resource id");
        assertEquals(key, call.context().get("probe"), "actionContext in phase two: " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.COMMIT).isEmpty(), "confirm must never run on compensation");
        awaitEnded(xid);
    }

    /**
     * The saga's XID names this TC, the Java try ran exactly once under it, and the peer's
     * reserve step got the endpoint's answer. Returns the XID.
     */
    private static String checkJavaTry(SagaRun run, String key) {
        Map<String, Object> report = run.report();
        assertEquals(key, report.get("businessKey"), run.toString());
        String xid = (String) report.get("xid");
        assertNotNull(xid, "the peer reported no xid; " + run);
        assertEquals(tc.port(), Xid.parse(xid).port(), "the saga's XID names the TC its engine began it on");
        List<Long> tries = javaTries.get(xid);
        assertNotNull(tries, "the Java endpoint never received the saga's XID " + xid + " as TX_XID (tries seen: "
            + javaTries + "); " + run);
        assertEquals(1, tries.size(), "the Java try ran once under the saga's XID: " + tries);
        @SuppressWarnings("unchecked")
        Map<String, Object> answer = (Map<String, Object>) report.get("javaAnswer");
        assertNotNull(answer, "the reserve step kept the Java answer; " + run);
        assertEquals(xid, answer.get("xid"), "XID the Java endpoint bound");
        assertEquals(tries.get(0), answer.get("branch_id"), "branch id the Java try registered");
        return xid;
    }

    /** The TC ends the transaction once the engine reported and the TCC branch answered. */
    private static void awaitEnded(String xid) {
        Await.until("the TC ends saga " + xid, END_TIMEOUT, Duration.ofMillis(100), () -> {
            GlobalStatus status = Seata.status(xid);
            return status == GlobalStatus.Finished ? status : null;
        });
    }

    private static String key() {
        return "saga-tcc-" + UUID.randomUUID().toString().substring(0, 18);
    }

    // ---------------------------------------------------- Java participant behind HTTP

    private static void startJavaEndpoint() throws IOException {
        javaEndpoint = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        javaEndpoint.createContext("/try", SagaTccMixedTest::javaTry);
        javaEndpointThreads = Executors.newFixedThreadPool(2);
        javaEndpoint.setExecutor(javaEndpointThreads);
        javaEndpoint.start();
        javaEndpointUrl = "http://127.0.0.1:" + javaEndpoint.getAddress().getPort() + "/try";
    }

    /**
     * What Seata's HTTP integration does on the provider side (bind TX_XID for the request), then
     * the TCC try: BranchRegister as the TCC interceptor sends it (the body, the business key,
     * as {@code probe}) and the action's prepare. Answers {"xid","branch_id"}.
     */
    private static void javaTry(HttpExchange exchange) throws IOException {
        try {
            String probe = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            String xid = exchange.getRequestHeaders().getFirst(MixedLanguageTest.XID_HEADER);
            if (!"POST".equals(exchange.getRequestMethod())) {
                respond(exchange, 405, "{\"error\":\"POST only\"}");
                return;
            }
            if (xid == null || xid.isBlank()) {
                respond(exchange, 400, "{\"error\":\"no TX_XID header\"}");
                return;
            }
            RootContext.bind(xid.trim());
            try {
                String bound = RootContext.getXID();
                long branchId = Seata.registerTccBranch(JAVA_ACTION, bound, probe);
                BusinessActionContext ctx = new BusinessActionContext();
                ctx.setXid(bound);
                ctx.setBranchId(branchId);
                ctx.setActionName(JAVA_ACTION);
                ctx.setActionContext(Map.of("probe", probe));
                if (!javaAction.prepare(ctx)) {
                    respond(exchange, 500, "{\"error\":\"prepare returned false\"}");
                    return;
                }
                javaTries.computeIfAbsent(bound, x -> new CopyOnWriteArrayList<>()).add(branchId);
                respond(exchange, 200, "{\"xid\":\"" + bound + "\",\"branch_id\":" + branchId + "}");
            } catch (Exception e) {
                System.out.println("[saga-tcc-test] Java try under " + xid + " failed: " + e);
                respond(exchange, 500, "{\"error\":\"" + e.toString().replace("\\", "\\\\").replace("\"", "'") + "\"}");
            } finally {
                RootContext.unbind();
            }
        } finally {
            exchange.close();
        }
    }

    private static void respond(HttpExchange exchange, int status, String json) throws IOException {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, body.length);
        exchange.getResponseBody().write(body);
    }

    // ------------------------------------------------------------------ Rust saga process

    /** One run of {@code ferrata-interop-peer saga}: exit code, its JSON report, its logs. */
    record SagaRun(int exitCode, Map<String, Object> report, String stdout, Path stderrLog) {
        @Override
        public String toString() {
            return "saga peer exit " + exitCode + ", stdout: " + stdout + "; stderr " + stderrLog + ":\n"
                + AtInterchangeTest.tail(stderrLog, 30);
        }
    }

    private static SagaRun runSaga(String outcome, String key) throws Exception {
        String base = SagaTccMixedTest.class.getSimpleName() + "-" + runs.incrementAndGet() + "-" + outcome;
        Path out = logDir.resolve(base + ".out");
        Path err = logDir.resolve(base + ".log");
        List<String> cmd = List.of(peerBin.toString(), "saga", "--tc", tc.address(), "--db-url", db.url(),
            "--java-url", javaEndpointUrl, "--outcome", outcome, "--business-key", key,
            "--timeout-secs", String.valueOf(SAGA_TIMEOUT_SECS));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectOutput(out.toFile());
        pb.redirectError(err.toFile());
        pb.redirectInput(ProcessBuilder.Redirect.from(Paths.get("/dev/null").toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        Process p = pb.start();
        if (!p.waitFor(RUN_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
            fail("the saga peer did not finish within " + RUN_TIMEOUT.toSeconds() + " s; stderr " + err + ":\n"
                + AtInterchangeTest.tail(err, 30));
        }
        String stdout = Files.readString(out, StandardCharsets.UTF_8).trim();
        Map<String, Object> report = Map.of();
        if (!stdout.isEmpty()) {
            String[] lines = stdout.split("\n");
            report = MixedLanguageTest.Json.object(lines[lines.length - 1]);
        }
        SagaRun run = new SagaRun(p.exitValue(), report, stdout, err);
        System.out.println("[saga-tcc-test] " + run.report());
        if (report.isEmpty()) {
            fail("the saga peer printed no report; " + run);
        }
        return run;
    }
}
