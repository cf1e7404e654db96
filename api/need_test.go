package api

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNeed(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 17, 2, 51, 0, time.UTC)
	const timeout = 15 * time.Second
	engine := NodeCapacity{Engine: true}
	live := func(name string) Node {
		return Node{Name: name, State: NodeReady, HeartbeatAt: now.Add(-time.Second), Capacity: engine}
	}
	silent := func(name string) Node {
		n := live(name)
		n.HeartbeatAt = now.Add(-55 * time.Second)
		return n
	}
	gone := func(name string) Node {
		n := silent(name)
		n.State = NodeGone
		return n
	}
	noEngine := func(name string) Node {
		n := live(name)
		n.Capacity = NodeCapacity{Builders: []string{"buildkit"}}
		return n
	}
	hostname := func(v string) Placement {
		return Placement{Constraints: []Constraint{{Key: KeyHostname, Op: OpEq, Value: v}}}
	}
	zoneA := Placement{Constraints: []Constraint{{Key: "node.labels.zone", Op: OpEq, Value: "a"}}}
	labelled := func(n Node, zone string) Node { n.Labels = map[string]string{"zone": zone}; return n }
	tests := []struct {
		name        string
		p           Placement
		nodes       []Node
		skipUnready bool
		wait        []string
		notes       []string // substrings, one per node left out or in doubt
	}{
		{"all nodes: live ones", Placement{}, []Node{live("n1"), live("n2")}, false, []string{"n1", "n2"}, nil},
		{"all nodes: a node without an engine is not waited for", Placement{}, []Node{live("n1"), noEngine("b1")}, false,
			[]string{"n1"}, []string{"b1 has no Docker Engine to pull with: not waited for"}},
		{"all nodes: a silent node is left out, and said so", Placement{}, []Node{live("n1"), silent("n3")}, false,
			[]string{"n1"}, []string{"n3 is NotReady since 17:02:11 (last heartbeat 55s ago): not waited for"}},
		{"all nodes: a gone node is left out", Placement{}, []Node{live("n1"), gone("n3")}, false,
			[]string{"n1"}, []string{"n3 is Gone: it shut down (last heartbeat 55s ago): not waited for"}},
		{"x-machines: a named silent node is waited for", Placement{Nodes: []string{"n1", "n2", "n3"}},
			[]Node{live("n1"), live("n2"), silent("n3")}, false, []string{"n1", "n2", "n3"},
			[]string{"n3 is NotReady since 17:02:11 (last heartbeat 55s ago): waiting for it (--skip-unready leaves it out)"}},
		{"x-machines: --skip-unready leaves it out", Placement{Nodes: []string{"n1", "n2", "n3"}},
			[]Node{live("n1"), live("n2"), silent("n3")}, true, []string{"n1", "n2"}, []string{"n3 is NotReady since 17:02:11 (last heartbeat 55s ago): not waited for"}},
		{"x-machines: the only placed node is silent", Placement{Nodes: []string{"n3"}}, []Node{live("n1"), silent("n3")}, false,
			[]string{"n3"}, []string{"n3 is NotReady"}},
		{"hostname constraint names the node too", hostname("n3"), []Node{live("n1"), gone("n3")}, false,
			[]string{"n3"}, []string{"n3 is Gone"}},
		{"a named node without an engine is not waited for", Placement{Nodes: []string{"b1"}}, []Node{noEngine("b1")}, false,
			nil, []string{"b1 has no Docker Engine"}},
		{"a named node that never joined is waited for", Placement{Nodes: []string{"n1", "n9"}}, []Node{live("n1")}, false,
			[]string{"n1", "n9"}, []string{"n9 has never joined the cluster: waiting for it"}},
		{"labels: a silent node is left out", zoneA, []Node{labelled(live("n1"), "a"), labelled(silent("n2"), "a"), labelled(live("n3"), "b")}, false,
			[]string{"n1"}, []string{"n2 is NotReady"}},
		{"no node placed", hostname("n9"), []Node{live("n1")}, true, nil, []string{"n9 has never joined the cluster: not waited for"}},
	}
	for _, tt := range tests {
		need := ImageSpec{Placement: tt.p}.Need(tt.nodes, NeedOptions{Now: now, LiveTimeout: timeout, SkipUnready: tt.skipUnready})
		if got := Waited(need); !reflect.DeepEqual(got, tt.wait) {
			t.Errorf("%s: waited for %v, want %v", tt.name, got, tt.wait)
		}
		var notes []string
		for _, n := range need {
			if n.Note != "" {
				notes = append(notes, n.Note)
			}
		}
		if len(notes) != len(tt.notes) {
			t.Errorf("%s: notes %q, want %d like %q", tt.name, notes, len(tt.notes), tt.notes)
			continue
		}
		for i, want := range tt.notes {
			if !strings.Contains(notes[i], want) {
				t.Errorf("%s: note %q, want it to contain %q", tt.name, notes[i], want)
			}
		}
	}
}

func TestPlaces(t *testing.T) {
	t.Parallel()
	spec := ImageSpec{Placement: Placement{Nodes: []string{"n1", "b1"}}}
	for _, tt := range []struct {
		n    Node
		want bool
	}{
		{Node{Name: "n1", Capacity: NodeCapacity{Engine: true}}, true},
		{Node{Name: "b1"}, false}, // no engine: it cannot pull
		{Node{Name: "n2", Capacity: NodeCapacity{Engine: true}}, false},
	} {
		if got := spec.Places(tt.n); got != tt.want {
			t.Errorf("Places(%s) = %v, want %v", tt.n.Name, got, tt.want)
		}
	}
}
