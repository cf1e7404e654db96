package build

import (
	"context"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
)

// TestBuiltOffCluster: the cluster never solves a build made by uc build;
// its owner says it waits, and is satisfied by the row uc build writes.
func TestBuiltOffCluster(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, builds("a"))
	w.apply(api.BuildSpec{Name: "p/web", BuildOn: api.BuildOnLocal})
	st, err := w.reconcile("p/web")
	if wait, ok := reconcile.IsWaiting(err); !ok || wait.Reason != "BuildsOffCluster" || st.Phase != api.BuildPending || w.solver.count() != 0 {
		t.Fatalf("before uc build: %v, %s %q, %d solves", err, st.Phase, st.Message, w.solver.count())
	}
	rec, err := w.store.GetBuild(context.Background(), "p/web")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.PutBuildStatus(context.Background(), api.BuildStatus{Name: "p/web", Node: api.LocalBuilderPrefix + "laptop", SpecUID: rec.Meta.UID,
		ObservedGeneration: rec.Meta.Generation, Phase: api.BuildSucceeded, Digest: digestA, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	w.synced("p/web", func(b state.BuildRecord) bool { return len(b.Status) == 2 })
	if _, err := w.r.Reconcile(context.Background(), "p/web"); err != nil || w.solver.count() != 0 {
		t.Errorf("after uc build: %v, %d solves", err, w.solver.count())
	}
	if res, ok, err := w.store.BuildResult(context.Background(), "p/web"); err != nil || !ok || res.Digest != digestA {
		t.Errorf("the build's result is %+v (%v, %v), want uc build's", res, ok, err)
	}
	// Deleting the spec removes the row no node owns.
	if err := w.store.DeleteSpec(context.Background(), "build", "p/web"); err != nil {
		t.Fatal(err)
	}
	_, rows, err := w.store.Client().QueryAll(context.Background(), corrosion.Stmt("SELECT node FROM build_status WHERE name = 'p/web'"))
	if err != nil || len(rows) != 1 || rows[0][0] != "n1" {
		t.Errorf("after the delete, build_status rows %v (%v); want only n1's, which n1 deletes itself", rows, err)
	}
}
