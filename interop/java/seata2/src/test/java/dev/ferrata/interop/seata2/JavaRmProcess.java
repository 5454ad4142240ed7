package dev.ferrata.interop.seata2;

import dev.ferrata.interop.harness.SeataClientConfig;
import org.apache.seata.core.context.RootContext;
import org.apache.seata.core.model.Resource;
import org.apache.seata.rm.RMClient;
import org.apache.seata.rm.datasource.DataSourceProxy;
import org.apache.seata.rm.datasource.SeataDataSourceProxy;
import org.apache.seata.rm.datasource.xa.DataSourceProxyXA;

import javax.sql.DataSource;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A Java resource manager run as its own JVM ({@code main}), for {@link AtInterchangeTest},
 * {@link AtMixedTransactionTest} (AT) and {@link XaTransactionTest} (XA): seata-all's real
 * {@link DataSourceProxy} (AT) or {@link DataSourceProxyXA} (XA) over Connector/J
 * ({@code jdbc:mysql:}) or PgJDBC ({@code jdbc:postgresql:}), registered with the TC under the
 * resource id the proxy derives from the JDBC URL, with its own RM client (application
 * {@link #APP_ID}).
 *
 * <p>It speaks the same stdin/stdout line protocol as {@code ferrata-interop-peer at}: once the
 * RM client is connected and the resource registered it prints
 * {@code {"ready":true,"resource_id":"…"}}; each line {@code {"xid":"…","sql":["…",…]}} runs the
 * statements through the proxy in one local transaction bound to that XID and commits it
 * (phase one: branch registered, undo log written by Java) and answers
 * {@code {"ok":true,"rows":[…]}} or {@code {"ok":false,"error":"…"}}; {@code quit} or end of
 * input exits the JVM, which closes its RM connection. Between commands it answers phase-two
 * requests with Seata's own undo executors (AT) or XA COMMIT / XA ROLLBACK (XA). In XA mode
 * phase one ends prepared: the local commit is XA END + XA PREPARE. Logs go to stderr.
 *
 * <p>Arguments: {@code tcHost tcPort jdbcUrl user password undoTable [at|xa]} (the undo table
 * is unused in XA mode).
 */
public final class JavaRmProcess {

    static final String APP_ID = "ferrata-interop-java-at-rm";

    private JavaRmProcess() {
    }

    public static void main(String[] args) throws Exception {
        // stdout carries the protocol only: everything else (logback's console appender too,
        // which is set up later) goes to stderr
        PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true,
            StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length != 6 && !(args.length == 7 && (args[6].equals("at") || args[6].equals("xa")))) {
            System.err.println("usage: JavaRmProcess tcHost tcPort jdbcUrl user password undoTable [at|xa]");
            System.exit(2);
        }
        SeataClientConfig.forTc(args[0], Integer.parseInt(args[1])).forEach(System::setProperty);
        System.setProperty("client.undo.logTable", args[5]);
        DataSource plain = dataSource(args[2], args[3], args[4]);
        boolean xa = args.length == 7 && args[6].equals("xa");
        SeataDataSourceProxy proxy = xa ? new DataSourceProxyXA(plain) : new DataSourceProxy(plain);
        RMClient.init(APP_ID, SeataClientConfig.TX_SERVICE_GROUP);
        protocol.println("{\"ready\":true,\"resource_id\":\"" + escape(((Resource) proxy).getResourceId()) + "\"}");

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            if (line.equals("quit")) {
                break;
            }
            protocol.println(execute(proxy, line));
        }
        System.err.println("[java-rm] stopping");
        System.exit(0);
    }

    /** A plain JDBC data source for a {@code jdbc:mysql:} or {@code jdbc:postgresql:} URL. */
    static DataSource dataSource(String url, String user, String password) {
        if (url.startsWith("jdbc:mysql:")) {
            com.mysql.cj.jdbc.MysqlDataSource ds = new com.mysql.cj.jdbc.MysqlDataSource();
            ds.setURL(url);
            ds.setUser(user);
            ds.setPassword(password);
            return ds;
        }
        if (url.startsWith("jdbc:postgresql:")) {
            org.postgresql.ds.PGSimpleDataSource ds = new org.postgresql.ds.PGSimpleDataSource();
            ds.setURL(url);
            ds.setUser(user);
            ds.setPassword(password);
            return ds;
        }
        throw new IllegalArgumentException("unsupported JDBC URL " + url);
    }

    /** One command: the statements as one branch of the command's XID. */
    private static String execute(SeataDataSourceProxy proxy, String line) {
        String xid;
        List<String> statements = new ArrayList<>();
        try {
            Map<String, Object> command = MixedLanguageTest.Json.object(line);
            xid = (String) command.get("xid");
            for (Object sql : (List<?>) command.get("sql")) {
                statements.add((String) sql);
            }
        } catch (RuntimeException e) {
            return error("bad command: " + e);
        }
        System.err.println("[java-rm] branch of " + xid + ": " + statements);
        RootContext.bind(xid);
        try (Connection conn = proxy.getConnection()) {
            conn.setAutoCommit(false);
            List<Integer> rows = new ArrayList<>();
            try (Statement st = conn.createStatement()) {
                for (String sql : statements) {
                    rows.add(st.executeUpdate(sql));
                }
                conn.commit();
            } catch (SQLException | RuntimeException e) {
                e.printStackTrace();
                conn.rollback();
                return error(e.toString());
            }
            StringBuilder sb = new StringBuilder("{\"ok\":true,\"rows\":[");
            for (int i = 0; i < rows.size(); i++) {
                sb.append(i == 0 ? "" : ",").append(rows.get(i));
            }
            return sb.append("]}").toString();
        } catch (SQLException | RuntimeException e) {
            e.printStackTrace();
            return error(e.toString());
        } finally {
            RootContext.unbind();
        }
    }

    private static String error(String message) {
        return "{\"ok\":false,\"error\":\"" + escape(message) + "\"}";
    }

    static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        return sb.toString();
    }
}
