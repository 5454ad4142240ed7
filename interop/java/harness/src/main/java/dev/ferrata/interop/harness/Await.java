package dev.ferrata.interop.harness;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.function.BooleanSupplier;

/** Bounded polling helpers (every wait in the suite is bounded). */
public final class Await {
    private Await() {
    }

    /**
     * Calls {@code attempt} every {@code interval} until it returns a non-null value without
     * throwing, and returns that value. Fails with an AssertionError naming {@code what} and the
     * last exception once {@code timeout} has passed.
     */
    public static <T> T until(String what, Duration timeout, Duration interval, Callable<T> attempt) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Throwable last = null;
        int attempts = 0;
        while (true) {
            attempts++;
            try {
                T value = attempt.call();
                if (value != null) {
                    return value;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while waiting for " + what, e);
            } catch (Throwable t) {
                last = t;
            }
            if (System.nanoTime() - deadline >= 0) {
                throw new AssertionError("timed out after " + timeout.toMillis() + " ms (" + attempts
                    + " attempts) waiting for " + what
                    + (last == null ? "" : "; last error: " + describe(last)), last);
            }
            sleep(interval);
        }
    }

    /** Waits until {@code condition} holds; fails with an AssertionError after {@code timeout}. */
    public static void condition(String what, Duration timeout, BooleanSupplier condition) {
        until(what, timeout, Duration.ofMillis(100), () -> condition.getAsBoolean() ? Boolean.TRUE : null);
    }

    public static void sleep(Duration duration) {
        try {
            Thread.sleep(duration.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /** Class, message and causes of a throwable on one line. */
    public static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        Throwable cur = t;
        int depth = 0;
        while (cur != null && depth < 6) {
            if (depth > 0) {
                sb.append(" <- caused by ");
            }
            sb.append(cur.getClass().getName()).append(": ").append(cur.getMessage());
            cur = cur.getCause() == cur ? null : cur.getCause();
            depth++;
        }
        return sb.toString();
    }
}
