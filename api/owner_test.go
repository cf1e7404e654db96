package owner

import (
	"fmt"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
)

func nodes(now time.Time, names ...string) []api.Node {
	out := make([]api.Node, len(names))
	for i, n := range names {
		out[i] = api.Node{Name: n, State: api.NodeReady, HeartbeatAt: now}
	}
	return out
}

func TestPickIsDeterministicAndOrderFree(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, _ := Pick("hello/web", nodes(now, "n1", "n2", "n3"), now, nil)
	b, _ := Pick("hello/web", nodes(now, "n3", "n1", "n2"), now, nil)
	if a != b {
		t.Fatalf("owner depends on list order: %s vs %s", a, b)
	}
}

func TestPickSkipsDeadAndIneligible(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ns := nodes(now, "n1", "n2", "n3")
	ns[0].HeartbeatAt = now.Add(-time.Minute)      // silent
	ns[1].State = api.NodeGone                     // shut down
	ns[2].Capacity.Builders = []string{"buildkit"} // the only builder
	got, ok := Pick("k", ns, now, api.Node.CanBuild)
	if !ok || got != "n3" {
		t.Fatalf("Pick = %q, %v; want n3", got, ok)
	}
	if _, ok := Pick("k", ns[:2], now, nil); ok {
		t.Fatal("Pick found an owner among dead nodes")
	}
}

// A node leaving moves only the keys it owned (the point of rendezvous
// hashing): every other key keeps its owner.
func TestPickMovesOnlyTheLeaversKeys(t *testing.T) {
	t.Parallel()
	now := time.Now()
	all := nodes(now, "n1", "n2", "n3", "n4")
	moved, spread := 0, map[string]int{}
	for i := range 400 {
		key := fmt.Sprintf("p/s%d", i)
		before, _ := Pick(key, all, now, nil)
		after, _ := Pick(key, all[:3], now, nil)
		spread[before]++
		if before != after {
			moved++
			if before != "n4" {
				t.Fatalf("key %s moved from %s to %s when only n4 left", key, before, after)
			}
		}
	}
	if moved != spread["n4"] {
		t.Fatalf("moved %d keys, n4 owned %d", moved, spread["n4"])
	}
	for n, c := range spread {
		if c < 50 {
			t.Errorf("node %s owns only %d of 400 keys: hashing is badly skewed %v", n, c, spread)
		}
	}
}
