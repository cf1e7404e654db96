package managedregistry

import (
	"context"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/statetest"
)

// TestHolder picks the registry's node: the one serving keeps it while it
// is live (within FailoverAfter), a silent one loses it, and only nodes
// with an engine that match the spec are candidates.
func TestHolder(t *testing.T) {
	srv := statetest.Start(t)
	ctx := context.Background()
	now := time.Now()
	register := func(name string, engine bool, labels map[string]string, heartbeat time.Time) {
		t.Helper()
		err := srv.Store.RegisterNode(ctx, api.Node{Name: name, State: api.NodeReady, Labels: labels, StartedAt: now,
			HeartbeatAt: heartbeat, Capacity: api.NodeCapacity{Engine: engine}})
		if err != nil {
			t.Fatal(err)
		}
	}
	register("a", true, map[string]string{"zone": "x"}, now)
	register("b", true, map[string]string{"zone": "y"}, now.Add(-3*time.Second))
	register("noengine", false, nil, now)
	m := &managed{store: srv.Store, read: srv.Store.Reader, cfg: ManagedConfig{FailoverAfter: 5 * time.Second}}

	for _, tt := range []struct {
		spec api.RegistrySpec
		want string
	}{
		{api.RegistrySpec{Node: "b"}, "b"},
		{api.RegistrySpec{Selector: map[string]string{"zone": "x"}}, "a"},
		{api.RegistrySpec{Node: "noengine"}, ""},
	} {
		got, _, err := m.holder(ctx, tt.spec)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%+v: picked %s, want no eligible node", tt.spec, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v: holder %q (%v), want %q", tt.spec, got, err, tt.want)
		}
	}

	// b serves; it keeps the registry although hashing might prefer a.
	ready := []api.Condition{{Type: api.ConditionReady, Status: "True", LastTransitionTime: now}}
	if err := srv.Store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "b", Address: "b:5000", Conditions: ready, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	got, recheck, _ := m.holder(ctx, api.RegistrySpec{})
	if got != "b" {
		t.Errorf("holder %q, want b, which serves and is live", got)
	}
	// b's heartbeat is 3 s old: it times out in about 2 s of silence.
	if recheck < time.Second || recheck > 2200*time.Millisecond {
		t.Errorf("recheck in %v, want about 2 s, when b would time out", recheck)
	}
	// b's 3 s of silence is past a shorter FailoverAfter: a takes over.
	m.cfg.FailoverAfter = 2 * time.Second
	if got, _, _ := m.holder(ctx, api.RegistrySpec{}); got != "a" {
		t.Errorf("holder %q after b went silent, want a", got)
	}
}

// TestHolderKeptAfterStateOutage: after this node was cut off from the
// state, the serving node's silence is the same outage, so it keeps the
// registry for FailoverAfter; a node that saw no outage takes over. Before,
// the first node back after a 30 s outage of the state API moved the
// registry, empty, and every image was restored by rebuilding.
func TestHolderKeptAfterStateOutage(t *testing.T) {
	now := time.Now()
	silent := now.Add(-30 * time.Second)
	ready := []api.Condition{{Type: api.ConditionReady, Status: "True", LastTransitionTime: silent}}
	statuses := []api.RegistryStatus{{Node: "a", Address: "a:5000", Conditions: ready, UpdatedAt: silent}}
	for _, tt := range []struct {
		name        string
		selfBeat    time.Time // node b's last heartbeat
		outageSince time.Duration
		want        string
	}{
		{"no outage: a, silent, fails over", now, time.Hour, "b"},
		{"b could not read the state 2 s ago", now, 2 * time.Second, "a"},
		{"b's own heartbeat is late too", silent, time.Hour, "a"},
		{"the outage ended longer than FailoverAfter ago", now, 6 * time.Second, "b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nodes := []api.Node{
				{Name: "a", State: api.NodeReady, HeartbeatAt: silent, Capacity: api.NodeCapacity{Engine: true}},
				{Name: "b", State: api.NodeReady, HeartbeatAt: tt.selfBeat, Capacity: api.NodeCapacity{Engine: true}},
			}
			m := &managed{cfg: ManagedConfig{Config: Config{Node: "b"}, FailoverAfter: 5 * time.Second}, outageAt: now.Add(-tt.outageSince)}
			got, _, err := m.pickHolder(api.RegistrySpec{}, nodes, statuses, now)
			if err != nil || got != tt.want {
				t.Errorf("holder %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}
