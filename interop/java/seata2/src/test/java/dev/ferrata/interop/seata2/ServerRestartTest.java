package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.tm.DefaultTransactionManager;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Scenario 6: the TC is stopped with SIGTERM and started again on the same port and data
 * dir; the client reconnects by itself. Needs FERRATA_BIN (fails, never skips, without it).
 */
class ServerRestartTest {

    static final String ACTION = "interopRestartTccAction";
    /** The Java client reconnects on demand (TM) or on a 10 s timer that starts 60 s after init (RM). */
    static final Duration RECONNECT_WINDOW = Duration.ofSeconds(60);
    static final Duration RM_RECONNECT_WINDOW = Duration.ofSeconds(90);

    private static TcServer tc;
    private static final CallRecorder recorder = new CallRecorder();

    @BeforeAll
    static void startTcAndClients() throws Exception {
        tc = TcServer.managed(ServerRestartTest.class, "reconnect after TC restart");
        Seata.initTm(tc);
        Seata.registerTccResource(ACTION, new Seata.RecordingTccAction(recorder));
        Seata.initRm();
    }

    @AfterAll
    static void stopTc() {
        if (tc != null) {
            tc.close();
        }
    }

    @BeforeEach
    @AfterEach
    void cleanContext() {
        Seata.clearContext();
    }

    private static GlobalStatus beginCommit(String what) throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.createNew();
        try {
            tx.begin(30_000, Seata.uniqueName(what));
            tx.commit();
            return tx.getLocalStatus();
        } finally {
            RootContext.unbind();
        }
    }

    private static void restartTc() {
        int code = tc.stop();
        assertFalse(tc.lastStopWasForced(), "TC did not exit within the grace period after SIGTERM; log "
            + tc.logFile());
        System.out.println("[restart-test] TC exit code after SIGTERM: " + code);
        tc.start();
    }

    @Test
    void tmReconnectsAndInFlightTransactionSurvivesRestart() throws Exception {
        assertEquals(GlobalStatus.Committed, beginCommit("before-restart"), "begin/commit before the restart");

        // a transaction left open across the restart (long timeout so it cannot time out meanwhile)
        GlobalTransaction open = GlobalTransactionContext.createNew();
        open.begin(300_000, Seata.uniqueName("open-across-restart"));
        RootContext.unbind();
        String openXid = open.getXid();

        restartTc();

        long t0 = System.nanoTime();
        GlobalStatus after = Await.until("begin/commit after the TC restart", RECONNECT_WINDOW,
            Duration.ofSeconds(1), () -> beginCommit("after-restart"));
        System.out.println("[restart-test] TM usable again after " + (System.nanoTime() - t0) / 1_000_000 + " ms");
        assertEquals(GlobalStatus.Committed, after, "begin/commit after the restart");

        GlobalStatus recovered = new DefaultTransactionManager().getStatus(openXid);
        assertEquals(GlobalStatus.Begin, recovered,
            "a transaction begun before the restart must be recovered from the data dir in status Begin: " + openXid);
        open.rollback();
        assertEquals(GlobalStatus.Rollbacked, open.getLocalStatus(), "rollback of the recovered transaction");
    }

    @Test
    void rmReconnectsAndReceivesPhaseTwoAfterRestart() throws Exception {
        // a TCC branch registered before the restart, committed after it
        GlobalTransaction tx = GlobalTransactionContext.createNew();
        tx.begin(300_000, Seata.uniqueName("tcc-across-restart"));
        String xid = tx.getXid();
        long branchId = Seata.registerTccBranch(ACTION, xid, "before-restart");
        RootContext.unbind();

        restartTc();

        GlobalStatus commitStatus = Await.until("GlobalCommit of " + xid + " after the TC restart", RECONNECT_WINDOW,
            Duration.ofSeconds(1), () -> new DefaultTransactionManager().commit(xid));
        // Committed if the RM had reconnected already; CommitRetrying if the TC could not reach it yet
        assertTrue(Set.of(GlobalStatus.Committed, GlobalStatus.CommitRetrying).contains(commitStatus),
            "GlobalCommit status after restart: " + commitStatus);

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, RM_RECONNECT_WINDOW, Duration.ofSeconds(1));
        assertEquals(1, calls.size(), "exactly one phase-two commit after the restart: " + calls);
        assertEquals(branchId, calls.get(0).branchId());
        assertEquals("before-restart", calls.get(0).context().get("probe"), "actionContext survived the restart");

        GlobalStatus finalStatus = Await.until("final status of " + xid, Duration.ofSeconds(15), Duration.ofMillis(500),
            () -> {
                GlobalStatus s = new DefaultTransactionManager().getStatus(xid);
                return Set.of(GlobalStatus.Committed, GlobalStatus.Finished).contains(s) ? s : null;
            });
        System.out.println("[restart-test] final status " + finalStatus);

        // and a fresh TCC transaction works end to end
        GlobalTransaction fresh = GlobalTransactionContext.createNew();
        fresh.begin(30_000, Seata.uniqueName("tcc-after-restart"));
        String freshXid = fresh.getXid();
        long freshBranch = Seata.registerTccBranch(ACTION, freshXid, "after-restart");
        fresh.commit();
        assertEquals(GlobalStatus.Committed, fresh.getLocalStatus());
        List<Call> freshCalls = recorder.awaitPhaseTwo(freshXid, CallRecorder.COMMIT, Duration.ofSeconds(10),
            Duration.ofMillis(500));
        assertEquals(1, freshCalls.size(), freshCalls.toString());
        assertEquals(freshBranch, freshCalls.get(0).branchId());
    }
}
