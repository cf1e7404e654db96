package node_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/controllers/node"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
	"github.com/ucplane/uc/test/harness/poll"
)

// run starts the node controller against a fresh embedded state and stops
// it when the test ends.
func run(t *testing.T, cfg node.Config) *statetest.Server {
	t.Helper()
	srv, _ := runWithCache(t, cfg)
	return srv
}

// runWithCache is run that also returns the controller's cache.
func runWithCache(t *testing.T, cfg node.Config) (*statetest.Server, *state.Cache) {
	t.Helper()
	srv := statetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cache := srv.StartCache(t)
	c := node.New(cache, cfg, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("controller Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() }) // runs before statetest's cleanup
	return srv, cache
}

// eventually polls get until ok accepts the node it returns.
var eventually = poll.Value[api.Node]

func TestNodeController(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"zone": "eu", "gpu": "yes"}
	cfg := node.Config{Name: "node1", Labels: labels, Version: "v1.2.3", Heartbeat: 50 * time.Millisecond}
	st := run(t, cfg).Store
	ctx := t.Context()
	get := func() (api.Node, error) { return st.GetNode(ctx, "node1") }
	registered := func(n api.Node) bool {
		return n.State == api.NodeReady && n.Version == "v1.2.3" && maps.Equal(n.Labels, labels)
	}

	first := eventually(t, "the node to register", get, registered)
	if first.StartedAt.IsZero() || first.HeartbeatAt.IsZero() {
		t.Errorf("registered node has zero times: %+v", first)
	}

	t.Run("heartbeat advances", func(t *testing.T) {
		hb := first.HeartbeatAt
		for range 3 {
			n := eventually(t, "a newer heartbeat", get, func(n api.Node) bool { return n.HeartbeatAt.After(hb) })
			hb = n.HeartbeatAt
			if !n.StartedAt.Equal(first.StartedAt) {
				t.Errorf("started_at moved from %v to %v", first.StartedAt, n.StartedAt)
			}
		}
	})

	t.Run("other nodes are left alone", func(t *testing.T) {
		other := api.Node{Name: "node2", State: api.NodeGone, Labels: map[string]string{"zone": "x"}}
		if err := st.RegisterNode(ctx, other); err != nil {
			t.Fatal(err)
		}
		// Give the controller a few heartbeats to (wrongly) react.
		hb := eventually(t, "a heartbeat", get, registered).HeartbeatAt
		eventually(t, "two more heartbeats", get, func(n api.Node) bool { return n.HeartbeatAt.After(hb.Add(50 * time.Millisecond)) })
		n, err := st.GetNode(ctx, "node2")
		if err != nil {
			t.Fatal(err)
		}
		if n.State != api.NodeGone || n.Labels["zone"] != "x" || !n.HeartbeatAt.IsZero() {
			t.Errorf("node2 = %+v, want it untouched", n)
		}
	})
}

// TestRowIsRestored edits the node's row behind the controller's back,
// once the controller's watch has seen it. With an hour-long heartbeat
// (and second look) only the watch on the row can notice in time.
func TestRowIsRestored(t *testing.T) {
	t.Parallel()
	for _, hb := range []time.Duration{50 * time.Millisecond, time.Hour} {
		t.Run("heartbeat "+hb.String(), func(t *testing.T) {
			t.Parallel()
			labels := map[string]string{"zone": "eu"}
			srv, cache := runWithCache(t, node.Config{Name: "node1", Labels: labels, Version: "v1", Heartbeat: hb, Confirm: hb})
			st, ctx := srv.Store, t.Context()
			get := func() (api.Node, error) { return st.GetNode(ctx, "node1") }
			registered := func(n api.Node) bool {
				return n.State == api.NodeReady && n.Version == "v1" && maps.Equal(n.Labels, labels)
			}
			first := eventually(t, "the node to register", get, registered)
			// An edit that undoes a write before the watch saw it nets to no
			// event (the second look covers that; TestWriteIsConfirmed).
			seen := func() {
				t.Helper()
				eventually(t, "the controller's cache to see the row", func() (api.Node, error) { return cache.GetNode(ctx, "node1") },
					func(n api.Node) bool { return registered(n) && n.StartedAt.Equal(first.StartedAt) })
			}
			edit := func(change func(*api.Node)) func() error {
				return func() error {
					n, err := get()
					if err != nil {
						return err
					}
					change(&n)
					return st.RegisterNode(ctx, n)
				}
			}
			for _, tc := range []struct {
				name   string
				tamper func() error
			}{
				{"deleted row", func() error { return srv.DeleteNode(ctx, "node1") }},
				{"edited labels", edit(func(n *api.Node) { n.Labels = map[string]string{"zone": "us"} })},
				{"cleared labels", edit(func(n *api.Node) { n.Labels = nil })},
				{"gone state", edit(func(n *api.Node) { n.State = api.NodeGone })},
				{"version", edit(func(n *api.Node) { n.Version = "old" })},
				{"started_at", edit(func(n *api.Node) { n.StartedAt = time.UnixMilli(1) })},
			} {
				seen()
				if err := tc.tamper(); err != nil {
					t.Fatal(err)
				}
				n := eventually(t, tc.name+" to be restored", get, func(n api.Node) bool {
					return registered(n) && n.StartedAt.Equal(first.StartedAt)
				})
				if n.HeartbeatAt.IsZero() {
					t.Errorf("%s: restored row has no heartbeat", tc.name)
				}
			}
		})
	}
}

// TestHeartbeatIsQuiet counts writes to the node's row: one per heartbeat
// interval, not a write loop triggered by its own writes.
func TestHeartbeatIsQuiet(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	srv := run(t, node.Config{Name: "node1", Version: "v1", Heartbeat: interval})
	ctx := t.Context()
	eventually(t, "the node to register", func() (api.Node, error) { return srv.Store.GetNode(ctx, "node1") },
		func(n api.Node) bool { return n.State == api.NodeReady })

	// Every write to the row comes back through the cache's subscription
	// as one event.
	cache := srv.StartCache(t)
	var mu sync.Mutex
	writes, replayed := 0, false
	var other []state.Event[api.Node]
	remove := cache.Nodes.AddHandler(func(ev state.Event[api.Node]) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ev.Type == state.EventAdded && !replayed:
			replayed = true // the row as the cache holds it, not a write
		case ev.Type == state.EventUpdated:
			writes++
		default:
			other = append(other, ev)
		}
	})
	const window = time.Second
	start := time.Now()
	time.Sleep(window) // a measurement window, not a synchronisation
	mu.Lock()
	n, elapsed := writes, time.Since(start)
	mu.Unlock()
	remove()

	// About one heartbeat per interval (bounded with 2x slack); a write
	// loop would produce hundreds. At least a few must have happened.
	upper := 2*int(elapsed/interval) + 2
	if n > upper || n < 3 {
		t.Errorf("%d writes to the node row in %v; want between 3 and %d at a %v heartbeat", n, elapsed, upper, interval)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(other) > 0 {
		t.Errorf("an idle node re-wrote its row: %+v", other)
	}
}

func TestDefaultHeartbeat(t *testing.T) {
	t.Parallel()
	// With no interval configured the node still registers at once; the
	// next heartbeat is DefaultHeartbeat away.
	st := run(t, node.Config{Name: "n"}).Store
	n := eventually(t, "the node to register", func() (api.Node, error) { return st.GetNode(t.Context(), "n") },
		func(n api.Node) bool { return n.State == api.NodeReady })
	if n.Labels == nil || len(n.Labels) != 0 {
		t.Errorf("labels = %#v, want an empty map", n.Labels)
	}
	if _, err := st.GetNode(t.Context(), "other"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("GetNode(other) = %v", err)
	}
}
