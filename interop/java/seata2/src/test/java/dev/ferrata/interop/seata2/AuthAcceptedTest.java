package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.CallRecorder;
import dev.ferrata.interop.harness.CallRecorder.Call;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * Client authentication accepted: ferrata-server with [auth] on, the TM configured the plain
 * Java way (system properties seata.accesskey / seata.secretkey, read by the TM client when
 * TMClient.init gets no keys) signs its registration and can begin and commit. The RM cannot
 * sign (RegisterRM carries no signature in any Java version); ferrata-server admits it because
 * a signed TM of the same application is connected from the same host, and phase two reaches it.
 */
class AuthAcceptedTest {

    static final String ACTION = "interopAuthAction";

    private static TcServer tc;
    private static final CallRecorder recorder = new CallRecorder();

    @BeforeAll
    static void startTcAndClients() throws Exception {
        // A Ferrata feature: seata-server never checks signatures and takes no TOML file.
        Assumptions.assumeFalse(TcServer.referenceTcConfigured(), "the reference TC has no client authentication");
        tc = TcServer.managedWithConfig(AuthAcceptedTest.class, "client authentication", Seata.authToml());
        System.setProperty("seata.accesskey", Seata.ACCESS_KEY);
        System.setProperty("seata.secretkey", Seata.SECRET_KEY);
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

    @Test
    void signedTmCommitsAndItsRmGetsPhaseTwo() throws Exception {
        GlobalTransaction plain = GlobalTransactionContext.getCurrentOrCreate();
        plain.begin(30_000, Seata.uniqueName("auth-commit"));
        plain.commit();
        assertEquals(GlobalStatus.Committed, plain.getLocalStatus(), "commit of " + plain.getXid());

        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        tx.begin(30_000, Seata.uniqueName("auth-tcc"));
        String xid = tx.getXid();
        long branchId = Seata.registerTccBranch(ACTION, xid, "auth");
        tx.commit();
        assertEquals(GlobalStatus.Committed, tx.getLocalStatus(), "commit of " + xid);
        List<Call> calls = recorder.awaitPhaseTwo(xid, CallRecorder.COMMIT, Duration.ofSeconds(10), Duration.ofMillis(500));
        assertEquals(1, calls.size(), "exactly one phase-two call for " + xid + ": " + calls);
        assertEquals(branchId, calls.get(0).branchId());
        assertEquals(CallRecorder.COMMIT, calls.get(0).phase());

        String log = tc.log();
        assertFalse(log.contains("refusing registration"), "nothing refused; TC log:\n" + tc.tail(40));
        assertFalse(log.contains(Seata.SECRET_KEY), "the TC never logs the secret key");
    }
}
