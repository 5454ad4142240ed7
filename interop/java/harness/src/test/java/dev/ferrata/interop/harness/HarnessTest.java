package dev.ferrata.interop.harness;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Unit tests of the harness helpers (no TC needed). */
class HarnessTest {

    @Test
    void parsesXids() {
        assertEquals(new Xid("192.168.1.100", 8091, 2612341069705662465L), Xid.parse("192.168.1.100:8091:2612341069705662465"));
        assertEquals(new Xid("::1", 8091, 7L), Xid.parse("::1:8091:7"));
        assertThrows(IllegalArgumentException.class, () -> Xid.parse("8091:7"));
        assertThrows(IllegalArgumentException.class, () -> Xid.parse("host:port:7"));
        assertThrows(IllegalArgumentException.class, () -> Xid.parse("host:8091:x"));
    }

    @Test
    void findsFreePorts() {
        int port = FreePort.find();
        assertTrue(port > 0 && port < 65536);
    }

    @Test
    void clientConfigPointsAtTc() {
        Map<String, String> p = SeataClientConfig.forTc("127.0.0.1", 12345);
        assertEquals("default", p.get("service.vgroupMapping.default_tx_group"));
        assertEquals("127.0.0.1:12345", p.get("service.default.grouplist"));
        assertEquals("file", p.get("registry.type"));
        assertEquals("file", p.get("config.type"));
    }

    @Test
    void registryConfigNamesTheRegistryAndNoGrouplist() {
        Map<String, String> p = SeataClientConfig.forRegistry("etcd3", "http://127.0.0.1:2379", "east");
        assertEquals("etcd3", p.get("registry.type"));
        assertEquals("http://127.0.0.1:2379", p.get("registry.etcd3.serverAddr"));
        assertEquals("east", p.get("service.vgroupMapping.default_tx_group"));
        assertTrue(p.keySet().stream().noneMatch(k -> k.endsWith(".grouplist")), p.toString());
    }

    @Test
    void awaitIsBounded() {
        long t0 = System.nanoTime();
        assertThrows(AssertionError.class, () -> Await.until("never", Duration.ofMillis(300), Duration.ofMillis(50),
            () -> null));
        assertTrue(Duration.ofNanos(System.nanoTime() - t0).toMillis() < 5_000);
        assertEquals("x", Await.until("now", Duration.ofSeconds(1), Duration.ofMillis(10), () -> "x"));
    }
}
