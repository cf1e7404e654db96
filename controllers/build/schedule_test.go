package build

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

var now = time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)

func liveNode(name string, builders ...string) api.Node {
	n := api.Node{Name: name, State: api.NodeReady, HeartbeatAt: now.Add(-time.Second), Capacity: api.NodeCapacity{Engine: true}}
	if len(builders) > 0 {
		n.Capacity.Builders, n.Capacity.Platforms = builders, []string{"linux/amd64"}
	}
	return n
}

func platformNode(name string, platforms []string, emulated ...string) api.Node {
	n := liveNode(name, "buildkit")
	n.Capacity.Platforms, n.Capacity.Emulated = platforms, emulated
	return n
}

func silentNode(name string, builders ...string) api.Node {
	n := liveNode(name, builders...)
	n.HeartbeatAt = now.Add(-time.Minute)
	return n
}

// TestPickBuilderSaysWhy: when no live node can build a spec, exactly one
// live node owns saying so, and the reason names what each node offers.
func TestPickBuilderSaysWhy(t *testing.T) {
	t.Parallel()
	zoneB := liveNode("b1", "buildkit")
	zoneB.Labels = map[string]string{"zone": "b"}
	amdEmulatingArm := platformNode("amd", []string{"linux/amd64", "linux/arm64"}, "linux/arm64")
	armNative := platformNode("arm", []string{"linux/arm64"})
	armEmulatingAmd := platformNode("arm", []string{"linux/arm64", "linux/amd64"}, "linux/amd64")
	arm64 := api.BuildSpec{Platforms: []string{"linux/arm64"}}
	tests := []struct {
		name   string
		nodes  []api.Node
		spec   api.BuildSpec
		owners []string // who may own it: the rendezvous pick among these
		why    []string // substrings of the refusal; none: it builds
	}{
		{name: "a builder builds it", nodes: []api.Node{liveNode("n1"), zoneB}, owners: []string{"b1"}},
		{name: "no builder node at all: a live node says so", nodes: []api.Node{liveNode("n1"), liveNode("n2"), silentNode("b9", "buildkit")},
			owners: []string{"n1", "n2"},
			why:    []string{"no live node runs a builder (n1: no builder; n2: no builder; b9: NotReady); start ucd run with --buildkit-addr"}},
		{name: "no live node at all: nobody", nodes: []api.Node{silentNode("n1")}},
		{name: "wrong platform", nodes: []api.Node{liveNode("n1"), zoneB}, spec: api.BuildSpec{Platforms: []string{"linux/s390x"}},
			owners: []string{"b1"}, why: []string{"no live builder node builds platforms linux/s390x (b1: buildkit driver, linux/amd64, labels zone=b"}},
		{name: "entitlement not allowed", nodes: []api.Node{liveNode("n1"), zoneB}, spec: api.BuildSpec{Entitlements: []string{"security.insecure"}},
			owners: []string{"b1"}, why: []string{"no live builder node allows entitlement security.insecure (b1: buildkit driver, linux/amd64, labels zone=b, allows no entitlements)",
				"--allow-entitlement security.insecure"}},
		{name: "x-uc-builder names a NotReady node", nodes: []api.Node{zoneB, silentNode("b2", "buildkit")}, spec: api.BuildSpec{Builder: api.BuilderSelector{Node: "b2"}},
			owners: []string{"b1"}, why: []string{`no live builder node matches x-uc-builder "b2" (b1: buildkit driver, linux/amd64, labels zone=b, allows no entitlements; b2: NotReady)`}},
		{name: "an arm64 build goes to the native arm64 node", nodes: []api.Node{amdEmulatingArm, armNative}, spec: arm64, owners: []string{"arm"}},
		{name: "an amd64 build goes to the native amd64 node", nodes: []api.Node{amdEmulatingArm, armNative}, spec: api.BuildSpec{Platforms: []string{"linux/amd64"}},
			owners: []string{"amd"}},
		{name: "with no arm64 node, an arm64 build runs emulated", nodes: []api.Node{amdEmulatingArm, liveNode("plain", "buildkit")}, spec: arm64, owners: []string{"amd"}},
		{name: "no node builds both natively: either emulates", nodes: []api.Node{amdEmulatingArm, armEmulatingAmd},
			spec: api.BuildSpec{Platforms: []string{"linux/amd64", "linux/arm64"}}, owners: []string{"amd", "arm"}},
		{name: "a refusal names emulated platforms", nodes: []api.Node{amdEmulatingArm}, spec: api.BuildSpec{Platforms: []string{"linux/riscv64"}},
			owners: []string{"amd"}, why: []string{"(amd: buildkit driver, linux/amd64,linux/arm64(emulated), allows"}},
		{name: "x-uc-builder selector matches nothing", nodes: []api.Node{zoneB}, spec: api.BuildSpec{Builder: api.BuilderSelector{Labels: map[string]string{"zone": "mars"}}},
			owners: []string{"b1"}, why: []string{`no live builder node matches x-uc-builder "zone=mars" (b1: buildkit driver`}},
	}
	for _, tt := range tests {
		node, refusal, ok := pickBuilder("p/web", tt.nodes, now, tt.spec)
		want, _ := api.PickOwner("p/web", tt.nodes, now, func(n api.Node) bool { return slices.Contains(tt.owners, n.Name) })
		if ok != (len(tt.owners) > 0) || node != want {
			t.Errorf("%s: owner %q (ok %v), want %q", tt.name, node, ok, want)
		}
		if (refusal != nil) != (len(tt.why) > 0) {
			t.Errorf("%s: refusal %v, want one saying %q", tt.name, refusal, tt.why)
			continue
		}
		for _, why := range tt.why {
			if !strings.Contains(refusal.Error(), why) {
				t.Errorf("%s: refusal %q, want it to contain %q", tt.name, refusal, why)
			}
		}
	}
}

// TestNonBuilderReportsRefusal runs the controller of a node without a
// builder over real state: as the build's owner among live nodes it
// records why nothing builds, and drops that record once a builder joins.
func TestNonBuilderReportsRefusal(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	store := statetest.Start(t).Store
	clock := time.Now()
	register := func(n api.Node) {
		n.HeartbeatAt, n.StartedAt = clock, clock
		if err := store.RegisterNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	register(liveNode("n1"))
	p := &api.Project{Name: "p", Builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: "/src"}}}
	if _, err := store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{store: store, read: store.Reader, cfg: Config{Node: "n1"}, log: slog.New(slog.DiscardHandler), now: func() time.Time { return clock }}
	reconcileAndGet := func() state.BuildRecord {
		t.Helper()
		// Unschedulable is terminal for this generation; node changes bring it back.
		if _, err := r.Reconcile(ctx, "p/web"); err != nil && !reconcile.IsTerminal(err) {
			t.Fatal(err)
		}
		b, err := store.GetBuild(ctx, "p/web")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := reconcileAndGet()
	cur, ok := b.Current()
	if !ok || cur.Node != "n1" || cur.Phase != api.BuildFailed || cur.ObservedGeneration != b.Meta.Generation ||
		!isUnschedulable(cur) || !strings.Contains(cur.Message, "no live node runs a builder (n1: no builder)") {
		t.Fatalf("status %+v (reported %v), want n1's Unschedulable failure of this generation", cur, ok)
	}
	register(liveNode("b1", "buildkit"))
	if b := reconcileAndGet(); len(b.Status) != 0 {
		t.Errorf("after a builder joined, statuses %+v; want n1's refusal gone", b.Status)
	}
}
