package prepull

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// platformEngine records the platform each pull asks for.
type platformEngine struct{ pulled map[string]string }

func (e *platformEngine) Pull(ctx context.Context, ref, auth string, progress func(Progress)) (string, error) {
	return e.PullPlatform(ctx, ref, auth, "", progress)
}

func (e *platformEngine) PullPlatform(_ context.Context, ref, _, platform string, _ func(Progress)) (string, error) {
	e.pulled[ref] = platform
	_, digest, _ := strings.Cut(ref, "@")
	return digest, nil
}
func (*platformEngine) Has(context.Context, string) (bool, error)               { return false, nil }
func (*platformEngine) Resolve(context.Context, string, string) (string, error) { return "", nil }

// TestPullPlatform: a service's platform: reaches the engine's pull, as
// docker compose pulls it; it used to be dropped.
func TestPullPlatform(t *testing.T) {
	srv := statetest.Start(t)
	ctx := context.Background()
	now := time.Now()
	if err := srv.Store.RegisterNode(ctx, api.Node{Name: "node1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now,
		Capacity: api.NodeCapacity{Engine: true}}); err != nil {
		t.Fatal(err)
	}
	const dg = "sha256:55602fe33123dbc37b6861844093eca0531ccaef5c3dda7336c1bbbf3a3b1c22"
	p := &api.Project{Name: "p", Images: []api.ImageSpec{
		{Name: "p/arm", Project: "p", Service: "arm", Image: "127.0.0.2:5004/arm@" + dg, Platform: "linux/arm64"},
		{Name: "p/own", Project: "p", Service: "own", Image: "127.0.0.2:5004/own@" + dg},
	}}
	if _, err := srv.Store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	engine := &platformEngine{pulled: map[string]string{}}
	r := &Reconciler{store: srv.Store, read: srv.Store.Reader, engine: engine, cfg: Config{Node: "node1"}, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, name := range []string{"p/arm", "p/own"} {
		if _, err := r.Reconcile(ctx, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := map[string]string{"127.0.0.2:5004/arm@" + dg: "linux/arm64", "127.0.0.2:5004/own@" + dg: ""}
	for ref, platform := range want {
		if got, ok := engine.pulled[ref]; !ok || got != platform {
			t.Errorf("pull of %s asked for platform %q (pulled: %v), want %q", ref, got, ok, platform)
		}
	}
}
