package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.TcServer;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Client authentication refused: ferrata-server with [auth] on, the TM signs with the right
 * access key but a wrong secret key (passed to TMClient.init). The TC answers the registration
 * with identified=false and logs why; the client then cannot begin ("No available service":
 * it retries the registration only on its reconnect timer, 60 s after init and every 10 s).
 * 2.x clients fail already in TMClient.init (transport.enableTmClientChannelCheckFailFast is
 * true by default); 1.x clients log the failed registration there and fail at begin.
 */
class AuthRefusedTest {

    static final String WRONG_SECRET = "not-the-interop-secret";

    private static TcServer tc;
    private static Throwable initFailure;

    @BeforeAll
    static void startTcAndClient() {
        // A Ferrata feature: seata-server never checks signatures and takes no TOML file.
        Assumptions.assumeFalse(TcServer.referenceTcConfigured(), "the reference TC has no client authentication");
        tc = TcServer.managedWithConfig(AuthRefusedTest.class, "client authentication", Seata.authToml());
        try {
            Seata.initTm(tc, Seata.ACCESS_KEY, WRONG_SECRET);
        } catch (RuntimeException e) {
            initFailure = e;
            System.out.println("[auth] TMClient.init failed as expected: " + e);
        }
    }

    @AfterAll
    static void stopTc() {
        Seata.clearContext();
        if (tc != null) {
            tc.close();
        }
    }

    @Test
    void wrongSecretKeyIsRefused() {
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        Throwable begin = assertThrows(Throwable.class, () -> tx.begin(10_000, Seata.uniqueName("auth-refused")),
            "begin must fail when the TM registration is refused");
        System.out.println("[auth] begin failed as expected: " + begin + " (init: " + initFailure + ")");
        assertNull(tx.getXid(), "no xid after a refused registration");
        Await.condition("the TC logs the refusal", Duration.ofSeconds(10),
            () -> tc.log().contains("wrong signature for access key \"" + Seata.ACCESS_KEY + "\""));
        assertFalse(tc.log().contains(WRONG_SECRET), "the TC never logs a secret key");
        assertFalse(tc.log().contains(Seata.SECRET_KEY), "the TC never logs a secret key");
    }
}
