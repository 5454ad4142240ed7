package dev.ferrata.interop.harness;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The Transaction Coordinator a test class talks to.
 *
 * <ul>
 *   <li>{@code FERRATA_BIN} set: a TC process is started for the test class with
 *       {@code <FERRATA_BIN> --listen 127.0.0.1:<free port> --data-dir <dir>}; its stdout and
 *       stderr go to {@code target/tc-logs/<TestClass>.log}; the data dir is
 *       {@code target/tc-data/<TestClass>-<port>}. {@code scripts/reference-tc} accepts the
 *       same arguments, so the suite can also run against the reference Java TC.</li>
 *   <li>otherwise {@code TC_ADDR=host:port}: an already running TC is used (it cannot be
 *       restarted, so {@link #managed} fails).</li>
 *   <li>neither: {@link #forTestClass} fails with an explanation.</li>
 * </ul>
 *
 * <p>{@link #managedWithConfig} also passes {@code --config <file>} with a TOML configuration
 * (for ferrata-server only: the reference TC takes no configuration file).
 *
 * <p>{@link #referenceNode} starts the reference Java TC ({@code scripts/reference-tc}, or
 * {@code REFERENCE_TC_BIN}) beside ferrata-server, for scenarios that hand over from one to the
 * other.
 *
 * Optional: {@code FERRATA_START_TIMEOUT_SECS} (default 20; at least 90 for the reference TC,
 * a JVM) bounds the wait for the port to accept connections; {@code FERRATA_STOP_TIMEOUT_SECS}
 * (default 15) bounds the wait after SIGTERM before the process is killed.
 */
public final class TcServer implements AutoCloseable {

    public static final String ENV_BIN = "FERRATA_BIN";
    public static final String ENV_ADDR = "TC_ADDR";
    /** The reference TC launcher; default: the checkout's scripts/reference-tc. */
    public static final String ENV_REFERENCE_BIN = "REFERENCE_TC_BIN";

    private final String name;
    private final Path binary;
    private final String host;
    private final int port;
    private final Path dataDir;
    private final Path logFile;
    private final Duration startTimeout;
    private final Duration stopTimeout;
    private Path configFile;
    /** Variables added to the process's environment. */
    private Map<String, String> environment = Map.of();
    private final List<String> events = new ArrayList<>();
    private Process process;
    private int starts;
    private boolean lastStopForced;
    /** Set by {@link #kill()}: the exit that follows was asked for. */
    private boolean killed;
    private Thread shutdownHook;

    private TcServer(String name, Path binary, String host, int port, Path dataDir, Path logFile) {
        this(name, binary, host, port, dataDir, logFile, 0);
    }

    private TcServer(String name, Path binary, String host, int port, Path dataDir, Path logFile,
                     long minStartSecs) {
        this.name = name;
        this.binary = binary;
        this.host = host;
        this.port = port;
        this.dataDir = dataDir;
        this.logFile = logFile;
        this.startTimeout = Duration.ofSeconds(Math.max(minStartSecs, envLong("FERRATA_START_TIMEOUT_SECS", 20)));
        this.stopTimeout = Duration.ofSeconds(envLong("FERRATA_STOP_TIMEOUT_SECS", 15));
    }

    /** The TC for a test class: a fresh managed process (FERRATA_BIN) or the external TC_ADDR. */
    public static TcServer forTestClass(Class<?> testClass) {
        String bin = env(ENV_BIN);
        if (bin != null) {
            return startManaged(testClass, bin, null);
        }
        String addr = env(ENV_ADDR);
        if (addr != null) {
            int colon = addr.lastIndexOf(':');
            if (colon <= 0) {
                throw new IllegalStateException(ENV_ADDR + " must be host:port, got '" + addr + "'");
            }
            TcServer tc = new TcServer(testClass.getSimpleName(), null, addr.substring(0, colon),
                Integer.parseInt(addr.substring(colon + 1)), null, null);
            tc.awaitPort("external TC " + addr, null);
            return tc;
        }
        throw new IllegalStateException("No TC configured for the interop tests: set " + ENV_BIN
            + "=/path/to/ferrata-server (a TC is started per test class; scripts/reference-tc also works)"
            + " or " + ENV_ADDR + "=host:port (use a running TC)");
    }

    /**
     * A TC process this harness owns, for scenarios that stop and restart it. Fails loudly
     * (never skips) when FERRATA_BIN is not set.
     */
    public static TcServer managed(Class<?> testClass, String scenario) {
        String bin = env(ENV_BIN);
        if (bin == null) {
            throw new IllegalStateException("Scenario '" + scenario + "' restarts the TC and therefore needs "
                + ENV_BIN + "=/path/to/ferrata-server (" + ENV_ADDR + " points at a TC this test cannot restart"
                + (env(ENV_ADDR) != null ? ": " + env(ENV_ADDR) : "") + ")");
        }
        return startManaged(testClass, bin, null);
    }

    /**
     * A TC process of this harness started with {@code --config <file>}, the file holding
     * {@code toml}. Needs FERRATA_BIN to be ferrata-server: fails loudly otherwise.
     */
    public static TcServer managedWithConfig(Class<?> testClass, String scenario, String toml) {
        String bin = env(ENV_BIN);
        if (bin == null || isReferenceTc(bin)) {
            throw new IllegalStateException("Scenario '" + scenario + "' configures the TC (--config) and therefore needs "
                + ENV_BIN + "=/path/to/ferrata-server" + (bin != null ? " (the reference TC takes no configuration: " + bin + ")" : ""));
        }
        return startManaged(testClass, bin, toml);
    }

    /**
     * One of several TC processes of a test class (a cluster), named {@code node}: its own port,
     * data dir and log ({@code <Class>-<node>.log}), started with {@code --config} holding
     * {@code toml}. Needs FERRATA_BIN to be ferrata-server: fails loudly otherwise.
     */
    public static TcServer managedNode(Class<?> testClass, String node, String toml) {
        String bin = env(ENV_BIN);
        if (bin == null || isReferenceTc(bin)) {
            throw new IllegalStateException("Node '" + node + "' of " + testClass.getSimpleName()
                + " registers in a registry through [registry] (--config) and therefore needs "
                + ENV_BIN + "=/path/to/ferrata-server" + (bin != null ? " (not the reference TC: " + bin + ")" : ""));
        }
        return startManaged(testClass.getSimpleName() + "-" + node, bin, toml);
    }

    /**
     * Like {@link #managedNode(Class, String, String)} on {@code port} (0: a free one), e.g. the
     * port another TC of the test listened on before.
     */
    public static TcServer managedNode(Class<?> testClass, String node, int port, String toml) {
        String bin = env(ENV_BIN);
        if (bin == null || isReferenceTc(bin)) {
            throw new IllegalStateException("Node '" + node + "' of " + testClass.getSimpleName()
                + " is configured with --config and therefore needs " + ENV_BIN + "=/path/to/ferrata-server"
                + (bin != null ? " (not the reference TC: " + bin + ")" : ""));
        }
        return startManaged(testClass.getSimpleName() + "-" + node, bin, toml, port, Map.of(), 0);
    }

    /**
     * The reference Java TC (seata-server, {@link #referenceTcLauncher}) as node {@code node} of
     * a test class on {@code port} (0: a free one), its environment extended by {@code env}
     * (e.g. {@code REFERENCE_TC_STORE_URL}); own data dir and log ({@code <Class>-<node>.log}).
     */
    public static TcServer referenceNode(Class<?> testClass, String node, int port, Map<String, String> env) {
        return startManaged(testClass.getSimpleName() + "-" + node, referenceTcLauncher().toString(), null, port,
            env, 90);
    }

    /** {@code REFERENCE_TC_BIN}, or else scripts/reference-tc of the checkout this module is in. */
    public static Path referenceTcLauncher() {
        String bin = env(ENV_REFERENCE_BIN);
        Path path = bin != null ? Paths.get(bin)
            : moduleDir().resolve("../../../scripts/reference-tc").normalize();
        if (!Files.isExecutable(path)) {
            throw new IllegalStateException("the reference TC launcher is not an executable file: " + path
                + (bin != null ? " (" + ENV_REFERENCE_BIN + ")" : " (set " + ENV_REFERENCE_BIN + ")"));
        }
        return path.toAbsolutePath();
    }

    /** Whether FERRATA_BIN is the reference Java TC launcher (scripts/reference-tc). */
    public static boolean referenceTcConfigured() {
        String bin = env(ENV_BIN);
        return bin != null && isReferenceTc(bin);
    }

    private static boolean isReferenceTc(String bin) {
        return Paths.get(bin).getFileName().toString().startsWith("reference-tc");
    }

    private static TcServer startManaged(Class<?> testClass, String bin, String toml) {
        return startManaged(testClass.getSimpleName(), bin, toml);
    }

    private static TcServer startManaged(String name, String bin, String toml) {
        return startManaged(name, bin, toml, 0, Map.of(), 0);
    }

    private static TcServer startManaged(String name, String bin, String toml, int fixedPort,
                                         Map<String, String> env, long minStartSecs) {
        Path binary = Paths.get(bin).toAbsolutePath();
        if (!Files.isExecutable(binary)) {
            throw new IllegalStateException(ENV_BIN + " is not an executable file: " + binary);
        }
        int port = fixedPort != 0 ? fixedPort : FreePort.find();
        Path target = moduleDir().resolve("target");
        Path dataDir = target.resolve("tc-data").resolve(name + "-" + port);
        Path logFile = target.resolve("tc-logs").resolve(name + ".log");
        try {
            Files.createDirectories(dataDir);
            Files.createDirectories(logFile.getParent());
            Files.deleteIfExists(logFile);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        TcServer tc = new TcServer(name, binary, "127.0.0.1", port, dataDir, logFile, minStartSecs);
        tc.environment = Map.copyOf(env);
        if (toml != null) {
            tc.configFile = target.resolve("tc-data").resolve(name + "-" + port + ".toml");
            try {
                Files.writeString(tc.configFile, toml, StandardCharsets.UTF_8);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        tc.start();
        return tc;
    }

    public boolean isManaged() {
        return binary != null;
    }

    /** Host clients connect to. */
    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    /** {@code host:port}, as written into the client's grouplist. */
    public String address() {
        return host + ":" + port;
    }

    public Path logFile() {
        return logFile;
    }

    public Path dataDir() {
        return dataDir;
    }

    /** Whether the last {@link #stop} had to SIGKILL the process after the SIGTERM grace period. */
    public boolean lastStopWasForced() {
        return lastStopForced;
    }

    /** Starts the managed process (again) on the same port and data dir, waiting until it listens. */
    public synchronized void start() {
        requireManaged("start");
        if (process != null && process.isAlive()) {
            throw new IllegalStateException("TC already running (pid " + process.pid() + ")");
        }
        starts++;
        killed = false;
        List<String> cmd = new ArrayList<>(List.of(binary.toString(), "--listen", "127.0.0.1:" + port,
            "--data-dir", dataDir.toString()));
        if (configFile != null) {
            cmd.addAll(List.of("--config", configFile.toString()));
        }
        appendLog("==== interop harness: start #" + starts + " at " + Instant.now() + ": " + String.join(" ", cmd));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
        pb.redirectInput(ProcessBuilder.Redirect.from(Paths.get("/dev/null").toFile()));
        if (System.getenv("RUST_BACKTRACE") == null) {
            pb.environment().put("RUST_BACKTRACE", "1");
        }
        // Any free port for the admin listener (the default, 7091, would be shared by every
        // node of a cluster and every concurrent suite), unless the caller chose one.
        pb.environment().putIfAbsent("FERRATA_ADMIN__LISTEN", "127.0.0.1:0");
        pb.environment().putAll(environment);
        try {
            process = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException("could not start " + String.join(" ", cmd), e);
        }
        event("started pid " + process.pid() + " (start #" + starts + ")");
        if (shutdownHook == null) {
            shutdownHook = new Thread(() -> {
                Process p = process;
                if (p != null && p.isAlive()) {
                    p.destroyForcibly();
                }
            }, "tc-server-reaper");
            Runtime.getRuntime().addShutdownHook(shutdownHook);
        }
        awaitPort("TC " + name + " on " + address(), process);
    }

    /** Graceful stop: SIGTERM, bounded wait, then SIGKILL. Returns the exit code. */
    public synchronized int stop() {
        requireManaged("stop");
        if (process == null) {
            return -1;
        }
        Process p = process;
        lastStopForced = false;
        if (p.isAlive()) {
            p.destroy(); // SIGTERM
            try {
                if (!p.waitFor(stopTimeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    lastStopForced = true;
                    appendLog("==== interop harness: no exit " + stopTimeout.toSeconds()
                        + " s after SIGTERM, sending SIGKILL");
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroyForcibly();
            }
        }
        int code = p.isAlive() ? -1 : p.exitValue();
        appendLog("==== interop harness: stopped, exit code " + code + (lastStopForced ? " (forced)" : ""));
        event("stopped, exit code " + code + (lastStopForced ? " (SIGKILL after grace period)" : ""));
        return code;
    }

    /** SIGKILL, like a crash: no deregistration, no flush. Waits (bounded) for the exit. */
    public synchronized void kill() {
        requireManaged("kill");
        Process p = process;
        if (p == null || !p.isAlive()) {
            return;
        }
        p.destroyForcibly(); // SIGKILL on Unix
        try {
            p.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        killed = true;
        appendLog("==== interop harness: killed (SIGKILL)");
        event("killed with SIGKILL");
    }

    /** Stop (SIGTERM) and start again on the same port and data dir. */
    public void restart() {
        stop();
        start();
    }

    /** Fails if a managed TC died on its own. */
    public void assertAlive() {
        if (isManaged() && process != null && !process.isAlive()) {
            throw new AssertionError("TC process exited unexpectedly with code " + process.exitValue()
                + "; log " + logFile + ":\n" + tail(60));
        }
    }

    @Override
    public synchronized void close() {
        if (!isManaged() || process == null) {
            return;
        }
        // A process this harness killed did not die on its own.
        boolean diedEarly = !process.isAlive() && !killed;
        int earlyCode = diedEarly ? process.exitValue() : 0;
        stop();
        if (shutdownHook != null) {
            try {
                Runtime.getRuntime().removeShutdownHook(shutdownHook);
            } catch (IllegalStateException ignored) {
                // JVM already shutting down
            }
        }
        if (diedEarly) {
            throw new AssertionError("TC process had exited on its own (code " + earlyCode + ") before the end of "
                + name + "; log " + logFile + ":\n" + tail(60));
        }
        // The log stays for diagnosis; the data directory (preallocated log segments, tens of
        // megabytes per class) would only fill the disk of a full run.
        deleteTree(dataDir);
    }

    private static void deleteTree(Path dir) {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (java.util.stream.Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> {
                try {
                    Files.deleteIfExists(path);
                } catch (IOException e) {
                    // Best effort: a leftover directory costs disk, not correctness.
                }
            });
        } catch (IOException e) {
            // As above.
        }
    }

    /** The whole TC log so far ("" when there is none). */
    public String log() {
        if (logFile == null || !Files.exists(logFile)) {
            return "";
        }
        try {
            return Files.readString(logFile, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * Waits until the log has a line containing {@code text} (e.g. ferrata-server's
     * {@code ferrata-server ready}: its port accepts connections before it has opened its store).
     */
    public void awaitLog(String text, Duration timeout) {
        Await.condition("'" + text + "' in " + logFile, timeout, () -> {
            assertAlive();
            return log().contains(text);
        });
    }

    /** Last lines of the TC log, for failure messages. */
    public String tail(int lines) {
        if (logFile == null || !Files.exists(logFile)) {
            return "(no log)";
        }
        try {
            List<String> all = Files.readAllLines(logFile, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    /** One-line description for test output. */
    public String describe() {
        return isManaged()
            ? "managed TC " + binary + " on " + address() + " (data " + dataDir + ", log " + logFile + ")"
            : "external TC " + address();
    }

    public List<String> events() {
        return List.copyOf(events);
    }

    private void awaitPort(String what, Process p) {
        long deadline = System.nanoTime() + startTimeout.toNanos();
        IOException last = null;
        while (System.nanoTime() - deadline < 0) {
            if (p != null && !p.isAlive()) {
                throw new IllegalStateException(what + ": process exited with code " + p.exitValue()
                    + " before accepting connections; log " + logFile + ":\n" + tail(60));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(host, port), 250);
                event("accepting connections");
                return;
            } catch (IOException e) {
                last = e;
            }
            Await.sleep(Duration.ofMillis(100));
        }
        throw new IllegalStateException(what + ": port did not accept connections within "
            + startTimeout.toSeconds() + " s (FERRATA_START_TIMEOUT_SECS); last error " + last
            + (logFile != null ? "; log " + logFile + ":\n" + tail(60) : ""));
    }

    private void requireManaged(String op) {
        if (!isManaged()) {
            throw new IllegalStateException("cannot " + op + " an external TC (" + address() + "); set " + ENV_BIN);
        }
    }

    private void event(String what) {
        events.add(Instant.now() + " " + what);
        System.out.println("[tc-harness] " + name + ": " + what);
    }

    private void appendLog(String line) {
        try {
            Files.writeString(logFile, line + System.lineSeparator(), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static Path moduleDir() {
        String dir = System.getProperty("interop.module.dir");
        return (dir == null ? Paths.get("") : Paths.get(dir)).toAbsolutePath();
    }

    private static String env(String key) {
        String v = System.getenv(key);
        return v == null || v.isBlank() ? null : v.trim();
    }

    private static long envLong(String key, long dflt) {
        String v = env(key);
        if (v == null) {
            return dflt;
        }
        try {
            return Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalStateException(key + " must be a number of seconds, got '" + v + "'");
        }
    }
}
