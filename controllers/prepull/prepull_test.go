package prepull

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// missingEngine is an engine whose every pull fails as Docker's does for a
// digest the registry lacks: an error typed NotFound (errdefs).
type missingEngine struct{}

func (missingEngine) Pull(_ context.Context, ref, _ string, _ func(Progress)) (string, error) {
	return "", fmt.Errorf("Error response from daemon: manifest for %s not found: manifest unknown: %w", ref, cerrdefs.ErrNotFound)
}
func (missingEngine) Has(context.Context, string) (bool, error)               { return false, nil }
func (missingEngine) Resolve(context.Context, string, string) (string, error) { return "", nil }

// TestBuiltImageMissingFromRegistryIsRetried: after a registry failover the
// new registry lacks a built image until the build controller restores it.
// A pull that finds it missing retries with backoff; before, it was
// terminal and the image stayed failed until the 10-minute resync (found by
// make chaos: the state API unreachable for 30 s moved the registry).
// An external image that is missing stays terminal.
func TestBuiltImageMissingFromRegistryIsRetried(t *testing.T) {
	srv := statetest.Start(t)
	ctx := context.Background()
	now := time.Now()
	if err := srv.Store.RegisterNode(ctx, api.Node{Name: "node1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now,
		Capacity: api.NodeCapacity{Engine: true, Builders: []string{"buildkit"}}}); err != nil {
		t.Fatal(err)
	}
	ready := []api.Condition{{Type: api.ConditionReady, Status: "True", LastTransitionTime: now}}
	if err := srv.Store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "node1", Address: "127.0.0.2:5004", Conditions: ready, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	const dg = "sha256:55602fe33123dbc37b6861844093eca0531ccaef5c3dda7336c1bbbf3a3b1c22"
	p := &api.Project{Name: "p", Builds: []api.BuildSpec{{Name: "p/web", Project: "p", Image: "p/web", Context: t.TempDir()}},
		Images: []api.ImageSpec{
			{Name: "p/web", Project: "p", Service: "web", Build: "p/web", Placement: api.Placement{Nodes: []string{"node1"}}},
			{Name: "p/ext", Project: "p", Service: "ext", Image: "127.0.0.2:5004/ext@" + dg, Placement: api.Placement{Nodes: []string{"node1"}}},
		}}
	if _, err := srv.Store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := srv.Store.GetBuild(ctx, "p/web")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.PutBuildStatus(ctx, api.BuildStatus{Name: "p/web", Node: "node1", SpecUID: b.Meta.UID, Phase: api.BuildSucceeded,
		Digest: dg, ObservedGeneration: b.Meta.Generation, Detail: api.BuildDetail{Ref: "127.0.0.1:5004/p/web:latest"}}); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{store: srv.Store, read: srv.Store.Reader, engine: missingEngine{}, cfg: Config{Node: "node1"}, log: slog.New(slog.DiscardHandler), now: time.Now}

	for _, tt := range []struct {
		image, wantState string
		terminal         bool
	}{
		{"p/web", api.PresenceRetrying, false},
		{"p/ext", api.PresenceFailed, true},
	} {
		_, err := r.Reconcile(ctx, tt.image)
		if err == nil || reconcile.IsTerminal(err) != tt.terminal {
			t.Errorf("%s: reconcile error %v (terminal %v), want terminal %v", tt.image, err, reconcile.IsTerminal(err), tt.terminal)
		}
		img, err := srv.Store.GetImage(ctx, tt.image)
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Presence) != 1 || img.Presence[0].State != tt.wantState || !strings.Contains(img.Presence[0].Error, "manifest unknown") {
			t.Errorf("%s: presence %+v, want %s saying the manifest is unknown", tt.image, img.Presence, tt.wantState)
		}
	}
}
