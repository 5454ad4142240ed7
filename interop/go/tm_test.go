package interop

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/seata/seata-go/pkg/protocol/message"
)

// Scenario 1: a global transaction whose business function succeeds is
// committed (GlobalBegin → GlobalCommit, no branches).
func TestTMBeginCommit(t *testing.T) {
	requireHarness(t)

	res := runGlobalTx(t, "ferrata-go-tm-commit", func(ctx context.Context) error { return nil })
	if res.err != nil {
		t.Fatalf("tm.WithGlobalTx returned %v, want nil (committed)", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	if res.statusInErr != nil {
		t.Errorf("GlobalStatus inside the transaction: %v", res.statusInErr)
	} else if res.statusIn != message.GlobalStatusBegin {
		t.Errorf("GlobalStatus inside the transaction = %s, want Begin(1)", statusName(res.statusIn))
	}
	if res.final != message.GlobalStatusCommitted {
		t.Errorf("GlobalCommit answered %s, want Committed(9)", statusName(res.final))
	}
	checkFinishedStatus(t, res.xid, message.GlobalStatusCommitted)
}

// Scenario 2: a global transaction whose business function fails is rolled
// back (GlobalBegin → GlobalRollback, no branches).
func TestTMBeginRollback(t *testing.T) {
	requireHarness(t)

	businessErr := errors.New("business failure on purpose")
	res := runGlobalTx(t, "ferrata-go-tm-rollback", func(ctx context.Context) error { return businessErr })
	if res.err == nil {
		t.Fatalf("tm.WithGlobalTx returned nil, want the business error")
	}
	if isTimeout(res.err) {
		t.Fatalf("tm.WithGlobalTx: %v", res.err)
	}
	// seata-go reports "first phase error: <business>, second phase error: <rollback>".
	if !strings.Contains(res.err.Error(), businessErr.Error()) {
		t.Errorf("tm.WithGlobalTx error %q does not carry the business error", res.err)
	}
	if !strings.Contains(res.err.Error(), "second phase error: <nil>") {
		t.Errorf("rollback itself failed: %v", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	if res.statusInErr != nil {
		t.Errorf("GlobalStatus inside the transaction: %v", res.statusInErr)
	} else if res.statusIn != message.GlobalStatusBegin {
		t.Errorf("GlobalStatus inside the transaction = %s, want Begin(1)", statusName(res.statusIn))
	}
	if res.final != message.GlobalStatusRollbacked {
		t.Errorf("GlobalRollback answered %s, want Rollbacked(11)", statusName(res.final))
	}
	checkFinishedStatus(t, res.xid, message.GlobalStatusRollbacked)
}

// GlobalStatus of an XID the TC never issued: the Java TC answers Finished.
func TestGlobalStatusUnknownXID(t *testing.T) {
	requireHarness(t)

	xid := harness.tcHost + ":" + harness.tcPort + ":9223372036854775807"
	st, err := queryGlobalStatus(xid)
	if err != nil {
		t.Fatalf("GlobalStatus(%s): %v", xid, err)
	}
	if st != message.GlobalStatusFinished {
		t.Errorf("GlobalStatus(%s) = %s, want Finished(15) for an unknown transaction", xid, statusName(st))
	}
}
