package dev.ferrata.interop.harness;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Configuration of the Seata Java client without Spring, as JVM system properties.
 *
 * <p>seata-all (1.x and 2.x alike) reads its settings through {@code ConfigurationFactory}: a
 * {@code registry.conf} (name from {@code -Dseata.config.name}, default "registry") and, for
 * {@code config.type=file}, the file named by {@code config.file.name}. Missing files yield an
 * empty configuration, and every lookup checks {@code System.getProperty(key)} first. Setting
 * the keys below as system properties before the first Seata class initialises is therefore a
 * complete configuration; no file has to exist, and the TC port can be chosen at run time.
 *
 * <p>The key names are identical in io.seata 1.x and org.apache.seata 2.x.
 */
public final class SeataClientConfig {

    public static final String TX_SERVICE_GROUP = "default_tx_group";
    public static final String CLUSTER = "default";

    private SeataClientConfig() {
    }

    /** The properties for a client that talks to the TC at {@code host:port}. */
    public static Map<String, String> forTc(String host, int port) {
        Map<String, String> p = new LinkedHashMap<>();
        // where the configuration and the registry come from: plain "file" (no Nacos, ZK, ...)
        p.put("config.type", "file");
        p.put("config.file.name", "file.conf"); // need not exist
        p.put("registry.type", "file");
        p.put("registry.file.name", "file.conf");
        // tx service group -> cluster -> TC address list (file registry)
        p.put("service.vgroupMapping." + TX_SERVICE_GROUP, CLUSTER);
        p.put("service." + CLUSTER + ".grouplist", host + ":" + port);
        p.put("service.disableGlobalTransaction", "false");
        p.put("service.enableDegrade", "false");
        p.put("client.tm.degradeCheck", "false");
        // keep failures fast; defaults are 30 s (TM) / 15 s (RM)
        p.put("transport.rpcTmRequestTimeout", "10000");
        p.put("transport.rpcRmRequestTimeout", "10000");
        // defaults spelled out: TM requests unbatched, RM requests batched (MergedWarpMessage)
        p.put("transport.enableTmClientBatchSendRequest", "false");
        p.put("transport.enableRmClientBatchSendRequest", "true");
        p.put("transport.heartbeat", "true");
        p.put("client.tm.commitRetryCount", "1");
        p.put("client.tm.rollbackRetryCount", "1");
        p.put("client.rm.reportRetryCount", "1");
        p.put("client.rm.tableMetaCheckEnable", "false");
        // no polling of config files that do not exist
        p.put("file.listener.enabled", "false");
        return p;
    }

    /**
     * The properties for a client that finds the TCs of {@code cluster} in a registry of Seata
     * type {@code registryType} ({@code etcd3}, {@code redis}, {@code zk}) at {@code serverAddr}:
     * {@link #forTc} without any grouplist.
     */
    public static Map<String, String> forRegistry(String registryType, String serverAddr, String cluster) {
        Map<String, String> p = forTc("unused", 0);
        p.remove("service." + CLUSTER + ".grouplist");
        p.remove("registry.file.name");
        p.put("registry.type", registryType);
        p.put("registry." + registryType + ".serverAddr", serverAddr);
        p.put("service.vgroupMapping." + TX_SERVICE_GROUP, cluster);
        return p;
    }

    /** Sets {@link #forRegistry} as system properties and returns them. */
    public static Map<String, String> applyRegistry(String registryType, String serverAddr, String cluster) {
        Map<String, String> p = forRegistry(registryType, serverAddr, cluster);
        p.forEach(System::setProperty);
        System.out.println("[tc-harness] Seata client system properties: " + p);
        return p;
    }

    /** Sets the properties for the TC as system properties and returns them. */
    public static Map<String, String> apply(TcServer tc) {
        return apply(tc.host(), tc.port());
    }

    /** Sets the properties for the TC at {@code host:port} as system properties and returns them. */
    public static Map<String, String> apply(String host, int port) {
        Map<String, String> p = forTc(host, port);
        p.forEach(System::setProperty);
        System.out.println("[tc-harness] Seata client system properties: " + p);
        return p;
    }
}
