package dev.ferrata.interop.seata2;

/** {@link ClusterFailover} with the three nodes on PostgreSQL ({@code FERRATA_POSTGRES_URL}). */
class PostgresClusterFailoverTest extends ClusterFailover {

    @Override
    String databaseVariable() {
        return "FERRATA_POSTGRES_URL";
    }

    @Override
    String tag() {
        return "pg";
    }
}
