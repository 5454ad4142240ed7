package dev.ferrata.interop.seata2;

/** {@link RegistryFailover} with {@code registry.type = redis} (jedis). */
class RedisRegistryTest extends RegistryFailover {

    @Override
    String registryType() {
        return "redis";
    }

    /** Seata's serverAddr is host:port, without the URL's scheme. */
    @Override
    String clientServerAddr() {
        String url = service("FERRATA_REDIS_URL");
        String hostPort = url.replaceFirst("^redis://", "");
        int slash = hostPort.indexOf('/');
        return slash < 0 ? hostPort : hostPort.substring(0, slash);
    }

    @Override
    String serverTable() {
        return "[registry.redis]\nurl = \"" + service("FERRATA_REDIS_URL") + "\"\nttl = \"2s\"\nrefresh = \"500ms\"\n";
    }
}
