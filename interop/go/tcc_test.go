package interop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seata/seata-go/pkg/protocol/message"
	"github.com/seata/seata-go/pkg/rm/tcc"
	"github.com/seata/seata-go/pkg/tm"
)

// TCC action names = resource ids registered with RegisterRMRequest.
const (
	actionA = "ferrata-go-tcc-a"
	actionB = "ferrata-go-tcc-b"
)

const (
	phasePrepare  = "prepare"
	phaseCommit   = "commit"
	phaseRollback = "rollback"
)

// tccParams is the try argument; fields tagged tccParam travel to phase two
// inside the branch's applicationData ({"actionContext": {...}}).
type tccParams struct {
	OrderID string `tccParam:"orderId"`
	FailTry bool   `tccParam:"failTry"`
}

var errTryFailed = errors.New("try failed on purpose")

// tccCall is one invocation of a participant method.
type tccCall struct {
	Phase         string
	Xid           string
	BranchID      int64
	ActionName    string
	ActionContext map[string]interface{}
	At            time.Time
}

// participant implements seata-go's rm.TwoPhaseInterface and records every call.
type participant struct {
	name  string
	proxy *tcc.TCCServiceProxy

	mu    sync.Mutex
	calls []tccCall
}

func (p *participant) register() error {
	proxy, err := tcc.NewTCCServiceProxy(p)
	if err != nil {
		return err
	}
	p.proxy = proxy
	return nil
}

func (p *participant) record(c tccCall) {
	c.At = time.Now()
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
}

func (p *participant) GetActionName() string { return p.name }

func (p *participant) Prepare(ctx context.Context, params interface{}) (bool, error) {
	c := tccCall{Phase: phasePrepare, Xid: tm.GetXID(ctx), ActionName: p.name}
	if bac := tm.GetBusinessActionContext(ctx); bac != nil {
		c.BranchID = bac.BranchId
	}
	p.record(c)
	if pr, ok := params.(*tccParams); ok && pr.FailTry {
		return false, errTryFailed
	}
	return true, nil
}

func (p *participant) Commit(ctx context.Context, bac *tm.BusinessActionContext) (bool, error) {
	p.record(phaseTwoCall(phaseCommit, bac))
	return true, nil
}

func (p *participant) Rollback(ctx context.Context, bac *tm.BusinessActionContext) (bool, error) {
	p.record(phaseTwoCall(phaseRollback, bac))
	return true, nil
}

func phaseTwoCall(phase string, bac *tm.BusinessActionContext) tccCall {
	c := tccCall{Phase: phase}
	if bac != nil {
		c.Xid, c.BranchID, c.ActionName = bac.Xid, bac.BranchId, bac.ActionName
		c.ActionContext = make(map[string]interface{}, len(bac.ActionContext))
		for k, v := range bac.ActionContext {
			c.ActionContext[k] = v
		}
	}
	return c
}

// callsFor returns this participant's calls for one XID (and phase, if non-empty).
func (p *participant) callsFor(xid, phase string) []tccCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []tccCall
	for _, c := range p.calls {
		if c.Xid == xid && (phase == "" || c.Phase == phase) {
			out = append(out, c)
		}
	}
	return out
}

// tryBranch calls the participant's try through the TCC proxy, which first
// sends BranchRegisterRequest for the current XID.
func tryBranch(ctx context.Context, p *participant, params *tccParams) error {
	_, err := p.proxy.Prepare(ctx, params)
	return err
}

var orderSeq atomic.Int64

func newOrderID() string { return fmt.Sprintf("order-%d-%d", time.Now().UnixNano(), orderSeq.Add(1)) }

// want describes the phase-two deliveries expected for one branch.
type want struct {
	p        *participant
	phase    string // phaseCommit or phaseRollback
	orderID  string
	failTry  bool
	branchID int64 // filled from the prepare record
}

// awaitPhaseTwo polls (bounded) until every expected delivery arrived, lets a
// short settle period pass to catch duplicates, then checks each branch got
// exactly one call of the expected phase and none of the other.
func awaitPhaseTwo(t *testing.T, xid string, wants []*want) {
	t.Helper()
	deadline := time.Now().Add(phaseTwoTimeout)
	for {
		complete := true
		for _, w := range wants {
			if len(w.p.callsFor(xid, w.phase)) == 0 {
				complete = false
			}
		}
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // settle: a duplicate delivery would show up now

	for _, w := range wants {
		other := phaseRollback
		if w.phase == phaseRollback {
			other = phaseCommit
		}
		got, wrong := w.p.callsFor(xid, w.phase), w.p.callsFor(xid, other)
		if len(got) != 1 {
			t.Errorf("%s: %s called %d times for %s within %v, want exactly 1", w.p.name, w.phase, len(got), xid, phaseTwoTimeout)
		}
		if len(wrong) != 0 {
			t.Errorf("%s: %s called %d times for %s, want never", w.p.name, other, len(wrong), xid)
		}
		for _, c := range got {
			checkPhaseTwoCall(t, w, xid, c)
		}
	}
}

func checkPhaseTwoCall(t *testing.T, w *want, xid string, c tccCall) {
	t.Helper()
	if c.Xid != xid {
		t.Errorf("%s %s: xid %q, want %q", w.p.name, c.Phase, c.Xid, xid)
	}
	if c.BranchID != w.branchID {
		t.Errorf("%s %s: branchId %d, want %d (from BranchRegisterResponse)", w.p.name, c.Phase, c.BranchID, w.branchID)
	}
	if c.ActionName != w.p.name {
		t.Errorf("%s %s: resourceId/actionName %q, want %q", w.p.name, c.Phase, c.ActionName, w.p.name)
	}
	// applicationData must come back unchanged: seata-go rebuilds the
	// action context from {"actionContext": {...}} of the branch.
	if got := c.ActionContext["orderId"]; got != w.orderID {
		t.Errorf("%s %s: actionContext[orderId] = %#v, want %q (applicationData not round-tripped)", w.p.name, c.Phase, got, w.orderID)
	}
	if got := c.ActionContext["failTry"]; got != w.failTry {
		t.Errorf("%s %s: actionContext[failTry] = %#v, want %v", w.p.name, c.Phase, got, w.failTry)
	}
	if got := c.ActionContext["actionName"]; got != w.p.name {
		t.Errorf("%s %s: actionContext[actionName] = %#v, want %q", w.p.name, c.Phase, got, w.p.name)
	}
}

// prepared checks the try was recorded once with a branch id and fills w.branchID.
func prepared(t *testing.T, xid string, w *want) {
	t.Helper()
	calls := w.p.callsFor(xid, phasePrepare)
	if len(calls) != 1 {
		t.Fatalf("%s: try called %d times for %s, want 1", w.p.name, len(calls), xid)
	}
	if calls[0].BranchID <= 0 {
		t.Errorf("%s: branchId from BranchRegisterResponse = %d, want > 0", w.p.name, calls[0].BranchID)
	}
	w.branchID = calls[0].BranchID
}

func participantFor(t *testing.T, name string) *participant {
	t.Helper()
	p := harness.participants[name]
	if p == nil {
		t.Fatalf("TCC participant %q not registered", name)
	}
	return p
}

// Scenario 3a: TCC branch, business succeeds → Commit exactly once, Rollback never.
func TestTCCCommit(t *testing.T) {
	requireHarness(t)
	w := &want{p: participantFor(t, actionA), phase: phaseCommit, orderID: newOrderID()}

	res := runGlobalTx(t, "ferrata-go-tcc-commit", func(ctx context.Context) error {
		return tryBranch(ctx, w.p, &tccParams{OrderID: w.orderID})
	})
	if res.err != nil {
		t.Fatalf("tm.WithGlobalTx returned %v, want nil (committed)", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	prepared(t, res.xid, w)
	if res.final != message.GlobalStatusCommitted {
		t.Errorf("GlobalCommit answered %s, want Committed(9)", statusName(res.final))
	}
	awaitPhaseTwo(t, res.xid, []*want{w})
	checkFinishedStatus(t, res.xid, message.GlobalStatusCommitted)
}

// Scenario 3b: TCC branch, business fails after a successful try → Rollback
// exactly once, Commit never.
func TestTCCRollback(t *testing.T) {
	requireHarness(t)
	w := &want{p: participantFor(t, actionA), phase: phaseRollback, orderID: newOrderID()}

	businessErr := errors.New("business failure after try")
	res := runGlobalTx(t, "ferrata-go-tcc-rollback", func(ctx context.Context) error {
		if err := tryBranch(ctx, w.p, &tccParams{OrderID: w.orderID}); err != nil {
			return fmt.Errorf("unexpected try error: %w", err)
		}
		return businessErr
	})
	if res.err == nil || isTimeout(res.err) {
		t.Fatalf("tm.WithGlobalTx returned %v, want the business error", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	prepared(t, res.xid, w)
	if res.final != message.GlobalStatusRollbacked {
		t.Errorf("GlobalRollback answered %s, want Rollbacked(11)", statusName(res.final))
	}
	awaitPhaseTwo(t, res.xid, []*want{w})
	checkFinishedStatus(t, res.xid, message.GlobalStatusRollbacked)
}

// Scenario 3c: the try itself fails. The branch was registered before the try
// ran, so the TC still drives its cancel: Rollback once, Commit never.
func TestTCCTryFailure(t *testing.T) {
	requireHarness(t)
	w := &want{p: participantFor(t, actionA), phase: phaseRollback, orderID: newOrderID(), failTry: true}

	res := runGlobalTx(t, "ferrata-go-tcc-try-fails", func(ctx context.Context) error {
		return tryBranch(ctx, w.p, &tccParams{OrderID: w.orderID, FailTry: true})
	})
	if res.err == nil || isTimeout(res.err) {
		t.Fatalf("tm.WithGlobalTx returned %v, want the try error", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	prepared(t, res.xid, w)
	if res.final != message.GlobalStatusRollbacked {
		t.Errorf("GlobalRollback answered %s, want Rollbacked(11)", statusName(res.final))
	}
	awaitPhaseTwo(t, res.xid, []*want{w})
}

// Two TCC branches on two resources in one transaction, committed: each
// participant's Commit runs once.
func TestTCCTwoBranchesCommit(t *testing.T) {
	requireHarness(t)
	wa := &want{p: participantFor(t, actionA), phase: phaseCommit, orderID: newOrderID()}
	wb := &want{p: participantFor(t, actionB), phase: phaseCommit, orderID: newOrderID()}

	res := runGlobalTx(t, "ferrata-go-tcc-two-commit", func(ctx context.Context) error {
		if err := tryBranch(ctx, wa.p, &tccParams{OrderID: wa.orderID}); err != nil {
			return err
		}
		return tryBranch(ctx, wb.p, &tccParams{OrderID: wb.orderID})
	})
	if res.err != nil {
		t.Fatalf("tm.WithGlobalTx returned %v, want nil (committed)", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	prepared(t, res.xid, wa)
	prepared(t, res.xid, wb)
	if wa.branchID == wb.branchID {
		t.Errorf("both branches got branchId %d", wa.branchID)
	}
	if res.final != message.GlobalStatusCommitted {
		t.Errorf("GlobalCommit answered %s, want Committed(9)", statusName(res.final))
	}
	awaitPhaseTwo(t, res.xid, []*want{wa, wb})
	logOrder(t, res.xid, wa, wb, phaseCommit)
}

// Two TCC branches rolled back: each participant's Rollback runs once, in
// reverse registration order (Java TC: GlobalRollback walks the branches
// backwards).
func TestTCCTwoBranchesRollback(t *testing.T) {
	requireHarness(t)
	wa := &want{p: participantFor(t, actionA), phase: phaseRollback, orderID: newOrderID()}
	wb := &want{p: participantFor(t, actionB), phase: phaseRollback, orderID: newOrderID()}

	res := runGlobalTx(t, "ferrata-go-tcc-two-rollback", func(ctx context.Context) error {
		if err := tryBranch(ctx, wa.p, &tccParams{OrderID: wa.orderID}); err != nil {
			return fmt.Errorf("unexpected try error: %w", err)
		}
		if err := tryBranch(ctx, wb.p, &tccParams{OrderID: wb.orderID}); err != nil {
			return fmt.Errorf("unexpected try error: %w", err)
		}
		return errors.New("business failure after two tries")
	})
	if res.err == nil || isTimeout(res.err) {
		t.Fatalf("tm.WithGlobalTx returned %v, want the business error", res.err)
	}
	checkXID(t, t.Name(), res.xid)
	prepared(t, res.xid, wa)
	prepared(t, res.xid, wb)
	if res.final != message.GlobalStatusRollbacked {
		t.Errorf("GlobalRollback answered %s, want Rollbacked(11)", statusName(res.final))
	}
	awaitPhaseTwo(t, res.xid, []*want{wa, wb})
	if first := logOrder(t, res.xid, wa, wb, phaseRollback); first != "" && first != actionB {
		t.Errorf("rollback reached %s first, want the later-registered branch (%s) first", first, actionB)
	}
}

// logOrder reports which branch received phase two first ("" if unknown).
func logOrder(t *testing.T, xid string, wa, wb *want, phase string) string {
	t.Helper()
	a, b := wa.p.callsFor(xid, phase), wb.p.callsFor(xid, phase)
	if len(a) == 0 || len(b) == 0 {
		return ""
	}
	first := wa.p.name
	if b[0].At.Before(a[0].At) {
		first = wb.p.name
	}
	t.Logf("%s delivery order: %s first (a at %s, b at %s)", phase, first,
		a[0].At.Format("15:04:05.000000"), b[0].At.Format("15:04:05.000000"))
	return first
}
