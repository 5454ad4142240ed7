package dev.ferrata.interop.seata2;

/** {@link ClusterFailover} with the three nodes on MariaDB ({@code FERRATA_MYSQL_URL}). */
class MariaDbClusterFailoverTest extends ClusterFailover {

    @Override
    String databaseVariable() {
        return "FERRATA_MYSQL_URL";
    }

    @Override
    String tag() {
        return "my";
    }
}
