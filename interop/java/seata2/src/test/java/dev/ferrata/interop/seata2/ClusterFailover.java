package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.SeataClientConfig;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.rm.RMClient;
import org.apache.seata.tm.TMClient;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The official client in front of a cluster: three ferrata-server nodes sharing one database
 * ({@code [store] url}/{@code schema}, short {@code node_lease_ms}), the client's grouplist
 * listing all three (Seata's default XID load balancing). A few threads run TCC transactions
 * (begin, one branch, commit or now and then rollback); three seconds in one node is killed
 * with SIGKILL and the load goes on (see {@link #AFTER_KILL_AT_LEAST}). Then: every acknowledged commit reached its
 * branch as a commit and never as a rollback (and the reverse), no branch got both, every
 * registered branch got its phase two, the database holds no session, branch or row lock of
 * the schema, and transactions begun after the kill were acknowledged through the survivors.
 * One subclass per database, since the Seata client is a JVM-wide singleton.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ClusterFailover {

    static final String ACTION = "interopClusterTccAction";
    static final long LEASE_MS = 2_000;
    /** Undecided transactions of the killed node end this long after they began. */
    static final int TX_TIMEOUT_MS = 10_000;
    static final int WORKERS = 4;
    static final Duration KILL_AFTER = Duration.ofSeconds(3);
    /**
     * The load goes on at least this long after the kill, then until {@link #WANTED_AFTER_KILL}
     * transactions begun after it were acknowledged, or {@link #AFTER_KILL_AT_MOST} passed: how
     * soon the client stops picking the dead node is its own business (its channel checks and
     * reconnect timer), and a slow machine must not turn that into a failure.
     */
    static final Duration AFTER_KILL_AT_LEAST = Duration.ofSeconds(6);
    static final Duration AFTER_KILL_AT_MOST = Duration.ofSeconds(40);
    static final int WANTED_AFTER_KILL = 10;
    /** Undecided transactions with a branch that the killed node drives when it dies. */
    static final int ORPHANS = 3;
    /** Bound on phase two reaching every branch and the tables emptying after the load. */
    static final Duration CONVERGE = Duration.ofSeconds(60);

    /** Answers to a commit or rollback that mean the transaction commits, or rolls back. */
    static final Set<GlobalStatus> COMMITTING = EnumSet.of(GlobalStatus.Committed, GlobalStatus.Committing,
        GlobalStatus.CommitRetrying, GlobalStatus.AsyncCommitting);
    static final Set<GlobalStatus> ROLLING_BACK = EnumSet.of(GlobalStatus.Rollbacked, GlobalStatus.Rollbacking,
        GlobalStatus.RollbackRetrying, GlobalStatus.TimeoutRollbacked, GlobalStatus.TimeoutRollbacking,
        GlobalStatus.TimeoutRollbackRetrying);

    private final CallRecorder recorder = new CallRecorder();
    private final List<TcServer> nodes = new ArrayList<>();
    private Database database;

    /** The variable scripts/services exports with the database URL. */
    abstract String databaseVariable();

    /** A short name for the schema (PostgreSQL schema or MySQL database) and node logs. */
    abstract String tag();

    /** What the test learned about one transaction it began. */
    static final class Tx {
        final String xid;
        final int worker;
        final boolean beganAfterKill;
        Long branchId;
        String registerError;
        /** Begun on the node that is killed, a branch registered, never decided by the TM. */
        boolean orphan;
        boolean wantCommit;
        /** The status the TC answered to the decision, null when no answer came. */
        GlobalStatus answered;
        String decideError;
        /** From the begin to the answer to the decision (or the last error). */
        long millis;

        Tx(String xid, int worker, boolean beganAfterKill) {
            this.xid = xid;
            this.worker = worker;
            this.beganAfterKill = beganAfterKill;
        }

        /** TRUE: acknowledged commit, FALSE: acknowledged rollback, null: not acknowledged. */
        Boolean acknowledged() {
            if (answered == null) {
                return null;
            }
            if (COMMITTING.contains(answered)) {
                return Boolean.TRUE;
            }
            return ROLLING_BACK.contains(answered) ? Boolean.FALSE : null;
        }

        @Override
        public String toString() {
            return xid + " (" + (orphan ? "orphan" : "worker " + worker) + (beganAfterKill ? ", after the kill" : "")
                + ", branch " + branchId
                + (registerError != null ? " [register: " + registerError + "]" : "")
                + ", " + (wantCommit ? "commit" : "rollback") + " -> " + answered
                + (decideError != null ? " [" + decideError + "]" : "") + ", " + millis + " ms)";
        }
    }

    /** When the workers stop: some time after the kill, once the survivors served enough. */
    static final class Load {
        final long startedNanos = System.nanoTime();
        /** 0 until the kill. */
        final AtomicLong killedNanos = new AtomicLong();
        final AtomicInteger acknowledgedAfterKill = new AtomicInteger();

        boolean killed() {
            return killedNanos.get() != 0;
        }

        boolean goesOn() {
            long killed = killedNanos.get();
            long now = System.nanoTime();
            if (killed == 0) {
                return now - startedNanos < AFTER_KILL_AT_MOST.toNanos(); // the kill never came
            }
            long since = now - killed;
            return since < AFTER_KILL_AT_LEAST.toNanos()
                || (since < AFTER_KILL_AT_MOST.toNanos() && acknowledgedAfterKill.get() < WANTED_AFTER_KILL);
        }

        long millisSinceStart(long nanos) {
            return (nanos - startedNanos) / 1_000_000;
        }
    }

    /** The schema of the shared database the nodes use, looked into over JDBC. */
    record Database(AtMixedTransactionTest.Db db, String schema) {

        /** Fails (never skips) when scripts/services' variable is missing. */
        static Database fromEnv(String variable, String schema) {
            return new Database(AtMixedTransactionTest.Db.fromEnv(variable, variable), schema);
        }

        Connection connect() throws SQLException {
            return db.connect();
        }

        boolean mysql() {
            return db.mysql();
        }

        String table(String name) {
            return mysql() ? "`" + schema + "`." + name : "\"" + schema + "\"." + name;
        }

        /** Rows of each of Seata's session tables in the schema. */
        Map<String, Long> rows() throws SQLException {
            Map<String, Long> counts = new LinkedHashMap<>();
            try (Connection c = connect(); Statement s = c.createStatement()) {
                for (String t : List.of("global_table", "branch_table", "lock_table")) {
                    try (ResultSet r = s.executeQuery("SELECT COUNT(*) FROM " + table(t))) {
                        r.next();
                        counts.put(t, r.getLong(1));
                    }
                }
            }
            return counts;
        }

        /** What is left in the tables, for failure messages. */
        String leftovers() {
            StringBuilder sb = new StringBuilder();
            try (Connection c = connect(); Statement s = c.createStatement()) {
                for (String q : List.of("SELECT xid, status, timeout, begin_time FROM " + table("global_table"),
                    "SELECT xid, branch_id, status, client_id FROM " + table("branch_table"),
                    "SELECT xid, branch_id, row_key FROM " + table("lock_table"))) {
                    try (ResultSet r = s.executeQuery(q)) {
                        int columns = r.getMetaData().getColumnCount();
                        int shown = 0;
                        while (r.next() && shown++ < 20) {
                            sb.append("\n  ").append(q, 7, q.indexOf(" FROM")).append(" =");
                            for (int i = 1; i <= columns; i++) {
                                sb.append(' ').append(r.getString(i));
                            }
                        }
                    }
                }
            } catch (SQLException e) {
                sb.append("\n  (could not read the tables: ").append(e).append(')');
            }
            return sb.toString();
        }

        void drop() throws SQLException {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                s.execute(mysql() ? "DROP DATABASE IF EXISTS `" + schema + "`"
                    : "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
            }
        }
    }

    @BeforeAll
    void startThreeNodesAndTheClient() throws Exception {
        String schema = "ferrata_java_cluster_" + tag() + "_" + ProcessHandle.current().pid();
        database = Database.fromEnv(databaseVariable(), schema);
        database.drop(); // a fresh schema, whatever an earlier run of this pid left
        String toml = "[store]\nurl = \"" + database.db().url() + "\"\nschema = \"" + schema + "\"\nnode_lease_ms = " + LEASE_MS + "\n";
        for (String name : List.of("a", "b", "c")) {
            nodes.add(TcServer.managedNode(getClass(), name, toml));
        }
        Map<String, String> p = SeataClientConfig.forTc("unused", 0);
        p.put("service." + SeataClientConfig.CLUSTER + ".grouplist",
            nodes.stream().map(TcServer::address).collect(Collectors.joining(";")));
        // a request to the killed node fails after this rather than after 10 s
        p.put("transport.rpcTmRequestTimeout", "3000");
        p.put("transport.rpcRmRequestTimeout", "3000");
        p.forEach(System::setProperty);
        System.out.println("[cluster] Seata client system properties: " + p);
        TMClient.init(Seata.APP_ID, Seata.GROUP);
        Seata.registerTccResource(ACTION, new Seata.RecordingTccAction(recorder));
        RMClient.init(Seata.APP_ID, Seata.GROUP);
    }

    @AfterAll
    void stopNodes() throws Exception {
        for (TcServer node : nodes) {
            node.close();
        }
    }

    /** One worker's transactions while the load goes on; two in three commit. */
    private List<Tx> work(int worker, Load load, List<String> beginErrors) {
        List<Tx> done = new ArrayList<>();
        int seq = 0;
        while (load.goesOn()) {
            seq++;
            Seata.clearContext();
            boolean afterKill = load.killed();
            long begun = System.nanoTime();
            GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
            try {
                tx.begin(TX_TIMEOUT_MS, Seata.uniqueName("cluster-" + worker));
            } catch (Exception e) {
                synchronized (beginErrors) {
                    beginErrors.add((afterKill ? "after the kill: " : "") + "at " + load.millisSinceStart(begun)
                        + " ms, after " + (System.nanoTime() - begun) / 1_000_000 + " ms: " + Await.describe(e));
                }
                Seata.clearContext();
                Await.sleep(Duration.ofMillis(100));
                continue;
            }
            Tx t = new Tx(tx.getXid(), worker, afterKill);
            done.add(t);
            try {
                t.branchId = Seata.registerTccBranch(ACTION, t.xid, worker + "-" + seq);
            } catch (Exception e) {
                t.registerError = Await.describe(e);
            }
            t.wantCommit = t.branchId != null && seq % 3 != 0;
            try {
                if (t.wantCommit) {
                    tx.commit();
                } else {
                    tx.rollback();
                }
                t.answered = tx.getLocalStatus();
            } catch (Exception e) {
                t.decideError = Await.describe(e);
            } finally {
                Seata.clearContext();
            }
            t.millis = (System.nanoTime() - begun) / 1_000_000;
            if (afterKill && t.acknowledged() != null) {
                load.acknowledgedAfterKill.incrementAndGet();
            }
        }
        return done;
    }

    /**
     * Transactions the killed node drives when it dies, each with a registered branch, that
     * the TM never decides: a survivor adopts them once the victim's lease lapses and rolls
     * them back at their timeout. Begins that land on another node are rolled back at once.
     */
    private List<Tx> orphansOn(TcServer victim) throws Exception {
        List<Tx> orphans = new ArrayList<>();
        int onVictim = 0;
        for (int attempt = 0; attempt < 40 && onVictim < ORPHANS; attempt++) {
            Seata.clearContext();
            GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
            tx.begin(TX_TIMEOUT_MS, Seata.uniqueName("cluster-orphan"));
            Tx t = new Tx(tx.getXid(), -1, false);
            if (Xid.parse(t.xid).port() != victim.port()) {
                tx.rollback();
                t.answered = tx.getLocalStatus();
            } else {
                t.orphan = true;
                onVictim++;
                t.branchId = Seata.registerTccBranch(ACTION, t.xid, "orphan-" + attempt);
            }
            Seata.clearContext();
            orphans.add(t);
        }
        Seata.clearContext();
        assertTrue(onVictim == ORPHANS,
            "could not begin " + ORPHANS + " transactions on " + victim.address() + ": " + orphans);
        return orphans;
    }

    /** Each worker's last three transactions begun before the kill: what it was doing then. */
    private static List<Tx> lastBeforeKill(List<Tx> txs) {
        List<Tx> last = new ArrayList<>();
        for (int w = 0; w < WORKERS; w++) {
            int worker = w;
            List<Tx> before = txs.stream().filter(t -> t.worker == worker && !t.beganAfterKill && !t.orphan)
                .collect(Collectors.toList());
            last.addAll(before.subList(Math.max(0, before.size() - 3), before.size()));
        }
        return last;
    }

    @Test
    void everyAcknowledgedDecisionHoldsWhenANodeIsKilledUnderLoad() throws Exception {
        Load load = new Load();
        long started = load.startedNanos;
        List<String> beginErrors = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(WORKERS);
        List<Future<List<Tx>>> workers = new ArrayList<>();
        for (int w = 0; w < WORKERS; w++) {
            int worker = w;
            workers.add(pool.submit(() -> work(worker, load, beginErrors)));
        }
        Await.sleep(KILL_AFTER);
        TcServer victim = nodes.get(2);
        List<Tx> txs = new ArrayList<>(orphansOn(victim));
        victim.kill();
        long killedAt = System.currentTimeMillis();
        load.killedNanos.set(System.nanoTime());
        for (Future<List<Tx>> f : workers) {
            txs.addAll(f.get(AFTER_KILL_AT_MOST.toSeconds() + 60, TimeUnit.SECONDS));
        }
        pool.shutdown();
        long loadMillis = (System.nanoTime() - started) / 1_000_000;
        long killMillis = load.millisSinceStart(load.killedNanos.get());

        Map<String, Tx> byXid = new HashMap<>();
        txs.forEach(t -> byXid.put(t.xid, t));
        long commits = txs.stream().filter(t -> Boolean.TRUE.equals(t.acknowledged())).count();
        long rollbacks = txs.stream().filter(t -> Boolean.FALSE.equals(t.acknowledged())).count();
        List<Tx> unacknowledged = txs.stream().filter(t -> t.acknowledged() == null).collect(Collectors.toList());
        List<Tx> afterKill = txs.stream().filter(t -> t.beganAfterKill && t.acknowledged() != null)
            .collect(Collectors.toList());
        System.out.println("[cluster] " + txs.size() + " transactions in " + loadMillis + " ms (kill at " + killMillis
            + " ms): " + commits
            + " acknowledged commits, " + rollbacks + " acknowledged rollbacks, " + unacknowledged.size()
            + " without an acknowledged decision, " + afterKill.size() + " acknowledged after the kill; "
            + beginErrors.size() + " failed begins");
        unacknowledged.stream().limit(20).forEach(t -> System.out.println("[cluster] unacknowledged: " + t));
        synchronized (beginErrors) {
            beginErrors.stream().limit(10).forEach(e -> System.out.println("[cluster] failed begin: " + e));
        }
        txs.stream().filter(t -> t.millis >= 1_000).limit(20)
            .forEach(t -> System.out.println("[cluster] slow: " + t));

        // The client carried on through the survivors.
        assertTrue(commits + rollbacks > 20, "too little load ran: " + txs);
        assertTrue(afterKill.size() >= 5, "only " + afterKill.size() + " transactions begun after the kill of "
            + victim.address() + " (at " + killMillis + " ms of " + loadMillis + " ms) were acknowledged; failed begins: "
            + beginErrors + "; transactions begun after the kill: "
            + txs.stream().filter(t -> t.beganAfterKill).limit(40).collect(Collectors.toList())
            + "; each worker's last ones begun before it: " + lastBeforeKill(txs));
        for (Tx t : afterKill) {
            int port = Xid.parse(t.xid).port();
            assertTrue(port != victim.port(), "a transaction begun after the kill names the killed node: " + t);
        }
        // An answer that is neither a commit nor a rollback (CommitFailed, RollbackFailed, ...).
        for (Tx t : txs) {
            if (t.answered != null && t.acknowledged() == null && t.answered != GlobalStatus.Finished) {
                fail("the decision of " + t + " was answered " + t.answered);
            }
            if (t.acknowledged() != null && t.acknowledged() != t.wantCommit
                && !(t.wantCommit && ROLLING_BACK.contains(t.answered))) {
                fail("the TC acknowledged the opposite of what the TM asked: " + t);
            }
        }

        // Every acknowledged decision reaches its branch; every registered branch gets a phase two.
        Await.condition("phase two of every registered branch (acknowledged ones as decided)", CONVERGE, () ->
            txs.stream().filter(t -> t.branchId != null).allMatch(t -> {
                Boolean decided = t.acknowledged();
                List<Call> calls = recorder.forXid(t.xid);
                return calls.stream().anyMatch(c -> c.branchId() == t.branchId
                    && (decided == null || c.phase().equals(decided ? CallRecorder.COMMIT : CallRecorder.ROLLBACK)));
            }));
        // No session, branch or row lock is left in the database.
        try {
            Await.until("empty global_table, branch_table and lock_table in " + database.schema(), CONVERGE,
                Duration.ofMillis(500), () -> database.rows().values().stream().allMatch(n -> n == 0) ? Boolean.TRUE : null);
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; left:" + database.leftovers(), e);
        }
        Await.sleep(Duration.ofSeconds(2)); // late or repeated deliveries
        Map<String, List<Call>> byBranch = recorder.all().stream()
            .collect(Collectors.groupingBy(c -> c.xid() + " branch " + c.branchId()));
        int repeated = 0;
        List<Long> orphanRollbacks = new ArrayList<>();
        for (Map.Entry<String, List<Call>> e : byBranch.entrySet()) {
            Set<String> phases = e.getValue().stream().map(Call::phase).collect(Collectors.toSet());
            assertTrue(phases.size() == 1, e.getKey() + " got both a commit and a rollback: " + e.getValue());
            if (e.getValue().size() > 1) {
                repeated++;
            }
            Tx t = byXid.get(e.getValue().get(0).xid());
            assertTrue(t != null, "phase two for a transaction no worker began: " + e.getValue());
            if (t.orphan) {
                assertTrue(phases.equals(Set.of(CallRecorder.ROLLBACK)),
                    "the killed node's undecided " + t + " must be rolled back at its timeout, got " + e.getValue());
                orphanRollbacks.add(e.getValue().get(0).atMillis() - killedAt);
            }
            Boolean decided = t.acknowledged();
            if (decided != null) {
                String expected = decided ? CallRecorder.COMMIT : CallRecorder.ROLLBACK;
                assertTrue(phases.contains(expected), t + " was acknowledged, but its branch got " + e.getValue());
            }
        }
        System.out.println("[cluster] " + byBranch.size() + " branches got phase two, " + repeated
            + " of them more than once (same decision); the orphans were rolled back " + orphanRollbacks
            + " ms after the kill");
        assertTrue(orphanRollbacks.size() == ORPHANS, "orphans rolled back: " + orphanRollbacks);
        for (int i = 0; i < 2; i++) {
            nodes.get(i).assertAlive();
        }
        System.out.println("[cluster] whole scenario " + (System.nanoTime() - started) / 1_000_000 + " ms");
        database.drop();
    }
}
