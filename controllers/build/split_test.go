package build

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// TestPlatformPlan: a platform goes to a node that builds it natively when
// the owner would emulate it; otherwise the owner builds it.
func TestPlatformPlan(t *testing.T) {
	t.Parallel()
	amd := platformNode("amd", []string{"linux/amd64", "linux/arm64"}, "linux/arm64")
	arm := platformNode("arm", []string{"linux/arm64"})
	both := api.BuildSpec{Platforms: []string{"linux/amd64", "linux/arm64"}}
	for _, tt := range []struct {
		name  string
		nodes []api.Node
		spec  api.BuildSpec
		want  map[string]string
	}{
		{"a native arm64 node takes arm64", []api.Node{amd, arm}, both, map[string]string{"linux/amd64": "amd", "linux/arm64": "arm"}},
		{"no native arm64 node: the owner emulates", []api.Node{amd}, both, nil},
		{"one platform is never split", []api.Node{amd, arm}, api.BuildSpec{Platforms: []string{"linux/arm64"}}, nil},
		{"a selector that excludes the arm64 node", []api.Node{amd, arm},
			api.BuildSpec{Platforms: both.Platforms, Builder: api.BuilderSelector{Node: "amd"}}, nil},
	} {
		if got := platformPlan("p/web", tt.nodes, now, tt.spec, "amd"); !maps.Equal(got, tt.want) {
			t.Errorf("%s: plan %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSplitMultiPlatformBuild: the owner (amd64, emulating arm64) builds
// amd64 and waits; the native arm64 node builds arm64 as a part; the owner
// then merges both into one index, which is the build's result.
func TestSplitMultiPlatformBuild(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		return solveResult{Digest: "part" + strconv.Itoa(n)}, nil
	})
	ctx := context.Background()
	n2 := withArm64Node(t, w)
	w.apply(api.BuildSpec{Name: "p/multi", Platforms: []string{"linux/amd64", "linux/arm64"}})

	st, err := w.reconcile("p/multi")
	if err != nil || st.Phase != api.BuildBuilding || !strings.Contains(st.Message, "waiting for linux/arm64, built natively on n2") || w.solver.count() != 1 {
		t.Fatalf("owner first: %s %q (%v), %d solves; want building, waiting for n2's part, after 1 solve", st.Phase, st.Message, err, w.solver.count())
	}
	if _, err := n2.Reconcile(ctx, "p/multi"); err != nil {
		t.Fatal(err)
	}
	w.synced("p/multi", func(b state.BuildRecord) bool {
		part, ok := partResult(b, "n2", "linux/arm64", nil)
		return ok && part.Phase == api.BuildSucceeded
	})
	st, err = w.reconcile("p/multi")
	if err != nil || st.Phase != api.BuildSucceeded || w.solver.count() != 2 {
		t.Fatalf("owner after the part: %s %q (%v), %d solves; want succeeded after 2 (its own part reused)", st.Phase, st.Message, err, w.solver.count())
	}
	if want := map[string]string{"linux/amd64": "n1", "linux/arm64": "n2"}; !maps.Equal(st.Detail.Parts, want) {
		t.Errorf("parts %v, want %v", st.Detail.Parts, want)
	}
	w.synced("p/multi", func(b state.BuildRecord) bool {
		cur, ok := b.Current()
		return ok && cur.Digest == st.Digest && cur.Node == "n1"
	})

	registry, err := w.cache.NodeRegistry(ctx, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body, mediaType, _, ok, err := w.r.registry.manifest(ctx, registry, "p/multi", st.Digest)
	var index ocispec.Index
	if err != nil || !ok || mediaType != ocispec.MediaTypeImageIndex || json.Unmarshal(body, &index) != nil {
		t.Fatalf("the result %s is not an index in the registry: %s (%v, %v)", st.Digest, mediaType, ok, err)
	}
	var archs []string
	for _, m := range index.Manifests {
		archs = append(archs, m.Platform.Architecture)
	}
	if strings.Join(archs, ",") != "amd64,arm64" {
		t.Errorf("index holds %v, want amd64 and arm64", archs)
	}
	if _, err := n2.Reconcile(ctx, "p/multi"); err != nil || w.solver.count() != 2 {
		t.Errorf("n2 after the merge: %v, %d solves; want nothing more", err, w.solver.count())
	}
}

// TestSplitPartFails: a part that fails for good fails the build, naming
// the platform and the node.
func TestSplitPartFails(t *testing.T) {
	t.Parallel()
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		if n == 2 {
			return solveResult{}, runExit3
		}
		return solveResult{Digest: "part" + strconv.Itoa(n)}, nil
	})
	ctx := context.Background()
	n2 := withArm64Node(t, w)
	w.apply(api.BuildSpec{Name: "p/multi", Platforms: []string{"linux/amd64", "linux/arm64"}})
	if _, err := w.reconcile("p/multi"); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Reconcile(ctx, "p/multi"); err == nil {
		t.Fatal("n2's part failed, but its Reconcile says nothing")
	}
	w.synced("p/multi", func(b state.BuildRecord) bool { _, ok := partResult(b, "n2", "linux/arm64", nil); return ok })
	st, _ := w.reconcile("p/multi")
	if st.Phase != api.BuildFailed || !strings.Contains(st.Message, "linux/arm64 on n2: ") {
		t.Errorf("owner: %s %q, want failed naming linux/arm64 on n2", st.Phase, st.Message)
	}
}

// withArm64Node makes the world's n1 build amd64 natively and arm64 under
// emulation, adds n2 building arm64 natively, and returns n2's reconciler.
func withArm64Node(t *testing.T, w *buildWorld) *Reconciler {
	t.Helper()
	ctx := context.Background()
	for name, caps := range map[string]api.NodeCapacity{
		"n1": {Builders: []string{DriverBuildkit}, Platforms: []string{"linux/amd64", "linux/arm64"}, Emulated: []string{"linux/arm64"}},
		"n2": {Builders: []string{DriverBuildkit}, Platforms: []string{"linux/arm64"}},
	} {
		if err := w.store.RegisterNode(ctx, api.Node{Name: name, State: api.NodeReady, StartedAt: time.Now(), HeartbeatAt: time.Now().Add(time.Hour), Capacity: caps}); err != nil {
			t.Fatal(err)
		}
	}
	statetest.Eventually(t, "the cache to hold both nodes' platforms", func() bool {
		n1, err1 := w.cache.GetNode(ctx, "n1")
		_, err2 := w.cache.GetNode(ctx, "n2")
		return err1 == nil && err2 == nil && len(n1.Capacity.Emulated) == 1
	})
	n2 := newReconciler(w.store, w.cache.Reader, Config{Node: "n2", Driver: namedDriver{}, ContextCacheDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	n2.solver = w.solver
	return n2
}
