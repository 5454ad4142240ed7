package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.SeataClientConfig;
import org.apache.seata.saga.engine.config.DbStateMachineConfig;
import org.apache.seata.saga.engine.impl.ProcessCtrlStateMachineEngine;
import org.apache.seata.saga.rm.StateMachineEngineHolder;
import org.apache.seata.saga.statelang.domain.StateMachineInstance;
import org.springframework.context.support.GenericApplicationContext;

import javax.sql.DataSource;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.util.HashMap;
import java.util.Map;

/**
 * seata-all's Saga state-machine engine ({@code ProcessCtrlStateMachineEngine} with
 * {@code DbStateMachineConfig}: Seata's {@code seata_state_*} tables on MariaDB, GlobalBegin and
 * GlobalReport to the TC, and the Saga resource {@code <application>#<group>} through which the TC
 * drives recovery) run as its own JVM for {@link SagaEngineTest}, so that it can be killed in the
 * middle of a saga and started again.
 *
 * <p>The machine is {@code saga/ferrata_purchase.json} (test resources): ReduceInventory, then
 * ReduceBalance; a failing balance step compensates the inventory. The two actions are Spring
 * beans that record every call in the table {@code saga_java_ledger (business_key, action)}.
 * The balance step's third argument says what it does: {@code ok}, {@code fail} (throws) or
 * {@code hang} (records {@code balance-hanging} and blocks, for the kill).
 *
 * <p>Protocol (stdout, one JSON line each): {@code {"ready":true}} once the engine is up; each
 * stdin line {@code machine businessKey mode} starts that machine and answers
 * {@code {"xid":…,"status":…,"compensation":…}}. Arguments:
 * {@code tcHost tcPort jdbcUrl user password timeoutMs}.
 */
public final class SagaEngineProcess {

    static final String APP_ID = "ferrata-interop-saga-engine";
    static final String LEDGER = "saga_java_ledger";

    private SagaEngineProcess() {
    }

    public static void main(String[] args) throws Exception {
        PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true,
            StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length != 6) {
            System.err.println("usage: SagaEngineProcess tcHost tcPort jdbcUrl user password timeoutMs");
            System.exit(2);
        }
        SeataClientConfig.forTc(args[0], Integer.parseInt(args[1])).forEach(System::setProperty);
        DataSource ds = JavaRmProcess.dataSource(args[2], args[3], args[4]);
        Ledger ledger = new Ledger(ds);

        GenericApplicationContext beans = new GenericApplicationContext();
        beans.registerBean("inventoryAction", InventoryAction.class, () -> new InventoryAction(ledger));
        beans.registerBean("balanceAction", BalanceAction.class, () -> new BalanceAction(ledger));
        beans.refresh();

        DbStateMachineConfig config = new DbStateMachineConfig();
        config.setDataSource(ds);
        config.setApplicationId(APP_ID);
        config.setTxServiceGroup(SeataClientConfig.TX_SERVICE_GROUP);
        config.setApplicationContext(beans);
        config.setResources(new String[] {"classpath*:saga/*.json"});
        config.setTransOperationTimeout(Integer.parseInt(args[5]));
        config.afterPropertiesSet();
        ProcessCtrlStateMachineEngine engine = new ProcessCtrlStateMachineEngine();
        engine.setStateMachineConfig(config);
        StateMachineEngineHolder.setStateMachineEngine(engine);
        protocol.println("{\"ready\":true}");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] words = line.trim().split("\\s+");
            if (words.length == 1 && words[0].equals("quit")) {
                break;
            }
            if (words.length != 3) {
                protocol.println("{\"error\":\"expected: machine businessKey mode\"}");
                continue;
            }
            Map<String, Object> params = new HashMap<>();
            params.put("businessKey", words[1]);
            params.put("count", 10);
            params.put("mode", words[2]);
            try {
                StateMachineInstance instance = engine.startWithBusinessKey(words[0], null, words[1], params);
                protocol.println("{\"xid\":\"" + JavaRmProcess.escape(instance.getId()) + "\",\"status\":\""
                    + instance.getStatus() + "\",\"compensation\":\"" + instance.getCompensationStatus() + "\"}");
            } catch (RuntimeException e) {
                e.printStackTrace();
                protocol.println("{\"error\":\"" + JavaRmProcess.escape(e.toString()) + "\"}");
            }
        }
        System.err.println("[saga-engine] stopping");
        System.exit(0);
    }

    /** Records what the actions did, in the database (it outlives a killed engine). */
    static final class Ledger {
        private final DataSource ds;

        Ledger(DataSource ds) {
            this.ds = ds;
        }

        void record(String businessKey, String action) {
            try (Connection c = ds.getConnection();
                 PreparedStatement st = c.prepareStatement("INSERT INTO " + LEDGER
                     + " (business_key, action) VALUES (?, ?)")) {
                st.setString(1, businessKey);
                st.setString(2, action);
                st.executeUpdate();
            } catch (SQLException e) {
                throw new IllegalStateException("ledger: " + e, e);
            }
        }
    }

    /** The inventory step and its compensation. */
    public static final class InventoryAction {
        private final Ledger ledger;

        InventoryAction(Ledger ledger) {
            this.ledger = ledger;
        }

        public boolean reduce(String businessKey, int count) {
            ledger.record(businessKey, "reduce-inventory");
            return true;
        }

        public boolean compensateReduce(String businessKey) {
            ledger.record(businessKey, "compensate-inventory");
            return true;
        }
    }

    /** The balance step (which can fail or hang) and its compensation. */
    public static final class BalanceAction {
        private final Ledger ledger;

        BalanceAction(Ledger ledger) {
            this.ledger = ledger;
        }

        public boolean reduce(String businessKey, int count, String mode) throws InterruptedException {
            if (mode.equals("hang")) {
                ledger.record(businessKey, "balance-hanging");
                Thread.sleep(600_000);
            }
            if (mode.equals("fail")) {
                ledger.record(businessKey, "balance-failed");
                throw new IllegalStateException("insufficient balance for " + businessKey);
            }
            ledger.record(businessKey, "reduce-balance");
            return true;
        }

        public boolean compensateReduce(String businessKey) {
            ledger.record(businessKey, "compensate-balance");
            return true;
        }
    }
}
