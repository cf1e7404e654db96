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
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/statetest"
	"github.com/ucplane/uc/test/harness/poll"
)

// run starts the node controller against a fresh embedded state and stops
// it when the test ends.
func run(t *testing.T, cfg node.Config) *state.Store {
	t.Helper()
	srv := statetest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := node.New(srv.StartCache(t), cfg, slog.New(slog.DiscardHandler))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("controller Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() }) // runs before statetest's cleanup
	return srv.Store
}

// eventually polls get until ok accepts the node it returns.
var eventually = poll.Value[api.Node]

func TestNodeController(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"zone": "eu", "gpu": "yes"}
	cfg := node.Config{Name: "node1", Labels: labels, Version: "v1.2.3", Heartbeat: 50 * time.Millisecond}
	st := run(t, cfg)
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

// TestRowIsRestored edits the node's row behind the controller's back. With
// an hour-long heartbeat only the watch on the row can notice in time.
func TestRowIsRestored(t *testing.T) {
	t.Parallel()
	for _, hb := range []time.Duration{50 * time.Millisecond, time.Hour} {
		t.Run("heartbeat "+hb.String(), func(t *testing.T) {
			t.Parallel()
			labels := map[string]string{"zone": "eu"}
			st := run(t, node.Config{Name: "node1", Labels: labels, Version: "v1", Heartbeat: hb})
			ctx := t.Context()
			get := func() (api.Node, error) { return st.GetNode(ctx, "node1") }
			registered := func(n api.Node) bool {
				return n.State == api.NodeReady && n.Version == "v1" && maps.Equal(n.Labels, labels)
			}
			first := eventually(t, "the node to register", get, registered)
			for _, tc := range []struct{ name, sql string }{
				{"deleted row", `DELETE FROM nodes WHERE name = 'node1'`},
				{"edited labels", `UPDATE nodes SET labels = '{"zone":"us"}' WHERE name = 'node1'`},
				{"cleared labels", `UPDATE nodes SET labels = '{}' WHERE name = 'node1'`},
				{"gone state", `UPDATE nodes SET state = 'gone' WHERE name = 'node1'`},
				{"version", `UPDATE nodes SET version = 'old' WHERE name = 'node1'`},
				{"started_at", `UPDATE nodes SET started_at = 1 WHERE name = 'node1'`},
			} {
				if _, err := st.Client().Exec(ctx, corrosion.Stmt(tc.sql)); err != nil {
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
	st := run(t, node.Config{Name: "node1", Version: "v1", Heartbeat: interval})
	ctx := t.Context()
	eventually(t, "the node to register", func() (api.Node, error) { return st.GetNode(ctx, "node1") },
		func(n api.Node) bool { return n.State == api.NodeReady })

	sub, err := st.Client().Subscribe(ctx, corrosion.Stmt("SELECT name, labels, state, version, started_at, heartbeat_at FROM nodes"), corrosion.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	var mu sync.Mutex
	writes := 0
	var other []corrosion.Event
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			ev, err := sub.Next()
			if err != nil {
				return
			}
			if ev.Kind != corrosion.EventChange {
				continue
			}
			mu.Lock()
			writes++
			if ev.Change != corrosion.ChangeUpdate {
				other = append(other, ev)
			}
			mu.Unlock()
		}
	})
	const window = time.Second
	start := time.Now()
	time.Sleep(window) // a measurement window, not a synchronisation
	mu.Lock()
	n, elapsed := writes, time.Since(start)
	mu.Unlock()
	sub.Close()
	wg.Wait()

	// About one heartbeat per interval (bounded with 2x slack); a write
	// loop would produce hundreds. At least a few must have happened.
	upper := 2*int(elapsed/interval) + 2
	if n > upper || n < 3 {
		t.Errorf("%d writes to the node row in %v; want between 3 and %d at a %v heartbeat", n, elapsed, upper, interval)
	}
	if len(other) > 0 {
		t.Errorf("an idle node re-wrote its row: %+v", other)
	}
}

func TestDefaultHeartbeat(t *testing.T) {
	t.Parallel()
	// With no interval configured the node still registers at once; the
	// next heartbeat is DefaultHeartbeat away.
	st := run(t, node.Config{Name: "n"})
	n := eventually(t, "the node to register", func() (api.Node, error) { return st.GetNode(t.Context(), "n") },
		func(n api.Node) bool { return n.State == api.NodeReady })
	if n.Labels == nil || len(n.Labels) != 0 {
		t.Errorf("labels = %#v, want an empty map", n.Labels)
	}
	if _, err := st.GetNode(t.Context(), "other"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("GetNode(other) = %v", err)
	}
}
