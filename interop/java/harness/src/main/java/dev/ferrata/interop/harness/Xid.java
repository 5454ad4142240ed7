package dev.ferrata.interop.harness;

/**
 * A parsed Seata XID {@code <tc-host>:<tc-port>:<transactionId>}: the id is the text after
 * the last ':', the port the text between the two last ':' (so IPv6 hosts are tolerated).
 */
public record Xid(String host, int port, long transactionId) {

    /** Parses an XID; throws IllegalArgumentException with the offending text when malformed. */
    public static Xid parse(String xid) {
        if (xid == null) {
            throw new IllegalArgumentException("xid is null");
        }
        int last = xid.lastIndexOf(':');
        int prev = last > 0 ? xid.lastIndexOf(':', last - 1) : -1;
        if (last < 0 || prev <= 0) {
            throw new IllegalArgumentException("xid is not host:port:id: '" + xid + "'");
        }
        String host = xid.substring(0, prev);
        try {
            int port = Integer.parseInt(xid.substring(prev + 1, last));
            long id = Long.parseLong(xid.substring(last + 1));
            return new Xid(host, port, id);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("xid is not host:port:id with numeric port and id: '" + xid + "'", e);
        }
    }

    @Override
    public String toString() {
        return host + ":" + port + ":" + transactionId;
    }
}
