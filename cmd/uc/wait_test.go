package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

const pinned = "busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// node registers a node: live heartbeats now, silent ones a minute ago;
// engine says it can pull.
func node(t *testing.T, store *state.Store, name string, live, engine bool) {
	t.Helper()
	beat := time.Now()
	if !live {
		beat = beat.Add(-time.Minute)
	}
	n := api.Node{Name: name, State: api.NodeReady, StartedAt: beat, HeartbeatAt: beat, Capacity: api.NodeCapacity{Engine: engine}}
	if !engine {
		n.Capacity.Builders = []string{"buildkit"}
	}
	if err := store.RegisterNode(testCtx(t), n); err != nil {
		t.Fatal(err)
	}
}

// imageOn applies one pinned image with the placement and marks it present
// on the given nodes.
func imageOn(t *testing.T, store *state.Store, p api.Placement, present ...string) {
	t.Helper()
	ctx := testCtx(t)
	spec := api.ImageSpec{Name: "w/web", Project: "w", Service: "web", Image: pinned, Placement: p}
	if _, err := store.ApplyProject(ctx, &api.Project{Name: "w", Images: []api.ImageSpec{spec}}, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	img, err := store.GetImage(ctx, "w/web")
	if err != nil {
		t.Fatal(err)
	}
	_, dg, _ := strings.Cut(pinned, "@")
	for _, n := range present {
		if err := store.PutPresence(ctx, api.ImagePresence{Image: "w/web", Node: n, SpecUID: img.Meta.UID,
			ObservedGeneration: img.Meta.Generation, State: api.PresencePresent, Digest: dg, UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWaitNeed runs uc wait's check over real state: which nodes it waits
// for, and that it says which it leaves out.
func TestWaitNeed(t *testing.T) {
	t.Parallel()
	type nodeSpec struct {
		name         string
		live, engine bool
	}
	tests := []struct {
		name        string
		nodes       []nodeSpec
		placement   api.Placement
		present     []string
		skipUnready bool
		done        bool
		out, lag    []string // substrings of what it printed and of the timeout's reasons
	}{
		{name: "a live node without an engine is not waited for",
			nodes: []nodeSpec{{"n1", true, true}, {"b1", true, false}}, present: []string{"n1"}, done: true,
			out: []string{"present on 1/1 nodes (n1)", "b1 has no Docker Engine to pull with: not waited for"}},
		{name: "a named NotReady node is waited for",
			nodes:     []nodeSpec{{"n1", true, true}, {"n2", true, true}, {"n3", false, true}},
			placement: api.Placement{Nodes: []string{"n1", "n2", "n3"}}, present: []string{"n1", "n2"},
			out: []string{"w/web  n3 is NotReady since"}, lag: []string{"w/web on n3: no status yet (n3 is NotReady since", "waiting for it (--skip-unready leaves it out)"}},
		{name: "--skip-unready leaves a named NotReady node out, and says so",
			nodes:     []nodeSpec{{"n1", true, true}, {"n2", true, true}, {"n3", false, true}},
			placement: api.Placement{Nodes: []string{"n1", "n2", "n3"}}, present: []string{"n1", "n2"}, skipUnready: true, done: true,
			out: []string{"present on 2/2 nodes (n1, n2)", "n3 is NotReady since", "not waited for"}},
		{name: "the only placed node is NotReady",
			nodes:     []nodeSpec{{"n1", true, true}, {"n3", false, true}},
			placement: api.Placement{Nodes: []string{"n3"}},
			lag:       []string{"w/web on n3: no status yet (n3 is NotReady since"}},
		{name: "all nodes: a NotReady node is left out, and said so",
			nodes: []nodeSpec{{"n1", true, true}, {"n3", false, true}}, present: []string{"n1"}, done: true,
			out: []string{"present on 1/1 nodes (n1)", "n3 is NotReady since", "not waited for"}},
		{name: "all nodes down: says why nothing is waited for",
			nodes: []nodeSpec{{"n3", false, true}},
			lag:   []string{"w/web: no node to wait for: n3 is NotReady since"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := statetest.Start(t)
			for _, n := range tt.nodes {
				node(t, srv.Store, n.name, n.live, n.engine)
			}
			imageOn(t, srv.Store, tt.placement, tt.present...)
			var out bytes.Buffer
			w := waiter{store: srv.Store, out: &out, seen: map[string]string{}, skipUnready: tt.skipUnready}
			done, err := w.check(testCtx(t))
			if err != nil || done != tt.done {
				t.Fatalf("check = %v, %v; want %v\n%s", done, err, tt.done, out.String())
			}
			for _, want := range tt.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("printed:\n%s\nwant it to contain %q", out.String(), want)
				}
			}
			lag := strings.Join(w.lagging, "; ")
			for _, want := range tt.lag {
				if !strings.Contains(lag, want) {
					t.Errorf("timeout reasons %q, want them to contain %q", lag, want)
				}
			}
		})
	}
}

// TestPullProgress prints what the engine reported, and nothing it did not.
func TestPullProgress(t *testing.T) {
	t.Parallel()
	pulling := func(d api.PresenceDetail) api.ImagePresence {
		return api.ImagePresence{State: api.PresencePulling, Detail: d}
	}
	for _, tt := range []struct {
		name string
		p    api.ImagePresence
		want string
	}{
		{"no sizes reported", pulling(api.PresenceDetail{LayersDone: 1, LayersTotal: 1}), " 1/1 layers"},
		{"bytes without a total", pulling(api.PresenceDetail{LayersDone: 1, LayersTotal: 3, Bytes: 12 << 20}), " 1/3 layers, 12MiB downloaded"},
		{"bytes of a total", pulling(api.PresenceDetail{LayersDone: 1, LayersTotal: 3, Bytes: 12 << 20, BytesTotal: 40 << 20}), " 1/3 layers, 12MiB/40MiB"},
		{"nothing known yet", pulling(api.PresenceDetail{}), ""},
	} {
		if got := suffix(tt.p); got != tt.want {
			t.Errorf("%s: suffix = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestWaitBuildsNobodyLive: uc apply --wait on a build no node reports on
// says why nobody does.
func TestWaitBuildsNobodyLive(t *testing.T) {
	t.Parallel()
	srv := statetest.Start(t)
	node(t, srv.Store, "n3", false, false)
	p := &api.Project{Name: "w", Builds: []api.BuildSpec{{Name: "w/web", Project: "w", Service: "web", Image: "w/web", Context: "/src"}}}
	if _, err := srv.Store.ApplyProject(testCtx(t), p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := waiter{store: srv.Store, out: &out, seen: map[string]string{}, builds: []string{"w/web"}}
	if done, err := w.check(testCtx(t)); done || err != nil {
		t.Fatalf("check = %v, %v; want waiting", done, err)
	}
	const want = "w/web: pending: no node has reported on it yet (no live node: n3 is NotReady since "
	if lag := strings.Join(w.lagging, "; "); !strings.Contains(lag, want) || !strings.Contains(out.String(), "w/web  pending") {
		t.Errorf("printed %q, timeout reasons %q; want %q", out.String(), lag, want)
	}
}
