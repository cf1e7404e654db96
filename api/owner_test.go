package api

import (
	"fmt"
	"testing"
	"time"
)

func nodes(now time.Time, names ...string) []Node {
	out := make([]Node, len(names))
	for i, n := range names {
		out[i] = Node{Name: n, State: NodeReady, HeartbeatAt: now}
	}
	return out
}

func TestPickIsDeterministicAndOrderFree(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a, _ := PickOwner("hello/web", nodes(now, "n1", "n2", "n3"), now, nil)
	b, _ := PickOwner("hello/web", nodes(now, "n3", "n1", "n2"), now, nil)
	if a != b {
		t.Fatalf("owner depends on list order: %s vs %s", a, b)
	}
}

func TestPickSkipsDeadAndIneligible(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ns := nodes(now, "n1", "n2", "n3")
	ns[0].HeartbeatAt = now.Add(-time.Minute)      // silent
	ns[1].State = NodeGone                         // shut down
	ns[2].Capacity.Builders = []string{"buildkit"} // the only builder
	got, ok := PickOwner("k", ns, now, Node.CanBuild)
	if !ok || got != "n3" {
		t.Fatalf("PickOwner = %q, %v; want n3", got, ok)
	}
	if _, ok := PickOwner("k", ns[:2], now, nil); ok {
		t.Fatal("PickOwner found an owner among dead nodes")
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
		before, _ := PickOwner(key, all, now, nil)
		after, _ := PickOwner(key, all[:3], now, nil)
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
