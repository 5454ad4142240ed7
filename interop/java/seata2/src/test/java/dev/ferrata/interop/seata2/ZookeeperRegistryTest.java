package dev.ferrata.interop.seata2;

/** {@link RegistryFailover} with {@code registry.type = zk} (Curator in 2.x, zkclient in 1.x). */
class ZookeeperRegistryTest extends RegistryFailover {

    @Override
    String registryType() {
        return "zk";
    }

    @Override
    String clientServerAddr() {
        return service("FERRATA_ZOOKEEPER_ADDR");
    }

    @Override
    String serverTable() {
        return "[registry.zk]\nservers = \"" + service("FERRATA_ZOOKEEPER_ADDR") + "\"\nsession_timeout = \"2s\"\n";
    }
}
