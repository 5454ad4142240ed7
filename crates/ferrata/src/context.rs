//! The task-local transaction context (Seata's RootContext): the bound XID and branch type.
//! Binding is scoped: a future runs with a context, and whatever it replaced (suspended) is back
//! when that future finishes, panics or is dropped, so suspend/resume cannot be left unbalanced.

use std::future::Future;

use ferrata_proto::BranchType;
use tokio::task::futures::TaskLocalFuture;

/// HTTP header that carries the XID (Java's `RootContext.KEY_XID`); header names are
/// case-insensitive, so `tx_xid` matches too.
pub const XID_HEADER: &str = "TX_XID";
/// gRPC metadata keys must be lowercase; Java and Go use this spelling.
pub const XID_METADATA_KEY: &str = "tx_xid";
/// Carries the branch type name; inbound only `TCC` is honoured (semantics §8.1).
pub const BRANCH_TYPE_HEADER: &str = "TX_BRANCH_TYPE";
/// gRPC metadata spelling of [`BRANCH_TYPE_HEADER`].
pub const BRANCH_TYPE_METADATA_KEY: &str = "tx_branch_type";

tokio::task_local! {
    static CONTEXT: TxContext;
}

/// What is bound to the running task: the XID of the global transaction it works for, and the
/// branch type when a mode (e.g. TCC) has bound one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxContext {
    pub xid: Option<String>,
    pub branch_type: Option<BranchType>,
}

impl TxContext {
    /// The context of the running task (empty outside any scope).
    pub fn current() -> TxContext {
        CONTEXT.try_with(Clone::clone).unwrap_or_default()
    }

    /// Runs `fut` with this context bound. Use it to carry the context into `tokio::spawn`ed
    /// tasks, which do not inherit task-locals: `tokio::spawn(TxContext::current().scope(fut))`.
    pub fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<TxContext, F> {
        CONTEXT.scope(self, fut)
    }
}

/// The XID bound to the running task, if any.
pub fn current_xid() -> Option<String> {
    CONTEXT.try_with(|c| c.xid.clone()).ok().flatten()
}

/// The branch type bound to the running task, if any.
pub fn current_branch_type() -> Option<BranchType> {
    CONTEXT.try_with(|c| c.branch_type).ok().flatten()
}

/// True when the running task works inside a global transaction.
pub fn in_global_transaction() -> bool {
    current_xid().is_some()
}

/// Runs `fut` with `xid` bound (joining that global transaction). The branch type is not
/// inherited: it belongs to the previous transaction.
pub fn with_xid<F: Future>(xid: impl Into<String>, fut: F) -> TaskLocalFuture<TxContext, F> {
    CONTEXT.scope(
        TxContext {
            xid: Some(xid.into()),
            branch_type: None,
        },
        fut,
    )
}

/// Runs `fut` with no transaction bound: the current one is suspended for its duration and
/// resumed afterwards (what REQUIRES_NEW and NOT_SUPPORTED do).
pub fn without_xid<F: Future>(fut: F) -> TaskLocalFuture<TxContext, F> {
    CONTEXT.scope(TxContext::default(), fut)
}

/// Runs `fut` with `branch_type` bound, keeping the XID bound where it is awaited (a TCC try
/// binds TCC so that downstream calls carry `TX_BRANCH_TYPE=TCC` and local AT work registers no
/// branch). The XID is read when the returned future is first polled, so it can be nested in
/// [`with_xid`] as an argument.
pub async fn with_branch_type<F: Future>(branch_type: BranchType, fut: F) -> F::Output {
    let context = TxContext {
        xid: current_xid(),
        branch_type: Some(branch_type),
    };
    CONTEXT.scope(context, fut).await
}

/// Parses an inbound `TX_BRANCH_TYPE` value: only TCC is honoured, as Java's provider filters do.
pub fn inbound_branch_type(value: &str) -> Option<BranchType> {
    value
        .trim()
        .eq_ignore_ascii_case("TCC")
        .then_some(BranchType::Tcc)
}

/// The context a server should bind for an inbound request carrying `xid` and `branch_type`
/// header values; `None` when there is nothing to bind (blank or absent XID).
pub fn inbound_context(xid: Option<&str>, branch_type: Option<&str>) -> Option<TxContext> {
    let xid = xid.map(str::trim).filter(|x| !x.is_empty())?;
    Some(TxContext {
        xid: Some(xid.to_owned()),
        branch_type: branch_type.and_then(inbound_branch_type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scopes_nest_and_restore() {
        assert_eq!(current_xid(), None);
        with_xid("a:1:1", async {
            assert_eq!(current_xid().as_deref(), Some("a:1:1"));
            without_xid(async { assert_eq!(current_xid(), None) }).await;
            with_branch_type(BranchType::Tcc, async {
                assert_eq!(current_xid().as_deref(), Some("a:1:1"));
                assert_eq!(current_branch_type(), Some(BranchType::Tcc));
                with_xid("b:1:2", async { assert_eq!(current_branch_type(), None) }).await;
            })
            .await;
            assert_eq!(current_xid().as_deref(), Some("a:1:1"));
            let carried = TxContext::current();
            let spawned = tokio::spawn(carried.scope(async { current_xid() }));
            assert_eq!(spawned.await.ok().flatten().as_deref(), Some("a:1:1"));
        })
        .await;
        assert_eq!(current_xid(), None);
    }

    #[test]
    fn inbound_rules() {
        assert_eq!(inbound_context(Some("  "), None), None);
        assert_eq!(inbound_branch_type("tcc"), Some(BranchType::Tcc));
        assert_eq!(inbound_branch_type("AT"), None);
        let c = inbound_context(Some("h:1:2"), Some("TCC"));
        assert_eq!(c.and_then(|c| c.branch_type), Some(BranchType::Tcc));
    }
}
