package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.FreePort;
import dev.ferrata.interop.harness.SeataClientConfig;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import dev.ferrata.interop.seata2.AtMixedTransactionTest.Db;
import org.apache.seata.config.ConfigurationCache;
import org.apache.seata.core.exception.TransactionException;
import org.apache.seata.core.model.BranchType;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.discovery.registry.RegistryFactory;
import org.apache.seata.rm.DefaultResourceManager;
import org.apache.seata.tm.DefaultTransactionManager;
import org.apache.seata.tm.TMClient;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 10, point 2: seata-server 2.0.0 in store mode {@code db} begins transactions and
 * registers their branches on a database; it is killed (SIGKILL) and ferrata-server, started
 * on the same database, finishes them: the TM's commit and rollback are carried out, the
 * transaction that times out is rolled back by ferrata, every branch gets exactly its one
 * phase two, and Seata's tables end empty of them.
 *
 * <p>One round per database, each on a fresh schema whose tables ferrata-server creates first
 * (it is started once on it and stopped; seata-server creates no tables):
 * <ul>
 *   <li>PostgreSQL, ferrata on seata-server's port with {@code server.advertise_host} = the host
 *       seata-server wrote into its XIDs: the XIDs name ferrata's own address, so it recovers
 *       them when it starts (the usual migration: the same address, the clients unchanged);</li>
 *   <li>MariaDB, ferrata on another port with its default XID host: the XIDs name another TC
 *       that holds no lease in {@code distributed_lock}, so ferrata adopts them within a third
 *       of {@code store.node_lease_ms}; the clients are pointed at the new port the way a
 *       registry update does ({@code service.default.grouplist} and the client's alive list).</li>
 * </ul>
 * Each round: three transactions, each with a TCC branch and an AT branch (a row lock in
 * {@code lock_table}; the AT resource manager records phase two instead of touching data):
 * one the TM commits, one it rolls back, one that times out. The RM first asks ferrata whether
 * a row seata-server locked is free (it is not), which also connects it to ferrata.
 *
 * <p>Needs {@code FERRATA_BIN} = ferrata-server (the reference TC is started from
 * {@code scripts/reference-tc}, or {@code REFERENCE_TC_BIN}), {@code FERRATA_POSTGRES_URL} and
 * {@code FERRATA_MYSQL_URL} ({@code scripts/services}); fails (never skips) without them, and
 * is skipped with {@code FERRATA_BIN=…/scripts/reference-tc} (it hands over to ferrata).
 */
class SeataDbTakeoverTest {

    static final String ACTION = "interopSeataDbTakeoverAction";
    /** The AT resource id: only an id here, no data source behind it. */
    static final String AT_RESOURCE = "jdbc:mysql://127.0.0.1:3306/seatadb_takeover";
    static final String AT_TABLE = "seatadb_item";
    /** Short node leases: ferrata adopts within a third of this. */
    static final int LEASE_MS = 1_000;
    /** The timeout of the transaction ferrata rolls back on its own. */
    static final int SHORT_TIMEOUT_MS = 7_000;
    /** seata-server is killed this long after that transaction began at the latest (its own timeout check never fires). */
    static final Duration KILL_BEFORE = Duration.ofMillis(SHORT_TIMEOUT_MS - 3_000);
    static final Duration PHASE_TWO_WITHIN = Duration.ofSeconds(40);
    static final Duration SETTLE = Duration.ofMillis(1500);

    private static final CallRecorder recorder = new CallRecorder();
    private static Seata.RecordingAtResourceManager atRm;
    private static boolean clientsStarted;
    private final List<TcServer> servers = new ArrayList<>();

    /** A table of Seata's in {@code schema} (databases: AtMixedTransactionTest's {@link Db}). */
    private static String table(Db db, String schema, String table) {
        return db.mysql() ? "`" + schema + "`." + table : "\"" + schema + "\"." + table;
    }

    private static void drop(Db db, String schema) throws SQLException {
        try (Connection c = db.connect(); Statement s = c.createStatement()) {
            s.execute(db.mysql() ? "DROP DATABASE IF EXISTS `" + schema + "`"
                : "DROP SCHEMA IF EXISTS \"" + schema + "\" CASCADE");
        }
    }

    /** Rows of {@code table} in {@code schema} that belong to {@code xids}. */
    private static int rows(Db db, String schema, String table, List<String> xids) throws SQLException {
        String marks = xids.stream().map(x -> "?").collect(Collectors.joining(", "));
        try (Connection c = db.connect();
             PreparedStatement s = c.prepareStatement("SELECT COUNT(*) FROM " + table(db, schema, table)
                 + " WHERE xid IN (" + marks + ")")) {
            for (int i = 0; i < xids.size(); i++) {
                s.setString(i + 1, xids.get(i));
            }
            try (ResultSet r = s.executeQuery()) {
                r.next();
                return r.getInt(1);
            }
        }
    }

    /** global_table, branch_table and lock_table rows of {@code xids}, in that order. */
    private static List<Integer> seataRows(Db db, String schema, List<String> xids) throws SQLException {
        return List.of(rows(db, schema, "global_table", xids), rows(db, schema, "branch_table", xids),
            rows(db, schema, "lock_table", xids));
    }

    /** One in-flight transaction: its xid and the ids of its TCC and AT branches. */
    record InFlight(String what, String xid, long tccBranch, long atBranch, String row, String probe) {
    }

    @BeforeAll
    static void needsFerrata() {
        Assumptions.assumeFalse(TcServer.referenceTcConfigured(),
            "this test hands over from seata-server to ferrata-server: FERRATA_BIN must be ferrata-server");
    }

    @BeforeEach
    @AfterEach
    void cleanContext() {
        Seata.clearContext();
    }

    @AfterEach
    void stopServers() {
        Collections.reverse(servers);
        for (TcServer server : servers) {
            server.close();
        }
        servers.clear();
    }

    @Test
    void postgresTakeoverOnTheSamePort() throws Exception {
        takeOver(Db.fromEnv("postgres", "FERRATA_POSTGRES_URL"), true);
    }

    @Test
    void mariadbTakeoverOnAnotherPort() throws Exception {
        takeOver(Db.fromEnv("mariadb", "FERRATA_MYSQL_URL"), false);
    }

    private static String storeToml(Db db, String schema, String advertiseHost) {
        String toml = "[store]\nurl = \"" + db.url() + "\"\nschema = \"" + schema + "\"\nnode_lease_ms = " + LEASE_MS
            + "\n";
        if (advertiseHost != null) {
            toml += "[server]\nadvertise_host = \"" + advertiseHost + "\"\n";
        }
        return toml;
    }

    private TcServer started(TcServer server) {
        servers.add(server);
        return server;
    }

    private void takeOver(Db db, boolean samePort) throws Exception {
        long t0 = System.nanoTime();
        String schema = "seatadb_" + db.name() + "_" + UUID.randomUUID().toString().substring(0, 8);
        String tag = db.name() + (samePort ? "-same-port" : "-other-port");

        // ferrata-server creates Seata's tables (and the schema) on a first start.
        TcServer creator = started(TcServer.managedNode(SeataDbTakeoverTest.class, db.name() + "-tables", 0,
            storeToml(db, schema, null)));
        creator.awaitLog("ferrata-server ready", Duration.ofSeconds(30));
        creator.stop();
        servers.remove(creator);
        assertEquals(List.of(0, 0, 0), seataRows(db, schema, List.of("none")), "fresh tables in " + schema);

        // seata-server 2.0.0 in store mode db on them; the clients talk to it.
        int seataPort = FreePort.find();
        TcServer seata = started(TcServer.referenceNode(SeataDbTakeoverTest.class, db.name() + "-seata", seataPort,
            Map.of("REFERENCE_TC_STORE_URL", db.url(), "REFERENCE_TC_STORE_SCHEMA", schema)));
        aimClientsAt(seataPort);
        System.out.println("[takeover] " + tag + ": seata-server serving after " + ms(t0) + " ms");

        DefaultTransactionManager tm = new DefaultTransactionManager();
        long begun = System.nanoTime();
        InFlight timesOut = inFlight(tm, tag, "times-out", SHORT_TIMEOUT_MS);
        InFlight committed = inFlight(tm, tag, "committed", 120_000);
        InFlight rolledBack = inFlight(tm, tag, "rolled-back", 120_000);
        List<InFlight> all = List.of(committed, rolledBack, timesOut);
        List<String> xids = all.stream().map(InFlight::xid).toList();
        Xid seataXid = Xid.parse(committed.xid());
        assertEquals(seataPort, seataXid.port(), "seata-server's XID " + committed.xid());
        for (InFlight tx : all) {
            assertEquals(GlobalStatus.Begin, tm.getStatus(tx.xid()), "seata-server's status of " + tx.xid());
        }
        assertEquals(List.of(3, 6, 3), seataRows(db, schema, xids),
            "seata-server wrote the transactions, branches and row locks into " + schema);
        assertTrue(System.nanoTime() - begun < KILL_BEFORE.toNanos(),
            "setting up the transactions took " + ms(begun) + " ms: seata-server could time one out itself before the kill");
        seata.kill();
        System.out.println("[takeover] " + tag + ": seata-server killed " + ms(begun) + " ms after the first begin");
        for (InFlight tx : all) {
            assertTrue(recorder.forXid(tx.xid()).isEmpty(), "no phase two before ferrata: " + recorder.forXid(tx.xid()));
        }

        // ferrata-server on the same database.
        TcServer ferrata;
        if (samePort) {
            ferrata = started(TcServer.managedNode(SeataDbTakeoverTest.class, db.name() + "-ferrata", seataPort,
                storeToml(db, schema, seataXid.host())));
        } else {
            ferrata = started(TcServer.managedNode(SeataDbTakeoverTest.class, db.name() + "-ferrata", 0,
                storeToml(db, schema, null)));
            assertNotEquals(seataPort, ferrata.port());
            aimClientsAt(ferrata.port());
        }
        long handedOver = System.nanoTime();

        // The RM reconnects on its first request: seata-server's row locks hold in ferrata.
        boolean othersRowFree = Await.until("GlobalLockQuery through ferrata", Duration.ofSeconds(30),
            Duration.ofMillis(200), () -> lockable(rolledBack.xid(), committed.row()));
        assertFalse(othersRowFree, committed.row() + " is locked by " + committed.xid() + " (a row of lock_table)");
        assertTrue(lockable(committed.xid(), committed.row()), "a transaction's own row is lockable for it");

        // The TM's decisions, carried out at once: ferrata drives the transactions from its
        // start (a refusal would answer Finished, which seata-all reads without the result
        // code). Only a failed reconnection is retried.
        GlobalStatus commit = Await.until("GlobalCommit of " + committed.xid() + " by ferrata", Duration.ofSeconds(30),
            Duration.ofMillis(200), () -> tm.commit(committed.xid()));
        assertEquals(GlobalStatus.Committed, commit, "commit of " + committed.xid());
        GlobalStatus rollback = Await.until("GlobalRollback of " + rolledBack.xid() + " by ferrata",
            Duration.ofSeconds(30), Duration.ofMillis(200), () -> tm.rollback(rolledBack.xid()));
        assertEquals(GlobalStatus.Rollbacked, rollback, "rollback of " + rolledBack.xid());
        System.out.println("[takeover] " + tag + ": commit and rollback done " + ms(handedOver)
            + " ms after ferrata was listening");

        // Every branch gets exactly its phase two; the timed-out transaction is rolled back.
        assertPhaseTwo(committed, CallRecorder.COMMIT);
        assertPhaseTwo(rolledBack, CallRecorder.ROLLBACK);
        assertPhaseTwo(timesOut, CallRecorder.ROLLBACK);
        GlobalStatus late = tm.commit(timesOut.xid());
        assertFalse(Set.of(GlobalStatus.Committed, GlobalStatus.Committing, GlobalStatus.AsyncCommitting).contains(late),
            "a late GlobalCommit of the timed-out " + timesOut.xid() + " answered " + late);
        Await.sleep(SETTLE);
        assertPhaseTwo(timesOut, CallRecorder.ROLLBACK);

        // Nothing of them is left in Seata's tables.
        Await.condition("no row of " + xids + " left in global_table, branch_table, lock_table of " + schema,
            Duration.ofSeconds(20), () -> {
                try {
                    return seataRows(db, schema, xids).equals(List.of(0, 0, 0));
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
            });
        assertTrue(lockable(rolledBack.xid(), committed.row() + "," + rolledBack.row() + "," + timesOut.row()),
            "every row is free again");

        // ferrata took them over the way the round means to, and serves new transactions.
        String log = ferrata.log();
        if (samePort) {
            assertTrue(log.contains("recovered_sessions=3"), "ferrata recovered the 3 transactions as its own: "
                + ferrata.logFile());
        } else {
            assertTrue(log.contains("takes its transactions over") && log.contains(seataXid.host() + ":" + seataPort),
                "ferrata adopted seata-server's transactions: " + ferrata.logFile());
        }
        InFlight fresh = inFlight(tm, tag, "fresh", 30_000);
        assertEquals(GlobalStatus.Committed, tm.commit(fresh.xid()), "a new transaction on ferrata");
        assertPhaseTwo(fresh, CallRecorder.COMMIT);
        System.out.println("[takeover] " + tag + ": done in " + ms(t0) + " ms; seata-server XIDs " + xids
            + ", ferrata XID " + fresh.xid());
        drop(db, schema);
    }

    /** A transaction with one TCC branch and one AT branch (row {@code AT_TABLE:<n>}). */
    private static InFlight inFlight(DefaultTransactionManager tm, String tag, String what, int timeoutMs)
        throws TransactionException {
        String xid = tm.begin(Seata.APP_ID, Seata.GROUP, Seata.uniqueName("seatadb-" + tag + "-" + what), timeoutMs);
        String probe = tag + "/" + what + "/" + UUID.randomUUID();
        long tcc = Seata.registerTccBranch(ACTION, xid, probe);
        String row = AT_TABLE + ":" + Xid.parse(xid).transactionId();
        Long at = DefaultResourceManager.get().branchRegister(BranchType.AT, AT_RESOURCE, null, xid, null, row);
        assertTrue(at != null && at > 0, "AT branch id for " + xid);
        return new InFlight(what, xid, tcc, at, row, probe);
    }

    private static boolean lockable(String xid, String lockKey) throws TransactionException {
        return atRm.lockQuery(BranchType.AT, AT_RESOURCE, xid, lockKey);
    }

    /** Both branches of {@code tx} got {@code phase} exactly once and nothing else. */
    private static void assertPhaseTwo(InFlight tx, String phase) {
        Await.condition(phase + " of both branches of the " + tx.what() + " " + tx.xid() + "; recorded: "
            + recorder.forXid(tx.xid()), PHASE_TWO_WITHIN, () -> recorder.forXid(tx.xid(), phase).size() >= 2);
        List<Call> calls = recorder.forXid(tx.xid());
        Map<Long, String> byBranch = new LinkedHashMap<>();
        for (Call call : calls) {
            byBranch.merge(call.branchId(), call.phase(), (a, b) -> a + "+" + b);
        }
        assertEquals(Map.of(tx.tccBranch(), phase, tx.atBranch(), phase), byBranch,
            "phase two of " + tx.xid() + " (TCC branch " + tx.tccBranch() + ", AT branch " + tx.atBranch() + "): "
                + calls);
        Call tcc = calls.stream().filter(c -> c.branchId() == tx.tccBranch()).findFirst().orElseThrow();
        assertEquals(tx.probe(), tcc.context().get("probe"), "the TCC action context survived: " + tcc);
        Call at = calls.stream().filter(c -> c.branchId() == tx.atBranch()).findFirst().orElseThrow();
        assertEquals(AT_RESOURCE, at.resourceId(), "AT branch resource: " + at);
    }

    /**
     * Points the clients at the TC on 127.0.0.1:{@code port}: the first time by starting them,
     * later the way a registry update reaches them (the file registry's grouplist, read again
     * once the configuration cache is cleared, and the alive addresses requests are balanced
     * over).
     */
    private static void aimClientsAt(int port) throws NoSuchMethodException {
        SeataClientConfig.apply("127.0.0.1", port);
        if (!clientsStarted) {
            TMClient.init(Seata.APP_ID, Seata.GROUP);
            Seata.registerTccResource(ACTION, new Seata.RecordingTccAction(recorder));
            atRm = new Seata.RecordingAtResourceManager(recorder);
            Seata.installAtResourceManager(atRm, AT_RESOURCE);
            Seata.initRm();
            clientsStarted = true;
            return;
        }
        ConfigurationCache.clear();
        RegistryFactory.getInstance().refreshAliveLookup(Seata.GROUP,
            List.of(new InetSocketAddress("127.0.0.1", port)));
    }

    private static long ms(long since) {
        return (System.nanoTime() - since) / 1_000_000;
    }
}
