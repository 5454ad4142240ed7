package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.exception.TransactionException;
import org.apache.seata.core.exception.TransactionExceptionCode;
import org.apache.seata.core.model.BranchType;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.rm.DefaultResourceManager;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Scenario 5: two transactions contend for the same AT row lock. The RM is the real Seata RM
 * client with a recording AT resource manager in place of the datasource proxy.
 */
class AtLockConflictTest {

    private static TcServer tc;
    private static final CallRecorder recorder = new CallRecorder();

    @BeforeAll
    static void startTcAndClients() {
        tc = TcServer.forTestClass(AtLockConflictTest.class);
        Seata.initTm(tc);
        Seata.installAtResourceManager(new Seata.RecordingAtResourceManager(recorder), Seata.AT_RESOURCE_ID);
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

    private static GlobalTransaction beginDetached(String what) throws TransactionException {
        GlobalTransaction tx = GlobalTransactionContext.createNew();
        tx.begin(60_000, Seata.uniqueName(what));
        RootContext.unbind(); // the test drives two transactions from one thread
        return tx;
    }

    private static long registerAt(String xid, String lockKey) throws TransactionException {
        Long id = DefaultResourceManager.get().branchRegister(BranchType.AT, Seata.AT_RESOURCE_ID, null, xid,
            null, lockKey);
        assertNotNull(id, "branch id");
        return id;
    }

    private static boolean lockable(String xid, String lockKey) throws TransactionException {
        return DefaultResourceManager.get().lockQuery(BranchType.AT, Seata.AT_RESOURCE_ID, xid, lockKey);
    }

    private static String uniqueLockKey() {
        return "interop_t:" + ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
    }

    @Test
    void secondTransactionConflictsUntilFirstCommits() throws Exception {
        String lockKey = uniqueLockKey();
        GlobalTransaction tx1 = beginDetached("at-holder");
        GlobalTransaction tx2 = beginDetached("at-waiter");
        String xid1 = tx1.getXid();
        String xid2 = tx2.getXid();

        long b1 = registerAt(xid1, lockKey);
        assertTrue(b1 > 0, "branch id of the lock holder");

        TransactionException conflict = assertThrows(TransactionException.class, () -> registerAt(xid2, lockKey),
            "BranchRegister of " + lockKey + " by a second transaction must fail while " + xid1 + " holds it");
        assertEquals(TransactionExceptionCode.LockKeyConflict, conflict.getCode(),
            "exception code of the conflicting BranchRegister (message: " + conflict.getMessage() + ")");

        assertFalse(lockable(xid2, lockKey), "GlobalLockQuery for the waiter must report the row locked");
        assertTrue(lockable(xid1, lockKey), "GlobalLockQuery for the holder itself must report lockable");

        // a different row of the same table is not blocked
        long other = registerAt(xid2, uniqueLockKey());
        assertTrue(other > 0);

        tx1.commit();
        assertEquals(GlobalStatus.Committed, tx1.getLocalStatus(),
            "AT-only commit answers Committed (async phase two)");

        long b2 = Await.until("BranchRegister of " + lockKey + " by " + xid2 + " after " + xid1 + " committed",
            Duration.ofSeconds(10), Duration.ofMillis(200), () -> registerAt(xid2, lockKey));
        assertTrue(b2 > 0);
        assertTrue(lockable(xid2, lockKey), "the new holder can lock its own row");

        tx2.rollback();
        assertEquals(GlobalStatus.Rollbacked, tx2.getLocalStatus(), "rollback of the second transaction");

        // phase two reached the RM: rollback of both branches of tx2, commit of tx1's branch (async)
        List<Call> rolled = recorder.awaitPhaseTwo(xid2, CallRecorder.ROLLBACK, Duration.ofSeconds(10),
            Duration.ofMillis(500));
        Await.condition("rollback of both branches of " + xid2, Duration.ofSeconds(10),
            () -> recorder.forXid(xid2, CallRecorder.ROLLBACK).size() >= 2);
        rolled = recorder.forXid(xid2);
        assertEquals(List.of(b2, other).stream().sorted().collect(Collectors.toList()),
            rolled.stream().filter(c -> c.phase().equals(CallRecorder.ROLLBACK)).map(Call::branchId).sorted()
                .collect(Collectors.toList()),
            "each AT branch of " + xid2 + " rolled back exactly once: " + rolled);
        assertTrue(recorder.forXid(xid2, CallRecorder.COMMIT).isEmpty(), "no commit for rolled back " + xid2);
        assertTrue(rolled.stream().allMatch(c -> c.resourceId().equals(Seata.AT_RESOURCE_ID)), "resource id");

        List<Call> committed = recorder.awaitPhaseTwo(xid1, CallRecorder.COMMIT, Duration.ofSeconds(15),
            Duration.ofMillis(500));
        assertEquals(1, committed.size(), "tx1's AT branch committed exactly once (asynchronously): " + committed);
        assertEquals(b1, committed.get(0).branchId());

        // after the rollback the row is free for anyone
        assertTrue(lockable(xid1, lockKey), "row lock must be released after " + xid2 + " rolled back");
    }

    @Test
    void rollbackOfHolderReleasesLock() throws Exception {
        String lockKey = uniqueLockKey() + "," + ThreadLocalRandom.current().nextLong(1, Long.MAX_VALUE);
        GlobalTransaction holder = beginDetached("at-holder-rb");
        GlobalTransaction waiter = beginDetached("at-waiter-rb");
        long hb = registerAt(holder.getXid(), lockKey);

        TransactionException conflict = assertThrows(TransactionException.class,
            () -> registerAt(waiter.getXid(), lockKey));
        assertEquals(TransactionExceptionCode.LockKeyConflict, conflict.getCode(), conflict.getMessage());

        holder.rollback();
        assertEquals(GlobalStatus.Rollbacked, holder.getLocalStatus());
        List<Call> calls = recorder.awaitPhaseTwo(holder.getXid(), CallRecorder.ROLLBACK, Duration.ofSeconds(10),
            Duration.ofMillis(500));
        assertEquals(1, calls.size(), "one rollback for the holder's branch: " + calls);
        assertEquals(hb, calls.get(0).branchId());

        long wb = Await.until("BranchRegister after the holder rolled back", Duration.ofSeconds(10),
            Duration.ofMillis(200), () -> registerAt(waiter.getXid(), lockKey));
        assertTrue(wb > 0);
        waiter.commit();
        assertEquals(GlobalStatus.Committed, waiter.getLocalStatus());
    }
}
