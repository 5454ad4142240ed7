package interop

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seata/seata-go/pkg/protocol/message"
	"github.com/seata/seata-go/pkg/remoting/getty"
	"github.com/seata/seata-go/pkg/tm"
)

var globalStatusNames = map[message.GlobalStatus]string{
	0: "UnKnown", 1: "Begin", 2: "Committing", 3: "CommitRetrying", 4: "Rollbacking",
	5: "RollbackRetrying", 6: "TimeoutRollbacking", 7: "TimeoutRollbackRetrying",
	8: "AsyncCommitting", 9: "Committed", 10: "CommitFailed", 11: "Rollbacked",
	12: "RollbackFailed", 13: "TimeoutRollbacked", 14: "TimeoutRollbackFailed",
	15: "Finished", 16: "CommitRetryTimeout", 17: "RollbackRetryTimeout",
}

func statusName(s message.GlobalStatus) string {
	if n, ok := globalStatusNames[s]; ok {
		return fmt.Sprintf("%s(%d)", n, s)
	}
	return fmt.Sprintf("GlobalStatus(%d)", s)
}

// queryGlobalStatus sends a GlobalStatusRequest (type 15) through seata-go's
// own remoting client (the TM API of this release has no status call).
func queryGlobalStatus(xid string) (message.GlobalStatus, error) {
	var st message.GlobalStatus
	err := bounded(clientCallTimeout, func() error {
		req := message.GlobalStatusRequest{
			AbstractGlobalEndRequest: message.AbstractGlobalEndRequest{Xid: xid},
		}
		res, err := getty.GetGettyRemotingClient().SendSyncRequest(req)
		if err != nil {
			return err
		}
		r, ok := res.(message.GlobalStatusResponse)
		if !ok {
			return fmt.Errorf("answer to GlobalStatusRequest is %T (%#v), want GlobalStatusResponse", res, res)
		}
		if r.ResultCode != message.ResultCodeSuccess {
			return fmt.Errorf("GlobalStatusResponse failed: errorCode=%v msg=%q status=%s",
				r.TransactionErrorCode, r.Msg, statusName(r.GlobalStatus))
		}
		st = r.GlobalStatus
		return nil
	})
	return st, err
}

// txResult is what one global transaction run through tm.WithGlobalTx left.
type txResult struct {
	err         error                // WithGlobalTx's return value
	xid         string               // XID seen inside the business function
	statusIn    message.GlobalStatus // GlobalStatus queried inside the transaction
	statusInErr error
	final       message.GlobalStatus // status from the TC's GlobalCommit/GlobalRollback answer
}

// runGlobalTx runs business inside tm.WithGlobalTx, bounded in time.
func runGlobalTx(t *testing.T, name string, business func(ctx context.Context) error) txResult {
	t.Helper()
	var (
		mu  sync.Mutex // guards res against a client call that outlives the bound
		res txResult
	)
	// A seata context created here (rather than inside WithGlobalTx) stays
	// readable afterwards: the TM stores the answer's GlobalStatus in it.
	ctx := tm.InitSeataContext(context.Background())
	err := bounded(clientCallTimeout, func() error {
		return tm.WithGlobalTx(ctx, &tm.GtxConfig{Name: name, Timeout: 30 * time.Second},
			func(ctx context.Context) error {
				xid := tm.GetXID(ctx)
				st, stErr := queryGlobalStatus(xid)
				mu.Lock()
				res.xid, res.statusIn, res.statusInErr = xid, st, stErr
				mu.Unlock()
				return business(ctx)
			})
	})
	mu.Lock()
	defer mu.Unlock()
	res.err = err
	if !isTimeout(err) {
		if st := tm.GetTxStatus(ctx); st != nil {
			res.final = *st
		}
	}
	t.Logf("%s: xid=%q in-tx status=%s (err %v) final=%s err=%v",
		name, res.xid, statusName(res.statusIn), res.statusInErr, statusName(res.final), res.err)
	return res
}

var (
	xidSeenMu sync.Mutex
	xidSeen   = map[string]string{}
)

// checkXID asserts the XID shape <tc-host>:<tc-port>:<positive int64> and
// that no two transactions of this run got the same XID.
func checkXID(t *testing.T, testName, xid string) {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(harness.tcHost) + `:` + regexp.QuoteMeta(harness.tcPort) + `:([0-9]+)$`)
	m := re.FindStringSubmatch(xid)
	if m == nil {
		t.Errorf("XID %q does not have the shape %s:%s:<transactionId>", xid, harness.tcHost, harness.tcPort)
		return
	}
	id, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || id <= 0 {
		t.Errorf("XID %q: transactionId %q is not a positive 64-bit integer (%v)", xid, m[1], err)
	}
	if len(xid) > 128 {
		t.Errorf("XID %q longer than 128 bytes", xid)
	}
	xidSeenMu.Lock()
	defer xidSeenMu.Unlock()
	if other, dup := xidSeen[xid]; dup {
		t.Errorf("XID %q handed out twice (also in %s)", xid, other)
	}
	xidSeen[xid] = testName
}

// checkFinishedStatus queries the status of a completed transaction. The Java
// TC deletes finished sessions and answers Finished; a TC that keeps the
// record may answer the final status itself.
func checkFinishedStatus(t *testing.T, xid string, final message.GlobalStatus) {
	t.Helper()
	st, err := queryGlobalStatus(xid)
	if err != nil {
		t.Errorf("GlobalStatus(%s) after completion: %v", xid, err)
		return
	}
	t.Logf("GlobalStatus(%s) after completion = %s", xid, statusName(st))
	if st != message.GlobalStatusFinished && st != final {
		t.Errorf("GlobalStatus(%s) after completion = %s, want Finished(15) or %s",
			xid, statusName(st), statusName(final))
	}
}
