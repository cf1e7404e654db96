package state_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestRegistryAddressSaysWhy: when no registry is usable, the error names
// the real cause, and still matches ErrNoRegistry.
func TestRegistryAddressSaysWhy(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ready := []api.Condition{{Type: api.ConditionReady, Status: "True"}}
	starting := []api.Condition{{Type: api.ConditionReady, Status: "False", Reason: "Starting", Message: "container not healthy yet"}}
	tests := []struct {
		name     string
		beat     time.Duration // how long ago node1 heartbeated
		conds    []api.Condition
		noStatus bool
		want     string // "" wants the address
	}{
		{name: "serving", beat: time.Second, conds: ready},
		{name: "its node's heartbeat is late", beat: 40 * time.Second, conds: ready,
			want: "the internal registry's node node1 is NotReady since " + now.Add(-25*time.Second).Format(time.TimeOnly) + " (last heartbeat 40s ago)"},
		{name: "not ready on a live node", beat: time.Second, conds: starting,
			want: "the internal registry on node1 (10.0.0.1:5000) is not ready: Starting: container not healthy yet"},
		{name: "never started", beat: time.Second, noStatus: true, want: "no node serves the internal registry yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := statetest.Start(t).Store
			ctx := t.Context()
			beat := now.Add(-tt.beat)
			if err := store.RegisterNode(ctx, api.Node{Name: "node1", State: api.NodeReady, StartedAt: beat, HeartbeatAt: beat}); err != nil {
				t.Fatal(err)
			}
			if !tt.noStatus {
				if err := store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "node1", Address: "10.0.0.1:5000", Conditions: tt.conds, UpdatedAt: beat}); err != nil {
					t.Fatal(err)
				}
			}
			addr, err := store.RegistryAddress(ctx, now, 15*time.Second)
			switch {
			case tt.want == "" && (err != nil || addr != "10.0.0.1:5000"):
				t.Errorf("RegistryAddress = %q, %v; want 10.0.0.1:5000", addr, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, state.ErrNoRegistry)):
				t.Errorf("RegistryAddress = %q, %v; want an ErrNoRegistry saying %q", addr, err, tt.want)
			}
		})
	}
}
