package state_test

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/state/statetest"
)

func startCache(t *testing.T, st *state.Store) *state.Cache {
	t.Helper()
	return (&statetest.Server{Store: st}).StartCache(t)
}

// fill writes a row in every table.
func fill(t *testing.T, st *state.Store, greeting string) {
	t.Helper()
	ctx := testCtx(t)
	now := time.Now().Truncate(time.Millisecond)
	if _, err := st.ApplyProject(ctx, demoProject(greeting, "web", "db"), state.ApplyOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	b, err := st.GetBuild(ctx, "demo/web")
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.GetImage(ctx, "demo/db")
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		st.RegisterNode(ctx, api.Node{Name: "node1", State: api.NodeReady, Labels: map[string]string{"g": greeting}, StartedAt: now, HeartbeatAt: now}),
		st.PutBuildStatus(ctx, api.BuildStatus{Name: "demo/web", Node: "node1", SpecUID: b.Meta.UID, ObservedGeneration: b.Meta.Generation,
			Phase: api.BuildSucceeded, Digest: "sha256:" + greeting, UpdatedAt: now}),
		st.PutPresence(ctx, api.ImagePresence{Image: "demo/db", Node: "node1", State: api.PresencePresent, Digest: "sha256:" + greeting, UpdatedAt: now}),
		st.PutResolution(ctx, api.ImageResolution{Image: "demo/db", Node: "node1", SpecUID: img.Meta.UID, ObservedGeneration: img.Meta.Generation,
			Ref: "postgres:17", Digest: "sha256:" + greeting, UpdatedAt: now}),
		st.PutRegistrySpec(ctx, api.RegistrySpec{Port: 5000, Auth: true, Node: greeting}),
		st.PutRegistryStatus(ctx, api.RegistryStatus{Node: "node1", Address: "127.0.0.1:5000", UpdatedAt: now,
			Conditions: []api.Condition{{Type: api.ConditionReady, Status: "True", Message: greeting}}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// answers is what a Reader says about the filled state.
func answers(t *testing.T, r interface {
	ListBuilds(context.Context, string) ([]state.BuildRecord, error)
	ListImages(context.Context, string) ([]state.ImageRecord, error)
	ListNodes(context.Context) ([]api.Node, error)
	ListRegistryStatus(context.Context) ([]api.RegistryStatus, error)
	GetRegistrySpec(context.Context) (api.RegistrySpec, int64, error)
	RegistryCredential(context.Context) (api.Credential, bool, error)
	WantedDigest(context.Context, state.ImageRecord) (string, bool, error)
	RegistryAddress(context.Context, time.Time, time.Duration) (string, error)
}) []any {
	ctx := testCtx(t)
	var out []any
	add := func(v any, err error) { out = append(out, v, err) }
	add(r.ListBuilds(ctx, ""))
	add(r.ListBuilds(ctx, "demo/web"))
	imgs, err := r.ListImages(ctx, "")
	add(imgs, err)
	add(r.ListNodes(ctx))
	add(r.ListRegistryStatus(ctx))
	spec, gen, err := r.GetRegistrySpec(ctx)
	add([]any{spec, gen}, err)
	cred, ok, err := r.RegistryCredential(ctx)
	add([]any{cred, ok}, err)
	for _, img := range imgs {
		dg, ready, err := r.WantedDigest(ctx, img)
		add([]any{dg, ready}, err)
	}
	add(r.RegistryAddress(ctx, time.Now(), time.Minute))
	return out
}

// TestCacheAnswersAsStore reads every question through the cache and
// through the state API, after writes and after deletes: the answers must
// be the same once the cache has caught up.
func TestCacheAnswersAsStore(t *testing.T) {
	t.Parallel()
	st := statetest.Start(t).Store
	fill(t, st, "one")
	c := startCache(t, st)
	same := func(what string) {
		t.Helper()
		var want, got []any
		statetest.Eventually(t, what, func() bool {
			want, got = answers(t, st), answers(t, c)
			return reflect.DeepEqual(want, got)
		})
	}
	same("the cache to list what the store lists")
	fill(t, st, "two")
	same("the cache to follow updates")
	ctx := testCtx(t)
	if _, err := st.DeleteProject(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteRegistrySpec(ctx); err != nil {
		t.Fatal(err)
	}
	same("the cache to follow deletes")
	if imgs, _ := c.ListImages(ctx, ""); len(imgs) != 0 {
		t.Errorf("cache still lists %d images", len(imgs))
	}
}

// events records an informer's events as "type key".
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(ev state.Event[api.Node]) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, []string{"added", "updated", "deleted"}[ev.Type]+" "+ev.Key)
}

func (e *events) has(want string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.got, want)
}

// TestInformerEvents: a handler added late sees every row as added, then
// each change in order; a delete during a cut, while the server restarts
// and forgets its subscriptions, arrives as a deleted event on re-list.
func TestInformerEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	srv := startServer(t, state.Schema)
	st := srv.Store
	reg := func(name, zone string) {
		t.Helper()
		if err := st.RegisterNode(ctx, api.Node{Name: name, State: api.NodeReady, Labels: map[string]string{"zone": zone}}); err != nil {
			t.Fatal(err)
		}
	}
	reg("a", "eu")
	reg("b", "eu")
	c := startCache(t, st)
	ev := &events{}
	remove := c.Nodes.AddHandler(ev.add)
	defer remove()
	for _, want := range []string{"added a", "added b"} {
		if !ev.has(want) {
			t.Errorf("late handler did not get %q: %q", want, ev.got)
		}
	}
	reg("b", "us")
	statetest.Eventually(t, "an update event", func() bool { return ev.has("updated b") })
	if n, _ := c.GetNode(ctx, "b"); n.Labels["zone"] != "us" {
		t.Errorf("cached node b = %+v, want zone us", n)
	}

	err := srv.Restart(func(s *embedded.Server) {
		if _, _, err := s.DB().Transaction(ctx, []corrosion.Statement{corrosion.Stmt("DELETE FROM nodes WHERE name = 'a'")}); err != nil {
			t.Fatalf("delete a: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	statetest.Eventually(t, "a deleted event after the re-list", func() bool { return ev.has("deleted a") })
	if _, err := c.GetNode(ctx, "a"); err == nil {
		t.Error("node a is still cached after its delete")
	}
	reg("d", "eu")
	statetest.Eventually(t, "changes on the new subscription", func() bool { return ev.has("added d") })
}
