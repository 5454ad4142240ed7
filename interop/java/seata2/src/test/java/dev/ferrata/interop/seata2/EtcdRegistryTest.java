package dev.ferrata.interop.seata2;

/** {@link RegistryFailover} with {@code registry.type = etcd3} (jetcd). */
class EtcdRegistryTest extends RegistryFailover {

    @Override
    String registryType() {
        return "etcd3";
    }

    @Override
    String clientServerAddr() {
        return service("FERRATA_ETCD_URL");
    }

    @Override
    String serverTable() {
        return "[registry.etcd3]\nendpoints = \"" + service("FERRATA_ETCD_URL") + "\"\nttl = \"2s\"\n";
    }
}
