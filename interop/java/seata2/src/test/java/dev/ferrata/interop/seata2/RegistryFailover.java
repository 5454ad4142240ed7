package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.Await;
import dev.ferrata.interop.harness.SeataClientConfig;
import dev.ferrata.interop.harness.TcServer;
import dev.ferrata.interop.harness.Xid;
import org.apache.seata.core.model.GlobalStatus;
import org.apache.seata.discovery.registry.RegistryFactory;
import org.apache.seata.tm.TMClient;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The official client configured with {@code registry.type} = a registry and no grouplist, in
 * front of two ferrata-server nodes (independent single-node servers, each with its own data
 * dir) that register themselves in that registry through {@code [registry]}: the client's
 * registry lookup lists both, transactions begin and commit, and after one node is killed with
 * SIGKILL new transactions begin and commit through the other. The registry is the one
 * scripts/services started; one subclass per registry type, since the Seata client is a JVM-wide
 * singleton bound to one registry.
 */
@Tag("registry")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class RegistryFailover {

    /** Bound on the client's recovery from the kill. */
    private static final Duration KILL_RECOVERY = Duration.ofSeconds(90);

    private TcServer first;
    private TcServer second;
    private String cluster;

    /** Seata's {@code registry.type}. */
    abstract String registryType();

    /** {@code registry.<type>.serverAddr} of the client. */
    abstract String clientServerAddr();

    /** The servers' {@code [registry.<type>]} table (with short lifetimes). */
    abstract String serverTable();

    /** A variable scripts/services exports; fails (never skips) without it. */
    static String service(String name) {
        String value = System.getenv(name);
        if (value == null || value.isBlank()) {
            throw new IllegalStateException(name + " is not set: this test needs the registry that "
                + "scripts/services starts (scripts/services start && eval \"$(scripts/services env)\")");
        }
        return value.trim();
    }

    @BeforeAll
    void startTwoNodesAndTheClient() {
        cluster = "interop-" + registryType() + "-" + ProcessHandle.current().pid() + "-" + System.nanoTime() % 100_000;
        String toml = "[registry]\ncluster = \"" + cluster + "\"\n" + serverTable();
        first = TcServer.managedNode(getClass(), "a", toml);
        second = TcServer.managedNode(getClass(), "b", toml);
        for (TcServer node : List.of(first, second)) {
            Await.condition(node.describe() + " registered in " + registryType(), Duration.ofSeconds(20),
                () -> node.log().lines().anyMatch(l -> l.contains(" registered") && l.contains(registryType())));
        }
        SeataClientConfig.applyRegistry(registryType(), clientServerAddr(), cluster);
        TMClient.init(Seata.APP_ID, Seata.GROUP);
    }

    @AfterAll
    void stopNodes() {
        for (TcServer node : new TcServer[] {first, second}) {
            if (node != null) {
                node.close();
            }
        }
    }

    /** The ports the client's registry lists for its group, sorted. */
    private static List<Integer> listedPorts() throws Exception {
        List<InetSocketAddress> listed = RegistryFactory.getInstance().lookup(Seata.GROUP);
        List<Integer> ports = new ArrayList<>();
        if (listed != null) {
            for (InetSocketAddress address : listed) {
                ports.add(address.getPort());
            }
        }
        return ports.stream().sorted().collect(Collectors.toList());
    }

    /** Begins and commits a transaction through the client; its XID. */
    private static Xid beginCommit() throws Exception {
        Seata.clearContext();
        GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
        try {
            tx.begin(30_000, Seata.uniqueName("registry"));
            String xid = tx.getXid();
            tx.commit();
            assertEquals(GlobalStatus.Committed, tx.getLocalStatus(), "commit of " + xid);
            return Xid.parse(xid);
        } finally {
            Seata.clearContext();
        }
    }

    @Test
    void findsBothNodesAndCarriesOnThroughOneWhenTheOtherIsKilled() throws Exception {
        List<Integer> both = List.of(first.port(), second.port()).stream().sorted().collect(Collectors.toList());
        Await.until("the client's " + registryType() + " lookup listing both nodes " + both,
            Duration.ofSeconds(30), Duration.ofMillis(200), () -> listedPorts().equals(both) ? Boolean.TRUE : null);
        Xid last = null;
        for (int i = 0; i < 5; i++) {
            last = beginCommit();
            assertTrue(both.contains(last.port()), "XID " + last + " names neither node " + both);
        }
        // Kill the node the client used last, so the kill is felt.
        TcServer victim = last.port() == first.port() ? first : second;
        TcServer survivor = victim == first ? second : first;
        victim.kill();

        // Until the client notices, a transaction may fail; then ten in a row must begin and
        // commit, each on the survivor. A 2.x client drops the killed TC when its registry says
        // so (seconds); 1.8 with etcd3 or redis only at its reconnect timer, which first fires
        // 60 s after init and then every 10 s, so the bound leaves room for that.
        List<String> failures = new ArrayList<>();
        long deadline = System.nanoTime() + KILL_RECOVERY.toNanos();
        int consecutive = 0;
        int failed = 0;
        while (consecutive < 10) {
            if (System.nanoTime() - deadline >= 0) {
                throw new AssertionError("no 10 transactions in a row through " + survivor.describe()
                    + " within " + KILL_RECOVERY.toSeconds() + " s of the kill; " + failed + " failures, the first: " + failures);
            }
            try {
                Xid xid = beginCommit();
                assertEquals(survivor.port(), xid.port(), "XID " + xid + " after the kill");
                consecutive++;
            } catch (Exception e) {
                consecutive = 0;
                if (failures.size() < 5) {
                    failures.add(Await.describe(e));
                }
                failed++;
                Await.sleep(Duration.ofMillis(200));
            }
        }
        System.out.println("[registry] " + failed + " failed attempt(s) after the kill, the first: " + failures);
        // The registry forgets the killed node once its entry's time to live is over.
        Await.until("the client's " + registryType() + " lookup listing only " + survivor.port(),
            Duration.ofSeconds(60), Duration.ofMillis(200),
            () -> listedPorts().equals(List.of(survivor.port())) ? Boolean.TRUE : null);
        survivor.assertAlive();
    }
}
