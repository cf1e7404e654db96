package node

import (
	"context"
	"testing"
	"time"

	"github.com/ucplane/uc/state/statetest"
)

// TestWriteIsConfirmed: a node that wrote its row looks at it again after
// Confirm, not after its (hour-long) heartbeat, because a delete racing
// the write can leave its watch without any event; once the row is there
// and fresh, the heartbeat sets the pace again.
func TestWriteIsConfirmed(t *testing.T) {
	t.Parallel()
	srv := statetest.Start(t)
	r := &Reconciler{store: srv.Store, read: srv.Store.Reader, started: time.Now(), now: time.Now,
		cfg: Config{Name: "node1", Version: "v1", Heartbeat: time.Hour, Confirm: 200 * time.Millisecond}}
	ctx := context.Background()
	res, err := r.Reconcile(ctx, "node1")
	if err != nil || res.RequeueAfter != 200*time.Millisecond {
		t.Fatalf("after registering: %v, requeue after %v; want 200ms", err, res.RequeueAfter)
	}
	if err := srv.DeleteNode(ctx, "node1"); err != nil { // before any watch could see the row
		t.Fatal(err)
	}
	if res, err = r.Reconcile(ctx, "node1"); err != nil || res.RequeueAfter != 200*time.Millisecond {
		t.Fatalf("the second look: %v, requeue after %v", err, res.RequeueAfter)
	}
	if _, err := srv.Store.GetNode(ctx, "node1"); err != nil {
		t.Errorf("the second look did not restore the row: %v", err)
	}
	if res, err = r.Reconcile(ctx, "node1"); err != nil || res.RequeueAfter < 59*time.Minute {
		t.Errorf("with the row in place: %v, requeue after %v; want about the heartbeat", err, res.RequeueAfter)
	}
}
