package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.SeataClientConfig;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.rm.RMClient;
import org.apache.seata.rm.datasource.DataSourceProxy;
import org.apache.seata.tm.TMClient;
import org.apache.seata.tm.api.GlobalTransaction;
import org.apache.seata.tm.api.GlobalTransactionContext;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The Java side of {@code ferrata-bench at-transfer --mode java} (scripts/bench-at): the same
 * two-database transfer as the Rust workload, with seata-all's {@link DataSourceProxy} over
 * Connector/J (MariaDB) and PgJDBC (PostgreSQL). Each transaction begins a global transaction,
 * runs {@code UPDATE at_bench_account SET balance = balance - ? WHERE id = ?} on MariaDB and
 * commits that local transaction (an AT branch), the matching credit on PostgreSQL, and commits
 * globally. Each worker thread keeps its two proxied connections (auto-commit off) and prepared
 * statements for the whole run: no pool, no per-transaction connection setup.
 *
 * <p>stdout carries only: {@code window-start} and {@code window-end} around the measured window
 * (so the caller samples server CPU and database counters there), then one JSON line
 * {@code {"transactions":…,"errors":{…},"latency_us":{"count":…,"p50":…,…}}} of the
 * transactions that completed inside the window. Logs go to stderr.
 *
 * <p>Arguments: {@code tcHost tcPort mysqlJdbcUrl postgresJdbcUrl user password undoTable
 * concurrency warmupSecs durationSecs accounts}.
 */
public final class AtTransferBench {

    static final String DEBIT = "UPDATE at_bench_account SET balance = balance - ? WHERE id = ?";
    static final String CREDIT = "UPDATE at_bench_account SET balance = balance + ? WHERE id = ?";

    private AtTransferBench() {
    }

    /** One worker's results: latencies (µs) of transactions that completed in the window. */
    static final class Worker extends Thread {
        final DataSourceProxy left;
        final DataSourceProxy right;
        final long accounts;
        final AtomicBoolean stop;
        volatile long windowStart = Long.MAX_VALUE;
        volatile long windowEnd = Long.MAX_VALUE;
        long[] latencies = new long[1 << 12];
        int count;
        final Map<String, Long> errors = new TreeMap<>();

        Worker(DataSourceProxy left, DataSourceProxy right, long accounts, AtomicBoolean stop) {
            this.left = left;
            this.right = right;
            this.accounts = accounts;
            this.stop = stop;
        }

        @Override
        public void run() {
            try (Connection l = left.getConnection(); Connection r = right.getConnection()) {
                l.setAutoCommit(false);
                r.setAutoCommit(false);
                PreparedStatement debit = l.prepareStatement(DEBIT);
                PreparedStatement credit = r.prepareStatement(CREDIT);
                ThreadLocalRandom random = ThreadLocalRandom.current();
                while (!stop.get()) {
                    long from = random.nextLong(accounts);
                    long to = random.nextLong(accounts);
                    long amount = 1 + random.nextLong(100);
                    long started = System.nanoTime();
                    String failed = transfer(l, r, debit, credit, from, to, amount);
                    long now = System.nanoTime();
                    if (now >= windowStart && now < windowEnd) {
                        if (failed == null) {
                            if (count == latencies.length) {
                                latencies = Arrays.copyOf(latencies, count * 2);
                            }
                            latencies[count++] = (now - started + 500) / 1000;
                        } else {
                            errors.merge(failed, 1L, Long::sum);
                        }
                    }
                    if (now >= windowEnd) {
                        break;
                    }
                }
            } catch (Exception e) {
                e.printStackTrace();
                errors.merge("worker_died", 1L, Long::sum);
            }
        }

        private static String transfer(Connection l, Connection r, PreparedStatement debit,
                PreparedStatement credit, long from, long to, long amount) {
            GlobalTransaction tx = GlobalTransactionContext.getCurrentOrCreate();
            try {
                tx.begin(60_000, "at-transfer");
            } catch (Exception e) {
                e.printStackTrace();
                return "begin";
            }
            String step = "debit";
            try {
                debit.setLong(1, amount);
                debit.setLong(2, from);
                debit.executeUpdate();
                l.commit();
                step = "credit";
                credit.setLong(1, amount);
                credit.setLong(2, to);
                credit.executeUpdate();
                r.commit();
                step = "commit";
                tx.commit();
                return null;
            } catch (Exception e) {
                e.printStackTrace();
                try {
                    l.rollback();
                    r.rollback();
                } catch (Exception ignored) {
                    // the connection is rolled back or broken either way
                }
                try {
                    tx.rollback();
                } catch (Exception ignored) {
                    // the TC rolls it back on its timeout
                }
                return step;
            } finally {
                RootContext.unbind();
            }
        }
    }

    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true,
            StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length != 11) {
            System.err.println("usage: AtTransferBench tcHost tcPort mysqlJdbcUrl postgresJdbcUrl user "
                + "password undoTable concurrency warmupSecs durationSecs accounts");
            System.exit(2);
        }
        SeataClientConfig.forTc(args[0], Integer.parseInt(args[1])).forEach(System::setProperty);
        System.setProperty("client.undo.logTable", args[6]);
        int concurrency = Integer.parseInt(args[7]);
        double warmup = Double.parseDouble(args[8]);
        double duration = Double.parseDouble(args[9]);
        long accounts = Long.parseLong(args[10]);
        String appId = "ferrata-at-transfer-java";
        TMClient.init(appId, SeataClientConfig.TX_SERVICE_GROUP);
        DataSourceProxy left = new DataSourceProxy(JavaRmProcess.dataSource(args[2], args[4], args[5]));
        DataSourceProxy right = new DataSourceProxy(JavaRmProcess.dataSource(args[3], args[4], args[5]));
        RMClient.init(appId, SeataClientConfig.TX_SERVICE_GROUP);

        AtomicBoolean stop = new AtomicBoolean();
        Worker[] workers = new Worker[concurrency];
        for (int i = 0; i < concurrency; i++) {
            workers[i] = new Worker(left, right, accounts, stop);
            workers[i].start();
        }
        long origin = System.nanoTime();
        long start = origin + (long) (warmup * 1e9);
        long end = start + (long) (duration * 1e9);
        for (Worker w : workers) {
            w.windowStart = start;
            w.windowEnd = end;
        }
        sleepUntil(start);
        out.println("window-start");
        sleepUntil(end);
        out.println("window-end");
        stop.set(true);
        for (Worker w : workers) {
            w.join();
        }
        long[] all = new long[Arrays.stream(workers).mapToInt(w -> w.count).sum()];
        int n = 0;
        Map<String, Long> errors = new TreeMap<>();
        for (Worker w : workers) {
            System.arraycopy(w.latencies, 0, all, n, w.count);
            n += w.count;
            w.errors.forEach((k, v) -> errors.merge(k, v, Long::sum));
        }
        Arrays.sort(all);
        StringBuilder json = new StringBuilder("{\"transactions\":").append(all.length).append(",\"errors\":{");
        int i = 0;
        for (Map.Entry<String, Long> e : errors.entrySet()) {
            json.append(i++ == 0 ? "" : ",").append('"').append(e.getKey()).append("\":").append(e.getValue());
        }
        json.append("},\"latency_us\":");
        if (all.length == 0) {
            json.append("null");
        } else {
            double mean = Arrays.stream(all).average().orElse(0);
            json.append("{\"count\":").append(all.length)
                .append(",\"p50\":").append(quantile(all, 0.50))
                .append(",\"p90\":").append(quantile(all, 0.90))
                .append(",\"p99\":").append(quantile(all, 0.99))
                .append(",\"p999\":").append(quantile(all, 0.999))
                .append(",\"max\":").append(all[all.length - 1])
                .append(",\"mean\":").append(Math.round(mean * 10) / 10.0).append('}');
        }
        out.println(json.append('}'));
        System.exit(0);
    }

    private static long quantile(long[] sorted, double q) {
        int index = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, index))];
    }

    private static void sleepUntil(long nanos) throws InterruptedException {
        long left;
        while ((left = nanos - System.nanoTime()) > 0) {
            Thread.sleep(Math.max(1, left / 1_000_000));
        }
    }
}
