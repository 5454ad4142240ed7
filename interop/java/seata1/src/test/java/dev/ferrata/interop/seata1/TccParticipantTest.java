package dev.ferrata.interop.seata1;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.TcServer;
import io.seata.core.context.RootContext;
import io.seata.core.model.BranchStatus;
import io.seata.core.model.BranchType;
import io.seata.core.model.GlobalStatus;
import io.seata.rm.DefaultResourceManager;
import io.seata.tm.DefaultTransactionManager;
import io.seata.tm.api.GlobalTransaction;
import io.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Scenario 4: a TCC participant whose phase two is delivered by the TC (commit, rollback,
 * several branches, context updated by BranchReport, rollback driven by the TC on timeout).
 */
class TccParticipantTest {

    static final String ACTION = "interopTccAction";
    static final Duration PHASE_TWO_TIMEOUT = Duration.ofSeconds(10);
    static final Duration SETTLE = Duration.ofMillis(1500);

    private static TcServer tc;
    private static final CallRecorder recorder = new CallRecorder();

    @BeforeAll
    static void startTcAndClients() throws Exception {
        tc = TcServer.forTestClass(TccParticipantTest.class);
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

    private static String describe(List<Call> calls) {
        return calls.stream().map(c -> c.phase() + "(branch " + c.branchId() + ", resource " + c.resourceId() + ")")
            .collect(Collectors.joining(", ", "[", "]"));
    }

    @Test
    void commitDeliversPhaseTwoCommitExactlyOnce() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("tcc-commit"));
        String xid = tx.getXid();
        String probe = UUID.randomUUID().toString();
        long branchId = Seata.registerTccBranch(ACTION, xid, probe);
        assertTrue(branchId > 0, "branch id must be positive, got " + branchId);
        assertEquals(GlobalStatus.Begin, Seata.status(xid));

        tx.commit();
        assertEquals(GlobalStatus.Committed, tx.getLocalStatus(),
            "TCC branches are committed synchronously: GlobalCommitResponse must say Committed");

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a commit) for " + xid + ", got "
            + describe(calls));
        Call call = calls.get(0);
        assertEquals(CallRecorder.COMMIT, call.phase());
        assertEquals(xid, call.xid());
        assertEquals(branchId, call.branchId(), "BranchCommitRequest branch id");
        assertEquals(ACTION, call.resourceId(), "BranchCommitRequest resource id");
        assertEquals(probe, call.context().get("probe"),
            "applicationData (actionContext) must reach phase two unchanged; context was " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.ROLLBACK).isEmpty(), "rollback must never run on commit");
    }

    @Test
    void rollbackDeliversPhaseTwoRollbackExactlyOnce() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("tcc-rollback"));
        String xid = tx.getXid();
        String probe = UUID.randomUUID().toString();
        long branchId = Seata.registerTccBranch(ACTION, xid, probe);

        tx.rollback();
        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(), "GlobalRollbackResponse status");

        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.ROLLBACK, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), "expected exactly one phase-two call (a rollback) for " + xid + ", got "
            + describe(calls));
        Call call = calls.get(0);
        assertEquals(CallRecorder.ROLLBACK, call.phase());
        assertEquals(branchId, call.branchId(), "BranchRollbackRequest branch id");
        assertEquals(ACTION, call.resourceId(), "BranchRollbackRequest resource id");
        assertEquals(probe, call.context().get("probe"), "actionContext in phase two: " + call.context());
        assertTrue(recorder.forXid(xid, CallRecorder.COMMIT).isEmpty(), "commit must never run on rollback");
    }

    @Test
    void twoBranchesAreEachCommittedAndRolledBackOnce() throws Exception {
        // commit: both branches exactly once
        GlobalTransaction c = GlobalTransactionContext.getCurrentOrCreate();
        c.begin(30_000, Seata.uniqueName("tcc-two-commit"));
        String cx = c.getXid();
        long c1 = Seata.registerTccBranch(ACTION, cx, "c1");
        long c2 = Seata.registerTccBranch(ACTION, cx, "c2");
        assertNotEquals(c1, c2, "branch ids must differ");
        c.commit();
        assertEquals(GlobalStatus.Committed, c.getLocalStatus());
        Duration settle = Duration.ofMillis(200);
        recorder.awaitPhaseTwo(cx, CallRecorder.COMMIT, PHASE_TWO_TIMEOUT, settle);
        List<Call> commits = awaitCount(cx, CallRecorder.COMMIT, 2);
        assertEquals(List.of(c1, c2).stream().sorted().collect(Collectors.toList()),
            commits.stream().map(Call::branchId).sorted().collect(Collectors.toList()),
            "each branch committed exactly once: " + describe(recorder.forXid(cx)));
        assertTrue(recorder.forXid(cx, CallRecorder.ROLLBACK).isEmpty());

        // rollback: both branches once each. Order is not asserted: seata-server 2.0.0 rolls back
        // in registration order, later versions newest first; it is printed for information.
        GlobalTransaction r = GlobalTransactionContext.getCurrentOrCreate();
        r.begin(30_000, Seata.uniqueName("tcc-two-rollback"));
        String rx = r.getXid();
        long r1 = Seata.registerTccBranch(ACTION, rx, "r1");
        long r2 = Seata.registerTccBranch(ACTION, rx, "r2");
        r.rollback();
        assertEquals(GlobalStatus.Rollbacked, r.getLocalStatus());
        List<Call> rollbacks = awaitCount(rx, CallRecorder.ROLLBACK, 2);
        assertEquals(List.of(r1, r2).stream().sorted().collect(Collectors.toList()),
            rollbacks.stream().map(Call::branchId).sorted().collect(Collectors.toList()),
            "each branch rolled back exactly once: " + describe(recorder.forXid(rx)));
        System.out.println("[tcc-test] rollback order (registered " + r1 + " then " + r2 + "): "
            + describe(rollbacks));
        assertTrue(recorder.forXid(rx, CallRecorder.COMMIT).isEmpty());
    }

    @Test
    void branchReportUpdatesContextSeenInPhaseTwo() throws Exception {
        // what the TCC interceptor does when the try method changed the action context
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("tcc-report"));
        String xid = tx.getXid();
        long branchId = Seata.registerTccBranch(ACTION, xid, "registered-value");
        DefaultResourceManager.get().branchReport(BranchType.TCC, xid, branchId, BranchStatus.Registered,
            Seata.tccApplicationData(ACTION, "reported-value"));

        tx.commit();
        assertEquals(GlobalStatus.Committed, tx.getLocalStatus());
        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, PHASE_TWO_TIMEOUT, SETTLE);
        assertEquals(1, calls.size(), describe(calls));
        assertEquals(branchId, calls.get(0).branchId());
        assertEquals("reported-value", calls.get(0).context().get("probe"),
            "BranchReport must replace the branch applicationData used for phase two; context was "
                + calls.get(0).context());
    }

    @Test
    void timedOutTransactionIsRolledBackByTheTc() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(1_000, Seata.uniqueName("tcc-timeout"));
        String xid = tx.getXid();
        long branchId = Seata.registerTccBranch(ACTION, xid, "timeout");
        RootContext.unbind(); // the TM never commits nor rolls back by itself

        // the TC notices the timeout and rolls the branch back without being asked
        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.ROLLBACK, Duration.ofSeconds(15), SETTLE);
        assertEquals(1, calls.size(), "one rollback, no commit, for the timed-out " + xid + ": " + describe(calls));
        assertEquals(branchId, calls.get(0).branchId());

        GlobalStatus status = Await.until("final status of timed-out " + xid, Duration.ofSeconds(10),
            Duration.ofMillis(250), () -> {
                GlobalStatus s = Seata.status(xid);
                return s == GlobalStatus.TimeoutRollbacked || s == GlobalStatus.Finished ? s : null;
            });
        System.out.println("[tcc-test] status of timed-out transaction after rollback: " + status);

        // a late commit from the TM must not commit anything
        GlobalStatus late = new DefaultTransactionManager().commit(xid);
        assertTrue(late != GlobalStatus.Committed && late != GlobalStatus.Committing
                && late != GlobalStatus.AsyncCommitting,
            "late GlobalCommit of a timed-out transaction answered " + late);
        Await.sleep(SETTLE);
        assertTrue(recorder.forXid(xid, CallRecorder.COMMIT).isEmpty(), "no commit after the timeout rollback");
    }

    private static List<Call> awaitCount(String xid, String phase, int count) {
        Await.condition(count + " " + phase + " calls for " + xid, PHASE_TWO_TIMEOUT,
            () -> recorder.forXid(xid, phase).size() >= count);
        Await.sleep(SETTLE);
        return recorder.forXid(xid, phase);
    }
}
