//! Seata's XA transaction id: format 9752, global transaction id = the XID, branch qualifier =
//! `-` followed by the branch id — the layout seata-all's `XABranchXid` uses, so a prepared
//! branch is recognised whichever language prepared it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The format id of every XA id Seata's resource managers create.
pub const SEATA_FORMAT_ID: i32 = 9752;

/// The XA id of one branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XaId {
    /// The global transaction's XID (`host:port:id`).
    pub xid: String,
    pub branch_id: i64,
}

impl XaId {
    pub fn new(xid: impl Into<String>, branch_id: i64) -> XaId {
        XaId {
            xid: xid.into(),
            branch_id,
        }
    }

    /// The address of the TC node that began the transaction: the XID up to its last `:`.
    pub fn tc_address(&self) -> &str {
        self.xid.rsplit_once(':').map_or("", |(address, _)| address)
    }

    /// The global transaction id part (gtrid).
    pub fn gtrid(&self) -> &[u8] {
        self.xid.as_bytes()
    }

    /// The branch qualifier part (bqual): `-<branch id>`.
    pub fn bqual(&self) -> String {
        format!("-{}", self.branch_id)
    }

    /// The id as MySQL's XA statements take it: `X'<gtrid>',X'<bqual>',9752` (hex literals,
    /// as Connector/J writes them, so no byte of the XID needs quoting).
    pub fn mysql_literal(&self) -> String {
        format!(
            "X'{}',X'{}',{SEATA_FORMAT_ID}",
            hex(self.gtrid()),
            hex(self.bqual().as_bytes())
        )
    }

    /// The id as PostgreSQL's `PREPARE TRANSACTION` takes it: PgJDBC's layout
    /// `<format>_<base64 gtrid>_<base64 bqual>`, so Java's and Rust's prepared branches look
    /// alike in `pg_prepared_xacts`.
    pub fn postgres_gid(&self) -> String {
        format!(
            "{SEATA_FORMAT_ID}_{}_{}",
            STANDARD.encode(self.gtrid()),
            STANDARD.encode(self.bqual())
        )
    }

    /// Reads a PostgreSQL gid back; `None` for one that is not a Seata XA id.
    pub fn from_postgres_gid(gid: &str) -> Option<XaId> {
        let mut parts = gid.splitn(3, '_');
        let format: i32 = parts.next()?.parse().ok()?;
        let gtrid = STANDARD.decode(parts.next()?).ok()?;
        let bqual = STANDARD.decode(parts.next()?).ok()?;
        XaId::from_parts(format, &gtrid, &bqual)
    }

    /// An id from its three parts (MySQL's `XA RECOVER` gives them); `None` unless it is a
    /// Seata XA id.
    pub fn from_parts(format: i32, gtrid: &[u8], bqual: &[u8]) -> Option<XaId> {
        if format != SEATA_FORMAT_ID {
            return None;
        }
        let xid = std::str::from_utf8(gtrid).ok()?;
        let branch_id = std::str::from_utf8(bqual)
            .ok()?
            .strip_prefix('-')?
            .parse()
            .ok()?;
        Some(XaId::new(xid, branch_id))
    }
}

impl std::fmt::Display for XaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.xid, self.bqual())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_seata_and_pgjdbc() {
        let id = XaId::new("10.0.0.1:8091:42", 7);
        assert_eq!(id.bqual(), "-7");
        assert_eq!(id.tc_address(), "10.0.0.1:8091");
        assert_eq!(id.to_string(), "10.0.0.1:8091:42-7");
        assert_eq!(
            id.mysql_literal(),
            "X'31302e302e302e313a383039313a3432',X'2d37',9752"
        );
        assert_eq!(id.postgres_gid(), "9752_MTAuMC4wLjE6ODA5MTo0Mg==_LTc=");
        assert_eq!(
            XaId::from_postgres_gid(&id.postgres_gid()),
            Some(id.clone())
        );
        assert_eq!(XaId::from_parts(9752, id.gtrid(), b"-7"), Some(id));
    }

    #[test]
    fn foreign_ids_are_not_seata_ids() {
        assert_eq!(XaId::from_parts(1, b"x", b"-1"), None);
        assert_eq!(XaId::from_parts(9752, b"x", b"1"), None);
        assert_eq!(XaId::from_postgres_gid("some_gid"), None);
        assert_eq!(XaId::from_postgres_gid("9752_!!_LTc="), None);
    }
}
