package dev.ferrata.interop.seata2;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.FreePort;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.rm.tcc.api.BusinessActionContext;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Scenario 5: two languages in one global transaction, through one TC, with the XID carried as
 * the {@code TX_XID} HTTP header (semantics §8.2).
 *
 * <ul>
 *   <li>Java TM → Rust participant: this class begins and ends the transaction with the Java TM
 *       and calls {@code POST /try} of {@code ferrata-interop-peer participant} (Rust SDK, axum +
 *       XidLayer, {@code tcc_try} of action {@code rust-tcc-action}); the TC's confirm or cancel
 *       must reach the Rust participant exactly once ({@code GET /calls}).</li>
 *   <li>Rust TM → Java participant: {@code ferrata-interop-peer tm} begins a transaction with the
 *       Rust SDK and POSTs (reqwest + XidPropagation) to a JDK HTTP endpoint here, which binds
 *       the header's XID and runs the Java TCC participant's try (branch registered as in
 *       {@link TccParticipantTest}); the Java participant's commit or rollback must run exactly
 *       once, and the Rust TM must report Committed / Rollbacked.</li>
 * </ul>
 *
 * Needs {@code FERRATA_PEER_BIN=/path/to/ferrata-interop-peer} ({@code cargo build -p
 * ferrata-interop-peer}); fails (never skips) without it. Peer output:
 * {@code target/peer-logs/}. Everything listens on 127.0.0.1.
 */
class MixedLanguageTest {

    static final String ENV_PEER_BIN = "FERRATA_PEER_BIN";
    /** The XID header, as Seata's HTTP integration and the Rust SDK spell it. */
    static final String XID_HEADER = "TX_XID";
    static final String JAVA_ACTION = "interopMixedJavaAction";
    /** The action (resource id) of the Rust participant. */
    static final String RUST_ACTION = "rust-tcc-action";
    static final Duration PHASE_TWO_TIMEOUT = Duration.ofSeconds(10);
    static final Duration SETTLE = Duration.ofMillis(1500);
    static final Duration HTTP_TIMEOUT = Duration.ofSeconds(15);
    static final Duration PEER_START_TIMEOUT = Duration.ofSeconds(30);
    static final Duration PEER_STOP_TIMEOUT = Duration.ofSeconds(10);
    static final Duration TM_RUN_TIMEOUT = Duration.ofSeconds(90);

    private static final CallRecorder recorder = new CallRecorder();
    /** Branch id registered by the Java endpoint's try, by the XID it received. */
    private static final Map<String, Long> javaTries = new ConcurrentHashMap<>();
    private static final AtomicInteger tmRuns = new AtomicInteger();
    private static final HttpClient http = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5))
        .proxy(HttpClient.Builder.NO_PROXY)
        .build();

    private static TcServer tc;
    private static Path peerBin;
    private static Path logDir;
    private static Seata.RecordingTccAction javaAction;
    private static Process rustParticipant;
    private static Path rustParticipantLog;
    private static String rustParticipantUrl;
    private static HttpServer javaEndpoint;
    private static ExecutorService javaEndpointThreads;
    private static String javaEndpointUrl;
    private static Thread reaper;

    @BeforeAll
    static void startTcPeersAndClients() throws Exception {
        peerBin = peerBinary();
        logDir = moduleDir().resolve("target").resolve("peer-logs");
        Files.createDirectories(logDir);
        tc = TcServer.forTestClass(MixedLanguageTest.class);
        Seata.initTm(tc);
        javaAction = new Seata.RecordingTccAction(recorder);
        Seata.registerTccResource(JAVA_ACTION, javaAction);
        Seata.initRm();
        startJavaEndpoint();
        startRustParticipant();
    }

    @AfterAll
    static void stopAll() {
        if (javaEndpoint != null) {
            javaEndpoint.stop(0);
            javaEndpointThreads.shutdownNow();
        }
        try {
            stopRustParticipant();
        } finally {
            if (tc != null) {
                tc.close();
            }
        }
    }

    @BeforeEach
    @AfterEach
    void cleanContext() {
        Seata.clearContext();
    }

    // ---------------------------------------------------------- Java TM -> Rust participant

    @Test
    void javaTmCommitConfirmsRustParticipantOnce() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("mixed-java-tm-commit"));
        String xid = tx.getXid();
        String probe = UUID.randomUUID().toString();
        long branchId = rustTry(xid, probe);
        assertEquals(GlobalStatus.Begin, Seata.status(xid), "the Rust branch joined a live transaction");

        tx.commit();
        assertEquals(GlobalStatus.Committed, tx.getLocalStatus(),
            "TCC branches are committed synchronously: GlobalCommitResponse must say Committed");

        List<Map<String, Object>> calls = awaitRustCalls(xid, "commit");
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a confirm) in the Rust participant for "
            + xid + ", got " + calls);
        Map<String, Object> call = calls.get(0);
        assertEquals("commit", call.get("phase"));
        assertEquals(xid, call.get("xid"));
        assertEquals(RUST_ACTION, call.get("action"), "action (resource id) of the Rust branch");
        assertEquals(branchId, call.get("branch_id"), "BranchCommitRequest branch id");
        assertEquals(probe, call.get("probe"),
            "the action context the Rust try registered must reach its confirm: " + call);
    }

    @Test
    void javaTmRollbackCancelsRustParticipantOnce() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("mixed-java-tm-rollback"));
        String xid = tx.getXid();
        String probe = UUID.randomUUID().toString();
        long branchId = rustTry(xid, probe);

        tx.rollback();
        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(), "GlobalRollbackResponse status");

        List<Map<String, Object>> calls = awaitRustCalls(xid, "rollback");
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a cancel) in the Rust participant for "
            + xid + ", got " + calls);
        Map<String, Object> call = calls.get(0);
        assertEquals("rollback", call.get("phase"));
        assertEquals(xid, call.get("xid"));
        assertEquals(RUST_ACTION, call.get("action"), "action (resource id) of the Rust branch");
        assertEquals(branchId, call.get("branch_id"), "BranchRollbackRequest branch id");
        assertEquals(probe, call.get("probe"), "action context in the Rust cancel: " + call);
    }

    // ---------------------------------------------------------- Rust TM -> Java participant

    @Test
    void rustTmCommitCommitsJavaParticipantOnce() throws Exception {
        String probe = UUID.randomUUID().toString();
        TmRun run = runRustTm("commit", probe);
        assertEquals(0, run.exitCode(), "Rust TM exit code; " + run);
        assertEquals("Committed", run.report().get("status"), "Rust TM status; " + run);
        String xid = checkRustTmReport(run, "commit", Set.of("Committed", "Finished"));
        long branchId = javaTries.get(xid);

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a commit) in the Java participant for "
            + xid + ", got " + calls);
        Call call = calls.get(0);
        assertEquals(branchId, call.branchId(), "BranchCommitRequest branch id");
        assertEquals(JAVA_ACTION, call.resourceId(), "BranchCommitRequest resource id");
        assertEquals(probe, call.context().get("probe"), "actionContext in phase two: " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.ROLLBACK).isEmpty(), "rollback must never run on commit");
    }

    @Test
    void rustTmRollbackRollsBackJavaParticipantOnce() throws Exception {
        String probe = UUID.randomUUID().toString();
        TmRun run = runRustTm("rollback", probe);
        assertEquals(0, run.exitCode(), "Rust TM exit code; " + run);
        assertEquals("Rollbacked", run.report().get("status"), "Rust TM status; " + run);
        String xid = checkRustTmReport(run, "rollback", Set.of("Rollbacked", "Finished"));
        long branchId = javaTries.get(xid);

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.ROLLBACK, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a rollback) in the Java participant for "
            + xid + ", got " + calls);
        Call call = calls.get(0);
        assertEquals(branchId, call.branchId(), "BranchRollbackRequest branch id");
        assertEquals(JAVA_ACTION, call.resourceId(), "BranchRollbackRequest resource id");
        assertEquals(probe, call.context().get("probe"), "actionContext in phase two: " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.COMMIT).isEmpty(), "commit must never run on rollback");
    }

    /**
     * What every Rust TM report must say: the outcome asked for, an XID of this TC that the Java
     * endpoint received as TX_XID, the endpoint's answer, and a TC status afterwards that shows
     * nothing left pending. Returns the XID.
     */
    private static String checkRustTmReport(TmRun run, String outcome, Set<String> finalTcStatuses) {
        Map<String, Object> report = run.report();
        assertEquals(outcome, report.get("outcome"), run.toString());
        assertEquals(null, report.get("error"), "Rust TM error; " + run);
        String xid = (String) report.get("xid");
        assertNotNull(xid, "Rust TM reported no xid; " + run);
        assertEquals(tc.port(), Xid.parse(xid).port(), "the XID names the TC the Rust TM began it on");
        assertEquals(200L, report.get("participant_status"), "Java endpoint answer; " + run);
        Long branchId = javaTries.get(xid);
        assertNotNull(branchId, "the Java endpoint never received TX_XID " + xid + " (tries seen: " + javaTries
            + "); " + run);
        Map<String, Object> answer = Json.object((String) report.get("participant_response"));
        assertEquals(xid, answer.get("xid"), "XID the Java endpoint bound");
        assertEquals(branchId, answer.get("branch_id"), "branch id the Java endpoint registered");
        assertTrue(finalTcStatuses.contains(String.valueOf(report.get("tc_status"))),
            "TC status after the Rust TM ended " + xid + " must be one of " + finalTcStatuses + "; " + run);
        return xid;
    }

    // ------------------------------------------------------------ Rust participant process

    private static Path peerBinary() {
        String bin = System.getenv(ENV_PEER_BIN);
        if (bin == null || bin.isBlank()) {
            throw new IllegalStateException(MixedLanguageTest.class.getSimpleName() + " needs " + ENV_PEER_BIN
                + "=/path/to/ferrata-interop-peer (build it with `cargo build -p ferrata-interop-peer`; the binary"
                + " is target/debug/ferrata-interop-peer at the repository root)");
        }
        Path path = Paths.get(bin.trim()).toAbsolutePath();
        if (!Files.isExecutable(path)) {
            throw new IllegalStateException(ENV_PEER_BIN + " is not an executable file: " + path);
        }
        return path;
    }

    private static void startRustParticipant() throws IOException {
        int port = FreePort.find();
        rustParticipantUrl = "http://127.0.0.1:" + port;
        rustParticipantLog = logDir.resolve(MixedLanguageTest.class.getSimpleName() + "-participant.log");
        Files.deleteIfExists(rustParticipantLog);
        List<String> cmd = List.of(peerBin.toString(), "participant", "--tc", tc.address(),
            "--listen", "127.0.0.1:" + port);
        System.out.println("[mixed-test] starting Rust participant: " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(rustParticipantLog.toFile()));
        pb.redirectInput(ProcessBuilder.Redirect.from(Paths.get("/dev/null").toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        pb.environment().putIfAbsent("RUST_BACKTRACE", "1");
        rustParticipant = pb.start();
        reaper = new Thread(() -> {
            Process p = rustParticipant;
            if (p != null && p.isAlive()) {
                p.destroyForcibly();
            }
        }, "rust-participant-reaper");
        Runtime.getRuntime().addShutdownHook(reaper);

        // It connects to the TC and registers its resource before binding the port, so an
        // answer on /calls means it is ready for branches.
        long deadline = System.nanoTime() + PEER_START_TIMEOUT.toNanos();
        Exception last = null;
        while (System.nanoTime() - deadline < 0) {
            assertRustParticipantAlive();
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(rustParticipantUrl + "/calls"))
                    .timeout(Duration.ofSeconds(2)).GET().build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    System.out.println("[mixed-test] Rust participant ready on " + rustParticipantUrl);
                    return;
                }
                last = new IllegalStateException("GET /calls answered " + r.statusCode() + ": " + r.body());
            } catch (IOException e) {
                last = e;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while waiting for the Rust participant", e);
            }
            Await.sleep(Duration.ofMillis(200));
        }
        throw new IllegalStateException("Rust participant did not answer on " + rustParticipantUrl + " within "
            + PEER_START_TIMEOUT.toSeconds() + " s; last error " + last + "; log " + rustParticipantLog + ":\n"
            + tail(rustParticipantLog, 40));
    }

    private static void stopRustParticipant() {
        Process p = rustParticipant;
        if (p == null) {
            return;
        }
        boolean diedEarly = !p.isAlive();
        p.destroy(); // SIGTERM: graceful shutdown
        try {
            if (!p.waitFor(PEER_STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
                System.out.println("[mixed-test] Rust participant still running " + PEER_STOP_TIMEOUT.toSeconds()
                    + " s after SIGTERM, killing it");
                p.destroyForcibly();
                p.waitFor(PEER_STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(reaper);
        } catch (IllegalStateException ignored) {
            // JVM already shutting down
        }
        if (diedEarly) {
            throw new AssertionError("the Rust participant had exited on its own (code " + p.exitValue()
                + "); log " + rustParticipantLog + ":\n" + tail(rustParticipantLog, 40));
        }
    }

    private static void assertRustParticipantAlive() {
        if (!rustParticipant.isAlive()) {
            throw new AssertionError("the Rust participant exited with code " + rustParticipant.exitValue()
                + "; log " + rustParticipantLog + ":\n" + tail(rustParticipantLog, 40));
        }
    }

    /** POST /try with TX_XID; returns the branch id the Rust participant registered. */
    private static long rustTry(String xid, String probe) throws Exception {
        assertRustParticipantAlive();
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(rustParticipantUrl + "/try"))
            .timeout(HTTP_TIMEOUT)
            .header(XID_HEADER, xid)
            .POST(HttpRequest.BodyPublishers.ofString(probe, StandardCharsets.UTF_8))
            .build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "POST /try of the Rust participant answered: " + r.body());
        Map<String, Object> answer = Json.object(r.body());
        assertEquals(xid, answer.get("xid"), "the Rust participant must run the try under the TX_XID it was sent");
        Object branchId = answer.get("branch_id");
        assertTrue(branchId instanceof Long && (Long) branchId > 0, "branch id from the Rust try: " + r.body());
        return (Long) branchId;
    }

    /** The phase-two calls the Rust participant recorded, in arrival order. */
    private static List<Map<String, Object>> rustCalls() throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(rustParticipantUrl + "/calls"))
            .timeout(HTTP_TIMEOUT).GET().build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "GET /calls answered: " + r.body());
        List<Map<String, Object>> calls = new ArrayList<>();
        for (Object call : Json.array(r.body())) {
            @SuppressWarnings("unchecked")
            Map<String, Object> map = (Map<String, Object>) call;
            calls.add(map);
        }
        return calls;
    }

    private static List<Map<String, Object>> rustCallsFor(String xid) throws Exception {
        return rustCalls().stream().filter(c -> xid.equals(c.get("xid"))).collect(Collectors.toList());
    }

    /**
     * Polls (bounded) until the Rust participant recorded a {@code phase} call for {@code xid},
     * keeps watching for {@link #SETTLE} to catch duplicate or contradictory deliveries, and
     * returns every call recorded for that xid.
     */
    private static List<Map<String, Object>> awaitRustCalls(String xid, String phase) throws Exception {
        long deadline = System.nanoTime() + PHASE_TWO_TIMEOUT.toNanos();
        while (rustCallsFor(xid).stream().noneMatch(c -> phase.equals(c.get("phase")))) {
            assertRustParticipantAlive();
            if (System.nanoTime() - deadline >= 0) {
                fail("no " + phase + " call for " + xid + " in the Rust participant within "
                    + PHASE_TWO_TIMEOUT.toSeconds() + " s; calls: " + rustCalls() + "; log " + rustParticipantLog
                    + ":\n" + tail(rustParticipantLog, 40));
            }
            Await.sleep(Duration.ofMillis(100));
        }
        Await.sleep(SETTLE);
        return rustCallsFor(xid);
    }

    // ---------------------------------------------------- Java participant behind HTTP

    private static void startJavaEndpoint() throws IOException {
        javaEndpoint = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        javaEndpoint.createContext("/try", MixedLanguageTest::javaTry);
        javaEndpointThreads = Executors.newFixedThreadPool(2);
        javaEndpoint.setExecutor(javaEndpointThreads);
        javaEndpoint.start();
        javaEndpointUrl = "http://127.0.0.1:" + javaEndpoint.getAddress().getPort() + "/try";
        System.out.println("[mixed-test] Java participant endpoint on " + javaEndpointUrl);
    }

    /**
     * What Seata's HTTP integration does on the provider side: bind a non-blank TX_XID for the
     * request and unbind it afterwards. Inside, the TCC try: BranchRegister (as the TCC
     * interceptor sends it, with the request body as {@code probe}) and the action's prepare.
     * Answers {"xid","branch_id"}.
     */
    private static void javaTry(HttpExchange exchange) throws IOException {
        try {
            String probe = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            String xid = exchange.getRequestHeaders().getFirst(XID_HEADER);
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
                javaTries.put(bound, branchId);
                System.out.println("[mixed-test] Java try under " + bound + ": branch " + branchId);
                respond(exchange, 200, "{\"xid\":\"" + bound + "\",\"branch_id\":" + branchId + "}");
            } catch (Exception e) {
                System.out.println("[mixed-test] Java try under " + xid + " failed: " + e);
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

    // ------------------------------------------------------------------ Rust TM process

    /** One run of {@code ferrata-interop-peer tm}: exit code, its JSON report, its logs. */
    record TmRun(int exitCode, Map<String, Object> report, String stdout, Path stderrLog) {
        @Override
        public String toString() {
            return "Rust TM exit " + exitCode + ", stdout: " + stdout + "; stderr " + stderrLog + ":\n"
                + tail(stderrLog, 30);
        }
    }

    private static TmRun runRustTm(String outcome, String probe) throws Exception {
        int n = tmRuns.incrementAndGet();
        String base = MixedLanguageTest.class.getSimpleName() + "-tm-" + n + "-" + outcome;
        Path out = logDir.resolve(base + ".out");
        Path err = logDir.resolve(base + ".log");
        List<String> cmd = List.of(peerBin.toString(), "tm", "--tc", tc.address(),
            "--participant-url", javaEndpointUrl, "--outcome", outcome, "--probe", probe,
            "--deadline-secs", String.valueOf(TM_RUN_TIMEOUT.toSeconds() - 10));
        System.out.println("[mixed-test] running Rust TM: " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectOutput(out.toFile());
        pb.redirectError(err.toFile());
        pb.redirectInput(ProcessBuilder.Redirect.from(Paths.get("/dev/null").toFile()));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        Process p = pb.start();
        if (!p.waitFor(TM_RUN_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            p.waitFor(PEER_STOP_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            fail("Rust TM did not finish within " + TM_RUN_TIMEOUT.toSeconds() + " s; stderr " + err + ":\n"
                + tail(err, 30));
        }
        String stdout = Files.readString(out, StandardCharsets.UTF_8).trim();
        Map<String, Object> report = Map.of();
        if (!stdout.isEmpty()) {
            String[] lines = stdout.split("\n");
            report = Json.object(lines[lines.length - 1]);
        }
        TmRun run = new TmRun(p.exitValue(), report, stdout, err);
        System.out.println("[mixed-test] " + run.report());
        if (report.isEmpty()) {
            fail("Rust TM printed no report; " + run);
        }
        return run;
    }

    // -------------------------------------------------------------------------- helpers

    private static Path moduleDir() {
        String dir = System.getProperty("interop.module.dir");
        return (dir == null ? Paths.get("") : Paths.get(dir)).toAbsolutePath();
    }

    private static String tail(Path file, int lines) {
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

    /**
     * A minimal JSON reader for what the Rust peer prints (objects, arrays, strings, integers,
     * booleans, null); integers become Long. Throws IllegalArgumentException on anything else.
     */
    static final class Json {
        private final String text;
        private int pos;

        private Json(String text) {
            this.text = text;
        }

        static Map<String, Object> object(String text) {
            Object value = parse(text);
            if (!(value instanceof Map)) {
                throw new IllegalArgumentException("not a JSON object: " + text);
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> map = (Map<String, Object>) value;
            return map;
        }

        static List<Object> array(String text) {
            Object value = parse(text);
            if (!(value instanceof List)) {
                throw new IllegalArgumentException("not a JSON array: " + text);
            }
            @SuppressWarnings("unchecked")
            List<Object> list = (List<Object>) value;
            return list;
        }

        static Object parse(String text) {
            Json json = new Json(text);
            Object value = json.value();
            json.skipSpace();
            if (json.pos != text.length()) {
                throw json.error("trailing characters");
            }
            return value;
        }

        private Object value() {
            skipSpace();
            if (pos >= text.length()) {
                throw error("unexpected end");
            }
            char c = text.charAt(pos);
            if (c == '{') {
                pos++;
                Map<String, Object> map = new LinkedHashMap<>();
                skipSpace();
                if (peek('}')) {
                    return map;
                }
                do {
                    skipSpace();
                    String key = string();
                    skipSpace();
                    expect(':');
                    map.put(key, value());
                    skipSpace();
                } while (peek(','));
                expect('}');
                return map;
            }
            if (c == '[') {
                pos++;
                List<Object> list = new ArrayList<>();
                skipSpace();
                if (peek(']')) {
                    return list;
                }
                do {
                    list.add(value());
                    skipSpace();
                } while (peek(','));
                expect(']');
                return list;
            }
            if (c == '"') {
                return string();
            }
            if (text.startsWith("null", pos)) {
                pos += 4;
                return null;
            }
            if (text.startsWith("true", pos)) {
                pos += 4;
                return Boolean.TRUE;
            }
            if (text.startsWith("false", pos)) {
                pos += 5;
                return Boolean.FALSE;
            }
            int start = pos;
            if (c == '-') {
                pos++;
            }
            while (pos < text.length() && Character.isDigit(text.charAt(pos))) {
                pos++;
            }
            if (pos == start || (pos < text.length() && ".eE".indexOf(text.charAt(pos)) >= 0)) {
                throw error("unsupported value");
            }
            return Long.parseLong(text.substring(start, pos));
        }

        private String string() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (pos < text.length()) {
                char c = text.charAt(pos++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    break;
                }
                char e = text.charAt(pos++);
                switch (e) {
                    case '"', '\\', '/' -> sb.append(e);
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'u' -> {
                        if (pos + 4 > text.length()) {
                            throw error("short \\u escape");
                        }
                        sb.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                    }
                    default -> throw error("bad escape \\" + e);
                }
            }
            throw error("unterminated string");
        }

        private void skipSpace() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        private boolean peek(char c) {
            if (pos < text.length() && text.charAt(pos) == c) {
                pos++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON: " + what + " at " + pos + " in: " + text);
        }
    }
}
