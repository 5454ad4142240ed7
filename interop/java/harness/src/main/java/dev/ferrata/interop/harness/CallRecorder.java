package dev.ferrata.interop.harness;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

/**
 * Thread-safe record of phase-two callbacks (commit / rollback) that a participant received
 * from the TC, so tests can assert "exactly once, with this xid and branch id".
 */
public final class CallRecorder {

    /** One callback as the participant saw it. */
    public record Call(String phase, String xid, long branchId, String resourceId,
                       Map<String, Object> context, long atMillis, String thread) {
    }

    public static final String COMMIT = "commit";
    public static final String ROLLBACK = "rollback";

    private final List<Call> calls = new CopyOnWriteArrayList<>();

    public void record(String phase, String xid, long branchId, String resourceId, Map<String, Object> context) {
        Map<String, Object> copy = new HashMap<>();
        if (context != null) {
            context.forEach((k, v) -> {
                if (k != null && v != null) {
                    copy.put(k, v);
                }
            });
        }
        calls.add(new Call(phase, xid, branchId, resourceId, Map.copyOf(copy), System.currentTimeMillis(),
            Thread.currentThread().getName()));
    }

    public List<Call> all() {
        return List.copyOf(calls);
    }

    public List<Call> forXid(String xid) {
        return calls.stream().filter(c -> xid.equals(c.xid())).collect(Collectors.toList());
    }

    public List<Call> forXid(String xid, String phase) {
        return calls.stream().filter(c -> xid.equals(c.xid()) && phase.equals(c.phase()))
            .collect(Collectors.toList());
    }

    /**
     * Waits (bounded) until at least one {@code phase} call for {@code xid} arrived, then keeps
     * watching for {@code settle} to catch duplicate or contradictory deliveries, and returns
     * every call recorded for that xid.
     */
    public List<Call> awaitPhaseTwo(String xid, String phase, Duration timeout, Duration settle) {
        try {
            Await.condition(phase + " callback for " + xid, timeout, () -> !forXid(xid, phase).isEmpty());
        } catch (AssertionError e) {
            throw new AssertionError(e.getMessage() + "; callbacks recorded for this xid: " + forXid(xid)
                + "; all callbacks: " + calls, e);
        }
        Await.sleep(settle);
        return forXid(xid);
    }

    @Override
    public String toString() {
        return calls.toString();
    }
}
