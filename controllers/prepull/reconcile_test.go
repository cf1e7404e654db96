package prepull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

const (
	extDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	tagDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// fakeEngine returns the outcomes an engine can: each pull's from pull,
// given the pull's number (from 1); Resolve and Has from their fields.
type fakeEngine struct {
	mu       sync.Mutex
	pulls    int
	pull     func(ctx context.Context, n int, progress func(Progress)) error
	resolve  func(ref string) (string, error)
	holds    map[string]bool
	resolved int
}

func (e *fakeEngine) Pull(ctx context.Context, ref, _ string, progress func(Progress)) (string, error) {
	e.mu.Lock()
	e.pulls++
	n := e.pulls
	e.mu.Unlock()
	if err := e.pull(ctx, n, progress); err != nil {
		return "", err
	}
	e.mu.Lock()
	if e.holds == nil {
		e.holds = map[string]bool{}
	}
	e.holds[ref] = true
	e.mu.Unlock()
	_, dg, _ := strings.Cut(ref, "@")
	return dg, nil
}

func (e *fakeEngine) Has(_ context.Context, ref string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holds[ref], nil
}

func (e *fakeEngine) Resolve(_ context.Context, ref, _ string) (string, error) {
	e.mu.Lock()
	e.resolved++
	e.mu.Unlock()
	return e.resolve(ref)
}

func (e *fakeEngine) count() (pulls, resolves int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pulls, e.resolved
}

// Outcomes an engine returns, typed as the Docker adapter types them.
var (
	pulled       = func(context.Context, int, func(Progress)) error { return nil }
	notFound     = fmt.Errorf("manifest for x not found: manifest unknown: %w", cerrdefs.ErrNotFound)
	unauthorized = fmt.Errorf("no basic auth credentials: %w", cerrdefs.ErrUnauthenticated)
	refused      = errors.New(`Get "http://127.0.0.2:5004/v2/": dial tcp 127.0.0.2:5004: connect: connection refused`)
	failing      = func(err error) func(context.Context, int, func(Progress)) error {
		return func(context.Context, int, func(Progress)) error { return err }
	}
	resolvesTo = func(dg string) func(string) (string, error) { return func(string) (string, error) { return dg, nil } }
)

// prepullWorld is node1 (and maybe node2) on a real embedded state and
// cache, with a prepull controller whose only fake is the engine.
type prepullWorld struct {
	t      *testing.T
	store  *state.Store
	cache  *state.Cache
	engine *fakeEngine
	r      *Reconciler
}

func newPrepullWorld(t *testing.T, engine *fakeEngine, nodes ...string) *prepullWorld {
	t.Helper()
	srv := statetest.Start(t)
	now := time.Now()
	for _, n := range append([]string{"node1"}, nodes...) {
		if err := srv.Store.RegisterNode(context.Background(), api.Node{Name: n, State: api.NodeReady, StartedAt: now,
			HeartbeatAt: now.Add(time.Hour), Capacity: api.NodeCapacity{Engine: true}}); err != nil {
			t.Fatal(err)
		}
	}
	if engine.resolve == nil {
		engine.resolve = resolvesTo(tagDigest)
	}
	w := &prepullWorld{t: t, store: srv.Store, cache: srv.StartCache(t), engine: engine}
	w.r = &Reconciler{store: srv.Store, read: w.cache.Reader, engine: engine, cfg: Config{Node: "node1"},
		log: slog.New(slog.DiscardHandler), now: time.Now}
	statetest.Eventually(t, "the cache to hold the nodes", func() bool { return w.cache.Nodes.Len() == 1+len(nodes) })
	return w
}

func (w *prepullWorld) apply(images ...api.ImageSpec) {
	w.t.Helper()
	for i := range images {
		images[i].Project = "p"
	}
	if _, err := w.store.ApplyProject(context.Background(), &api.Project{Name: "p", Images: images}, state.ApplyOptions{}); err != nil {
		w.t.Fatal(err)
	}
	for _, img := range images {
		want, err := w.store.GetImage(context.Background(), img.Name)
		if err != nil {
			w.t.Fatal(err)
		}
		statetest.Eventually(w.t, "the cache to hold "+img.Name, func() bool {
			got, err := w.cache.GetImage(context.Background(), img.Name)
			return err == nil && got.Meta.Generation == want.Meta.Generation
		})
	}
}

// reconcile runs one Reconcile and returns node1's row afterwards, once
// the cache holds it too.
func (w *prepullWorld) reconcile(name string) (api.ImagePresence, bool, error) {
	w.t.Helper()
	_, err := w.r.Reconcile(context.Background(), name)
	img, gerr := w.store.GetImage(context.Background(), name)
	if gerr != nil {
		w.t.Fatal(gerr)
	}
	var own api.ImagePresence
	var had bool
	for _, p := range img.Presence {
		if p.Node == "node1" {
			own, had = p, true
		}
	}
	statetest.Eventually(w.t, "the cache to hold node1's row of "+name, func() bool {
		c, _ := w.cache.GetImage(context.Background(), name)
		for _, p := range c.Presence {
			if p.Node == "node1" {
				return had && p.UpdatedAt.Equal(own.UpdatedAt) && p.State == own.State && p.Error == own.Error
			}
		}
		return !had
	})
	return own, had, err
}

func outcomeOf(err error) string {
	_, waiting := reconcile.IsWaiting(err)
	switch {
	case waiting:
		return "waiting"
	case reconcile.IsTerminal(err):
		return "stalled"
	case err != nil:
		return "retry"
	}
	return "ok"
}

// TestPrepullReconcile covers node1's presence row through one reconcile
// after another, with the outcomes an engine returns.
func TestPrepullReconcile(t *testing.T) {
	t.Parallel()
	pinned := api.ImageSpec{Name: "p/ext", Image: "127.0.0.2:5004/ext@" + extDigest}
	tagged := api.ImageSpec{Name: "p/tag", Image: "127.0.0.2:5004/tag:v1"}
	for _, tt := range []struct {
		name   string
		image  api.ImageSpec
		engine *fakeEngine
		nodes  []string // besides node1
		steps  []presenceStep
	}{
		{"a pinned image is pulled once", pinned, &fakeEngine{pull: pulled}, nil, []presenceStep{
			{api.PresencePresent, 1, "", "ok", 1},
			{api.PresencePresent, 1, "", "ok", 1},
		}},
		{"a digest already on the engine is not pulled", pinned,
			&fakeEngine{pull: pulled, holds: map[string]bool{pinned.Image: true}}, nil, []presenceStep{
				{api.PresencePresent, 1, "", "ok", 0},
			}},
		{"an image the registry lacks fails for good", pinned, &fakeEngine{pull: failing(notFound)}, nil, []presenceStep{
			{api.PresenceFailed, 1, "attempt 1: manifest for x not found", "stalled", 1},
		}},
		{"a refused credential fails for good, naming the registry", pinned, &fakeEngine{pull: failing(unauthorized)}, nil, []presenceStep{
			{api.PresenceFailed, 1, "registry 127.0.0.2:5004 wants a credential and the image spec names none", "stalled", 1},
		}},
		{"a registry that is down is retried, counting attempts, and the generation is not observed", pinned,
			&fakeEngine{pull: failing(refused)}, nil, []presenceStep{
				{api.PresenceRetrying, 0, "attempt 1: Get", "retry", 1},
				{api.PresenceRetrying, 0, "attempt 2: Get", "retry", 2},
			}},
		{"a registry that comes back", pinned, &fakeEngine{pull: func(_ context.Context, n int, _ func(Progress)) error {
			if n == 1 {
				return refused
			}
			return nil
		}}, nil, []presenceStep{
			{api.PresenceRetrying, 0, "attempt 1", "retry", 1},
			{api.PresencePresent, 1, "", "ok", 2},
		}},
		{"a tag this node owns is resolved, then pulled by digest", tagged, &fakeEngine{pull: pulled}, nil, []presenceStep{
			{api.PresencePresent, 1, "", "ok", 1},
		}},
		{"a tag that does not exist fails for good", tagged,
			&fakeEngine{pull: pulled, resolve: func(string) (string, error) { return "", notFound }}, nil, []presenceStep{
				{api.PresenceFailed, 1, "does not exist", "stalled", 0},
			}},
		{"a tag another node owns waits for its resolution", tagged, &fakeEngine{pull: pulled}, []string{"node0", "node2", "node3"}, nil},
		{"a built image waits for its build", api.ImageSpec{Name: "p/web", Build: "p/web"}, &fakeEngine{pull: pulled}, nil, []presenceStep{
			{api.PresencePending, 0, "waiting for build p/web, which does not exist", "waiting", 0},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newPrepullWorld(t, tt.engine, tt.nodes...)
			w.apply(tt.image)
			if tt.steps == nil { // another node owns the tag
				tt.steps = ownerSteps(w, tt.image)
			}
			for i, want := range tt.steps {
				row, _, err := w.reconcile(tt.image.Name)
				pulls, _ := w.engine.count()
				if row.State != want.state || row.ObservedGeneration != want.gen || !strings.Contains(row.Error, want.errHas) ||
					outcomeOf(err) != want.outcome || pulls != want.pulls {
					t.Fatalf("step %d: %s gen %d %q, outcome %s (%v), %d pulls; want %s gen %d %q, %s, %d pulls",
						i+1, row.State, row.ObservedGeneration, row.Error, outcomeOf(err), err, pulls,
						want.state, want.gen, want.errHas, want.outcome, want.pulls)
				}
			}
		})
	}
}

// ownerSteps: when a node other than node1 owns the image's tag, node1
// waits, saying for whom; node1 never resolves it itself.
func ownerSteps(w *prepullWorld, img api.ImageSpec) []presenceStep {
	owner, _ := ownerOf(w, img)
	if owner == "node1" {
		w.t.Skip("node1 owns the tag in this hash; the case needs another owner")
	}
	return []presenceStep{{api.PresencePending, 0, "waiting for " + owner + " to resolve", "waiting", 0}}
}

// presenceStep is node1's row and outcome after one reconcile.
type presenceStep struct {
	state   string
	gen     int64  // observed generation
	errHas  string // in the row's error
	outcome string // ok, stalled, waiting, retry
	pulls   int    // pulls so far
}

func ownerOf(w *prepullWorld, img api.ImageSpec) (string, bool) {
	nodes, _ := w.cache.ListNodes(context.Background())
	return api.PickOwner(img.Name, nodes, time.Now(), img.Places)
}

// TestPrepullProgressAndRemoval: a slow pull shows pulling with its
// layers while it runs; an image placed elsewhere loses node1's row.
func TestPrepullProgressAndRemoval(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	w := newPrepullWorld(t, &fakeEngine{pull: func(ctx context.Context, _ int, progress func(Progress)) error {
		progress(Progress{LayersDone: 1, LayersTotal: 3, Bytes: 100, BytesTotal: 300})
		<-release
		return nil
	}})
	img := api.ImageSpec{Name: "p/ext", Image: "127.0.0.2:5004/ext@" + extDigest}
	w.apply(img)
	done := make(chan error, 1)
	go func() { _, err := w.r.Reconcile(context.Background(), img.Name); done <- err }()
	statetest.Eventually(t, "a pulling row with its layers", func() bool {
		got, _ := w.store.GetImage(context.Background(), img.Name)
		return len(got.Presence) == 1 && got.Presence[0].State == api.PresencePulling &&
			got.Presence[0].Detail.LayersDone == 1 && got.Presence[0].Detail.BytesTotal == 300
	})
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	img.Placement = api.Placement{Nodes: []string{"node9"}}
	w.apply(img)
	if row, had, err := w.reconcile(img.Name); had || err != nil {
		t.Errorf("placed elsewhere: node1's row %+v, err %v; want it gone", row, err)
	}
}

// TestPrepullOwnWriteOutrunsTheCache: a reconcile that reads a cache which
// has not yet seen this node's own "present" trusts the node's write. It
// neither pulls again nor shows the image as pulling again (found by e2e:
// `uc wait` passed, and the next read saw the row back at pulling).
func TestPrepullOwnWriteOutrunsTheCache(t *testing.T) {
	t.Setenv("UC_TEST_PULL_CRED", "user:pass") // a credential pulls even an image the engine holds
	engine := &fakeEngine{pull: pulled}
	w := newPrepullWorld(t, engine)
	w.apply(api.ImageSpec{Name: "p/cred", Image: "127.0.0.2:5004/cred@" + extDigest, PullCredential: "env:UC_TEST_PULL_CRED"})

	ctx, stop := context.WithCancel(context.Background())
	frozen := state.NewCache(w.store, slog.New(slog.DiscardHandler))
	frozen.Start(ctx)
	if err := frozen.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	stop() // from here on it lags: it never sees node1's row
	w.r.read = frozen.Reader

	for i := range 2 {
		if _, err := w.r.Reconcile(context.Background(), "p/cred"); err != nil {
			t.Fatalf("reconcile %d: %v", i+1, err)
		}
		img, err := w.store.GetImage(context.Background(), "p/cred")
		if err != nil || len(img.Presence) != 1 || img.Presence[0].State != api.PresencePresent {
			t.Fatalf("after reconcile %d: %+v, %v; want present", i+1, img.Presence, err)
		}
	}
	if pulls, _ := engine.count(); pulls != 1 {
		t.Errorf("%d pulls, want 1: the second reconcile did not trust this node's own write", pulls)
	}
}

// TestPrepullBuildsFirst: a built image that another build reads is
// pulled once that build is done over it (or failed, or after
// MaxPullDeferral), so that the graph's builds get the CPU first.
func TestPrepullBuildsFirst(t *testing.T) {
	t.Parallel()
	const parentDigest = "sha256:" + "1111111111111111111111111111111111111111111111111111111111111111"
	for _, tt := range []struct {
		name     string
		finished time.Duration // how long ago the parent's build finished
		child    *api.BuildStatus
		grand    *api.BuildStatus // p/top, over p/leaf
		want     string           // the parent's presence after one reconcile
		errHas   string
	}{
		{"the child has not started", time.Second, nil, nil, api.PresencePending, "waiting for build p/leaf, which builds on this image"},
		{"the child is building", time.Second, &api.BuildStatus{Phase: api.BuildBuilding}, nil, api.PresencePending, "p/leaf"},
		{"the child built over an older parent", time.Second,
			&api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: "sha256:c1", Detail: api.BuildDetail{Inputs: map[string]string{"p/base": "r/base@sha256:old"}}},
			nil, api.PresencePending, "p/leaf"},
		{"the child built over this parent", time.Second,
			&api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: "sha256:c2", Detail: api.BuildDetail{Inputs: map[string]string{"p/base": "r/base@" + parentDigest}}},
			nil, api.PresencePresent, ""},
		{"the child failed", time.Second, &api.BuildStatus{Phase: api.BuildFailed}, nil, api.PresencePresent, ""},
		{"waited long enough", MaxPullDeferral + time.Second, nil, nil, api.PresencePresent, ""},
		{"a grandchild is building", time.Second, &api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: "sha256:c2", Detail: api.BuildDetail{Inputs: map[string]string{"p/base": "r/base@" + parentDigest}}}, &api.BuildStatus{Phase: api.BuildBuilding}, api.PresencePending, "waiting for build p/top"},
		{"the grandchild built over the child", time.Second, &api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: "sha256:c2", Detail: api.BuildDetail{Inputs: map[string]string{"p/base": "r/base@" + parentDigest}}},
			&api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: "sha256:g", Detail: api.BuildDetail{Inputs: map[string]string{"p/leaf": "r/leaf@sha256:c2"}}},
			api.PresencePresent, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newPrepullWorld(t, &fakeEngine{pull: pulled})
			ctx := context.Background()
			project := &api.Project{Name: "p",
				Builds: []api.BuildSpec{{Name: "p/base", Project: "p"}, {Name: "p/leaf", Project: "p", AdditionalContexts: map[string]string{"base": api.ServiceContextPrefix + "p/base"}}},
				Images: []api.ImageSpec{{Name: "p/base", Project: "p", Build: "p/base"}}}
			if tt.grand != nil {
				project.Builds = append(project.Builds, api.BuildSpec{Name: "p/top", Project: "p", AdditionalContexts: map[string]string{"leaf": api.ServiceContextPrefix + "p/leaf"}})
			}
			if _, err := w.store.ApplyProject(ctx, project, state.ApplyOptions{}); err != nil {
				t.Fatal(err)
			}
			ready := []api.Condition{{Type: api.ConditionReady, Status: "True", LastTransitionTime: time.Now()}}
			if err := w.store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "node1", Address: "127.0.0.2:5004", Conditions: ready, UpdatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
			put := func(name string, st api.BuildStatus) {
				b, err := w.store.GetBuild(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				st.Name, st.Node, st.SpecUID, st.UpdatedAt = name, "node1", b.Meta.UID, time.Now()
				if err := w.store.PutBuildStatus(ctx, st); err != nil {
					t.Fatal(err)
				}
			}
			put("p/base", api.BuildStatus{Phase: api.BuildSucceeded, ObservedGeneration: 1, Digest: parentDigest,
				Detail: api.BuildDetail{Ref: "127.0.0.1:5000/p/base:latest", FinishedAt: time.Now().Add(-tt.finished)}})
			if tt.child != nil {
				put("p/leaf", *tt.child)
			}
			if tt.grand != nil {
				put("p/top", *tt.grand)
			}
			statetest.Eventually(t, "the cache to hold the builds", func() bool {
				recs, _ := w.cache.ListBuilds(ctx, "")
				n := 0
				for _, r := range recs {
					if _, ok := r.Current(); ok {
						n++
					}
				}
				_, regErr := w.cache.NodeRegistry(ctx, "", time.Now())
				want := 1 + map[bool]int{true: 1}[tt.child != nil] + map[bool]int{true: 1}[tt.grand != nil]
				return regErr == nil && len(recs) == len(project.Builds) && n == want
			})
			row, _, _ := w.reconcile("p/base")
			if row.State != tt.want || !strings.Contains(row.Error, tt.errHas) {
				t.Errorf("p/base on node1: %s %q, want %s %q", row.State, row.Error, tt.want, tt.errHas)
			}
			// The child's outcome wakes the parent's image.
			ev := state.Event[api.BuildStatus]{Type: state.EventUpdated, Key: "p/leaf",
				Old: api.BuildStatus{Name: "p/leaf", Phase: api.BuildBuilding}, New: api.BuildStatus{Name: "p/leaf", Phase: api.BuildFailed}}
			if got := w.r.imagesOfBuild(ev); !slices.Equal(got, []string{"p/base"}) {
				t.Errorf("a child's outcome enqueues %v, want the parent's image p/base", got)
			}
			if tt.grand != nil {
				ev.Key, ev.Old.Name, ev.New.Name = "p/top", "p/top", "p/top"
				if got := w.r.imagesOfBuild(ev); !slices.Equal(got, []string{"p/base"}) {
					t.Errorf("a grandchild's outcome enqueues %v, want the grandparent's image p/base", got)
				}
			}
		})
	}
}
