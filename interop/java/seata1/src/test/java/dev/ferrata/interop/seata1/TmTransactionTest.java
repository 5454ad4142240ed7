package dev.ferrata.interop.seata1;

import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import io.seata.core.context.RootContext;
import io.seata.core.model.GlobalStatus;
import io.seata.tm.DefaultTransactionManager;
import io.seata.tm.api.GlobalTransaction;
import io.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Scenarios 1-3: TM begin/commit, begin/rollback, status queries. */
class TmTransactionTest {

    private static TcServer tc;

    @BeforeAll
    static void startTc() {
        tc = TcServer.forTestClass(TmTransactionTest.class);
        Seata.initTm(tc);
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

    /** The XID is host:port:id with the TC's RPC port and a positive transaction id. */
    private static Xid assertXidShape(String xid) {
        assertNotNull(xid, "begin returned no xid");
        Xid parsed;
        try {
            parsed = Xid.parse(xid);
        } catch (IllegalArgumentException e) {
            throw new AssertionError("XID '" + xid + "' is not host:port:number", e);
        }
        assertFalse(parsed.host().isBlank(), "XID host is empty: " + xid);
        assertEquals(tc.port(), parsed.port(), "XID port must be the TC's port " + tc.port() + ": " + xid);
        assertTrue(parsed.transactionId() > 0, "XID transaction id must be positive: " + xid);
        assertTrue(xid.length() <= 128, "XID longer than 128 characters: " + xid);
        return parsed;
    }

    @Test
    void beginThenCommitEndsCommitted() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("commit"));
        String xid = tx.getXid();
        assertXidShape(xid);
        assertEquals(xid, RootContext.getXID(), "begin must bind the xid to the thread");
        assertEquals(GlobalStatus.Begin, Seata.status(xid), "status right after begin");

        tx.commit();

        assertEquals(GlobalStatus.Committed, tx.getLocalStatus(), "GlobalCommitResponse status for " + xid);
        assertNull(RootContext.getXID(), "commit must unbind the xid");
        GlobalStatus after = Seata.status(xid);
        // a branchless transaction may be finished through the async-commit path (the Java TC
        // reports AsyncCommitting until its 1 s async task removed the session)
        assertTrue(Set.of(GlobalStatus.Committed, GlobalStatus.AsyncCommitting, GlobalStatus.Finished).contains(after),
            "status of a committed transaction must be Committed, AsyncCommitting or Finished (session removed), got "
                + after);
    }

    @Test
    void beginThenRollbackEndsRollbacked() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("rollback"));
        String xid = tx.getXid();
        assertXidShape(xid);

        tx.rollback();

        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus(), "GlobalRollbackResponse status for " + xid);
        assertNull(RootContext.getXID(), "rollback must unbind the xid");
        GlobalStatus after = Seata.status(xid);
        assertTrue(Set.of(GlobalStatus.Rollbacked, GlobalStatus.Finished).contains(after),
            "status of a rolled back transaction must be Rollbacked or Finished (session removed), got " + after);
    }

    @Test
    void statusOfLiveTransactionIsBegin() throws Exception {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("status-live"));
        String xid = tx.getXid();
        try {
            assertEquals(GlobalStatus.Begin, tx.getStatus(), "GlobalTransaction.getStatus() of a live transaction");
            assertEquals(GlobalStatus.Begin, new DefaultTransactionManager().getStatus(xid),
                "GlobalStatusRequest of a live transaction");
        } finally {
            tx.rollback();
        }
        assertEquals(GlobalStatus.Rollbacked, tx.getLocalStatus());
    }

    @Test
    void statusOfUnknownXidIsFinished() throws Exception {
        String unknown = tc.host() + ":" + tc.port() + ":" + (4_000_000_000_000L + System.nanoTime() % 1_000_000L);
        assertEquals(GlobalStatus.Finished, Seata.status(unknown), "GlobalStatusRequest for unknown xid " + unknown);
    }

    @Test
    void commitAndRollbackOfUnknownXidReportFinished() throws Exception {
        DefaultTransactionManager tm = new DefaultTransactionManager();
        String unknown = tc.host() + ":" + tc.port() + ":" + (5_000_000_000_000L + System.nanoTime() % 1_000_000L);
        assertEquals(GlobalStatus.Finished, tm.commit(unknown), "GlobalCommitRequest for unknown xid " + unknown);
        assertEquals(GlobalStatus.Finished, tm.rollback(unknown), "GlobalRollbackRequest for unknown xid " + unknown);
    }

    @Test
    void concurrentTransactionsGetDistinctXids() throws Exception {
        GlobalTransaction a = GlobalTransactionContext.createNew();
        a.begin(30_000, Seata.uniqueName("distinct-a"));
        RootContext.unbind();
        GlobalTransaction b = GlobalTransactionContext.createNew();
        b.begin(30_000, Seata.uniqueName("distinct-b"));
        RootContext.unbind();
        try {
            Xid xa = assertXidShape(a.getXid());
            Xid xb = assertXidShape(b.getXid());
            assertNotEquals(xa.transactionId(), xb.transactionId(), "two transactions share an id");
            assertEquals(GlobalStatus.Begin, Seata.status(a.getXid()));
            assertEquals(GlobalStatus.Begin, Seata.status(b.getXid()));
        } finally {
            a.rollback();
            b.commit();
        }
        assertEquals(GlobalStatus.Rollbacked, a.getLocalStatus());
        assertEquals(GlobalStatus.Committed, b.getLocalStatus());
    }
}
