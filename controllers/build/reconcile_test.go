package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver/errdefs"
	godigest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/registrytest"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

// fakeSolver stands in for BuildKit: each solve's outcome comes from
// outcome, given the solve's number (from 1) and its progress reporter. A
// solve that succeeds stores a small image under every ref in the real
// registry, as BuildKit's push does, and its digest is that image's.
type fakeSolver struct {
	mu      sync.Mutex
	solves  int
	outcome func(ctx context.Context, n int, report func(progress)) (solveResult, error)
	bases   map[string]string // what base images resolve to now
}

func (f *fakeSolver) solve(ctx context.Context, _ string, _ session.Attachable, _ api.BuildSpec, refs []string, _ map[string]string, _ io.Writer, report func(progress)) (solveResult, error) {
	f.mu.Lock()
	f.solves++
	n := f.solves
	f.mu.Unlock()
	res, err := f.outcome(ctx, n, report)
	if err != nil {
		return res, err
	}
	res.Digest, err = pushImage(ctx, refs, res.Digest)
	return res, err
}

// pushImage stores an image whose config is seed under every ref and
// returns its manifest digest.
func pushImage(ctx context.Context, refs []string, seed string) (string, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	cdg := godigest.FromBytes(config)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cdg.String() + `","size":` + strconv.Itoa(len(config)) + `},"layers":[]}`)
	for _, ref := range refs {
		reg, repo, tag := api.SplitImageRef(ref)
		base := "http://" + reg + "/v2/" + repo
		if err := uploadBlob(ctx, "http://"+reg, base, cdg, config); err != nil {
			return "", err
		}
		if err := put(ctx, base+"/manifests/"+tag, http.MethodPut, "application/vnd.oci.image.manifest.v1+json", manifest, http.StatusCreated); err != nil {
			return "", err
		}
	}
	return godigest.FromBytes(manifest).String(), nil
}

// uploadBlob opens an upload and completes it in one PUT.
func uploadBlob(ctx context.Context, origin, base string, dg godigest.Digest, blob []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("open upload: %s", resp.Status)
	}
	if strings.HasPrefix(loc, "/") {
		loc = origin + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return put(ctx, loc+sep+"digest="+dg.String(), http.MethodPut, "application/octet-stream", blob, http.StatusCreated)
}

func put(ctx context.Context, url, method, ctype string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}

func (f *fakeSolver) resolveBases(_ context.Context, images []string, _ session.Attachable) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, img := range images {
		if dg, ok := f.bases[img]; ok {
			out[img] = dg
		}
	}
	return out, nil
}

func (f *fakeSolver) moveBase(image, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bases[image] = digest
}

func (f *fakeSolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.solves
}

// namedDriver is a driver that is only a name: the fake solver solves.
type namedDriver struct{}

func (namedDriver) Name() string { return DriverBuildkit }
func (namedDriver) Open(context.Context) (*client.Client, error) {
	return nil, errors.New("not a real driver")
}
func (namedDriver) configure(*client.SolveOpt, api.BuildSpec, string, []string) error {
	return nil
}
func (namedDriver) finish(context.Context, *client.SolveResponse, []string, io.Writer) (string, error) {
	return "", nil
}

// Outcomes a builder can return, as BuildKit's client types them.
var (
	builds = func(digest string) func(context.Context, int, func(progress)) (solveResult, error) {
		return func(context.Context, int, func(progress)) (solveResult, error) {
			return solveResult{Digest: digest}, nil
		}
	}
	fails = func(err error) func(context.Context, int, func(progress)) (solveResult, error) {
		return func(context.Context, int, func(progress)) (solveResult, error) { return solveResult{}, err }
	}
	runExit3    = fmt.Errorf("failed to solve: %w", &gwpb.ExitError{ExitCode: 3, Err: errors.New(`process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`)})
	syntaxError = fmt.Errorf("failed to solve: %w", (&errdefs.Frontend{Name: "dockerfile.v0"}).WrapError(errors.New("dockerfile parse error on line 2: unknown instruction: FOO")))
	unavailable = status.Error(codes.Unavailable, "connection error: dial unix /run/buildkit/buildkitd.sock: connect: no such file or directory")
	digestA     = "sha256:" + fmt.Sprintf("%064x", 0xa)
	digestB     = "sha256:" + fmt.Sprintf("%064x", 0xb)
)

// buildWorld is one builder node, n1, with a real embedded state, its
// cache and a real in-process registry, and a build controller whose only
// fake is the solver.
type buildWorld struct {
	t      *testing.T
	store  *state.Store
	cache  *state.Cache
	r      *Reconciler
	solver *fakeSolver
}

func newBuildWorld(t *testing.T, outcome func(context.Context, int, func(progress)) (solveResult, error)) *buildWorld {
	t.Helper()
	srv := statetest.Start(t)
	ctx := context.Background()
	reg := registrytest.Serve(t, registry.Config{})
	now := time.Now()
	if err := srv.Store.RegisterNode(ctx, api.Node{Name: "n1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now.Add(time.Hour),
		Capacity: api.NodeCapacity{Builders: []string{DriverBuildkit}, Platforms: []string{"linux/amd64"}}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "n1", Address: reg, UpdatedAt: now,
		Conditions: []api.Condition{{Type: api.ConditionReady, Status: "True"}}}); err != nil {
		t.Fatal(err)
	}
	w := &buildWorld{t: t, store: srv.Store, cache: srv.StartCache(t), solver: &fakeSolver{outcome: outcome}}
	w.r = newReconciler(srv.Store, w.cache.Reader, Config{Node: "n1", Driver: namedDriver{}, ContextCacheDir: t.TempDir()},
		slog.New(slog.DiscardHandler))
	w.r.solver = w.solver
	return w
}

// apply writes the project's builds and waits until the cache has them.
func (w *buildWorld) apply(specs ...api.BuildSpec) {
	w.t.Helper()
	for i := range specs {
		specs[i].Project, specs[i].Context = "p", w.t.TempDir()
		if specs[i].DockerfileInline == "" {
			specs[i].DockerfileInline = "FROM scratch\n"
		}
		if specs[i].Image == "" {
			specs[i].Image = specs[i].Name
		}
	}
	if _, err := w.store.ApplyProject(context.Background(), &api.Project{Name: "p", Builds: specs}, state.ApplyOptions{}); err != nil {
		w.t.Fatal(err)
	}
	for _, s := range specs {
		want, err := w.store.GetBuild(context.Background(), s.Name)
		if err != nil {
			w.t.Fatal(err)
		}
		w.synced(s.Name, func(b state.BuildRecord) bool { return b.Meta.Generation == want.Meta.Generation })
	}
}

// synced waits until the cache's copy of the build satisfies ok.
func (w *buildWorld) synced(name string, ok func(state.BuildRecord) bool) {
	w.t.Helper()
	statetest.Eventually(w.t, "the cache to hold "+name, func() bool {
		b, err := w.cache.GetBuild(context.Background(), name)
		return err == nil && ok(b)
	})
}

// reconcile runs one Reconcile and returns n1's status row afterwards,
// once the cache holds it too, and the outcome.
func (w *buildWorld) reconcile(name string) (api.BuildStatus, error) {
	w.t.Helper()
	_, err := w.r.Reconcile(context.Background(), name)
	b, gerr := w.store.GetBuild(context.Background(), name)
	if gerr != nil {
		w.t.Fatal(gerr)
	}
	var own api.BuildStatus
	for _, st := range b.Status {
		if st.Node == "n1" {
			own = st
		}
	}
	w.synced(name, func(c state.BuildRecord) bool {
		for _, st := range c.Status {
			if st.Node == "n1" {
				return st.UpdatedAt.Equal(own.UpdatedAt) && st.Phase == own.Phase
			}
		}
		return own.Phase == ""
	})
	return own, err
}

func conditionOf(st api.BuildStatus, t string) api.Condition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return api.Condition{}
}

// TestBuildReconcile covers the build's status transitions, one reconcile
// after another, with the outcomes a builder returns.
func TestBuildReconcile(t *testing.T) {
	t.Parallel()
	type step struct {
		phase   string
		cond    string // a condition that must be True
		reason  string // its reason
		gen     int64  // observed generation
		outcome string // "ok", "stalled", "waiting", "retry"
		solves  int    // total solves so far
	}
	for _, tt := range []struct {
		name    string
		specs   []api.BuildSpec
		outcome func(context.Context, int, func(progress)) (solveResult, error)
		steps   []step
	}{
		{"a build succeeds once; the next reconcile solves nothing",
			[]api.BuildSpec{{Name: "p/web"}}, builds("a"), []step{
				{api.BuildSucceeded, api.ConditionReady, "Built", 1, "ok", 1},
				{api.BuildSucceeded, api.ConditionReady, "Built", 1, "ok", 1},
			}},
		{"a RUN that exits non-zero stalls at once and is not retried",
			[]api.BuildSpec{{Name: "p/web"}}, fails(runExit3), []step{
				{api.BuildFailed, api.ConditionStalled, "BuildFailed", 1, "stalled", 1},
				{api.BuildFailed, api.ConditionStalled, "BuildFailed", 1, "ok", 1},
			}},
		{"BuildKit unavailable is retried, and the generation is not observed",
			[]api.BuildSpec{{Name: "p/web"}}, fails(unavailable), []step{
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 1},
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 2},
			}},
		{"a frontend error is retried, then stalls",
			[]api.BuildSpec{{Name: "p/web"}}, fails(syntaxError), []step{
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 1},
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 2},
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 3},
				{api.BuildFailed, api.ConditionStalled, "BuildFailed", 1, "stalled", 4},
			}},
		{"a transient failure, then success",
			[]api.BuildSpec{{Name: "p/web"}}, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
				if n == 1 {
					return solveResult{}, unavailable
				}
				return solveResult{Digest: "b"}, nil
			}, []step{
				{api.BuildFailed, api.ConditionReconciling, "RetryingBuild", 0, "retry", 1},
				{api.BuildSucceeded, api.ConditionReady, "Built", 1, "ok", 2},
			}},
		{"a build for no node's platform is unschedulable, stalled",
			[]api.BuildSpec{{Name: "p/web", Platforms: []string{"linux/s390x"}}}, builds("a"), []step{
				{api.BuildFailed, api.ConditionStalled, reasonUnschedulable, 1, "stalled", 0},
			}},
		{"a build whose service: context has no result waits, without failing",
			[]api.BuildSpec{{Name: "p/base"}, {Name: "p/app", AdditionalContexts: map[string]string{"base": api.ServiceContextPrefix + "p/base"}}},
			builds("a"), []step{
				{api.BuildPending, api.ConditionReconciling, "WaitingForDependency", 0, "waiting", 0},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newBuildWorld(t, tt.outcome)
			w.apply(tt.specs...)
			name := tt.specs[len(tt.specs)-1].Name
			for i, want := range tt.steps {
				st, err := w.reconcile(name)
				_, waiting := reconcile.IsWaiting(err)
				got := "ok"
				switch {
				case waiting:
					got = "waiting"
				case reconcile.IsTerminal(err):
					got = "stalled"
				case err != nil:
					got = "retry"
				}
				c := conditionOf(st, want.cond)
				if st.Phase != want.phase || c.Status != "True" || c.Reason != want.reason || st.ObservedGeneration != want.gen ||
					got != want.outcome || w.solver.count() != want.solves {
					t.Fatalf("step %d: phase %s, %s=%q reason %q, gen %d, outcome %s (%v), %d solves;\nwant %s, %s True reason %q, gen %d, %s, %d solves\nconditions %+v",
						i+1, st.Phase, want.cond, c.Status, c.Reason, st.ObservedGeneration, got, err, w.solver.count(),
						want.phase, want.cond, want.reason, want.gen, want.outcome, want.solves, st.Conditions)
				}
			}
		})
	}
}

// TestBuildReconcileKeepsTransitionTime: retried failures keep Ready's
// LastTransitionTime; success moves it.
func TestBuildReconcileKeepsTransitionTime(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_000_000, 0)
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		if n < 3 {
			return solveResult{}, unavailable
		}
		return solveResult{Digest: "a"}, nil
	})
	w.r.now = func() time.Time { return clock }
	w.apply(api.BuildSpec{Name: "p/web"})
	first, _ := w.reconcile("p/web")
	clock = clock.Add(time.Minute)
	second, _ := w.reconcile("p/web")
	if a, b := conditionOf(first, api.ConditionReady), conditionOf(second, api.ConditionReady); !a.LastTransitionTime.Equal(b.LastTransitionTime) {
		t.Errorf("a second failure moved Ready's transition time: %v → %v", a.LastTransitionTime, b.LastTransitionTime)
	}
	clock = clock.Add(time.Minute)
	third, _ := w.reconcile("p/web")
	if c := conditionOf(third, api.ConditionReady); c.Status != "True" || !c.LastTransitionTime.Equal(clock) {
		t.Errorf("success: Ready %+v, want True since %v", c, clock)
	}
}

// TestBuildProgressAndSupersede runs the controller (runtime, cache
// events) with a slow build: its progress shows while it runs, and a new
// generation of the spec cancels it and builds the new one.
func TestBuildProgressAndSupersede(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 2)
	w := newBuildWorld(t, func(ctx context.Context, n int, report func(progress)) (solveResult, error) {
		report(progress{StepsDone: 1, StepsTotal: 3, LogTail: []string{"#1 step one"}})
		started <- struct{}{}
		if n == 1 {
			<-ctx.Done() // a slow build, until cancelled
			return solveResult{}, context.Cause(ctx)
		}
		return solveResult{Digest: "b"}, nil
	})
	ctrl := newController(w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = ctrl.Run(ctx) }()

	w.apply(api.BuildSpec{Name: "p/web", Args: map[string]string{"V": "1"}})
	<-started
	w.synced("p/web", func(b state.BuildRecord) bool {
		cur, ok := b.Current()
		return ok && cur.Phase == api.BuildBuilding && cur.Detail.StepsDone == 1 && cur.Detail.StepsTotal == 3
	})
	w.apply(api.BuildSpec{Name: "p/web", Args: map[string]string{"V": "2"}})
	<-started
	w.synced("p/web", func(b state.BuildRecord) bool {
		cur, ok := b.Current()
		return ok && cur.Phase == api.BuildSucceeded && cur.ObservedGeneration == 2
	})
	if n := w.solver.count(); n != 2 {
		t.Errorf("%d solves, want 2 (the first cancelled, the second built)", n)
	}
}

// newController wires the world's reconciler to the runtime and the cache,
// as New does.
func newController(w *buildWorld) *reconcile.Controller {
	specs := w.r.cancelSuperseded(w.cache.BuildSpecs.Source(func(ev state.Event[state.BuildRecord]) []string { return []string{ev.Key} }))
	return reconcile.New(reconcile.Options{Name: "build", Workers: 2, Lister: w.r.listBuilds, Logger: slog.New(slog.DiscardHandler)},
		w.r, specs, w.cache.BuildStatus.Source(w.r.dependentsOf))
}

// TestBuildFollowsItsBase: a build with x-uc-rebuild-on-base rebuilds when
// its base moves, checked at most once per interval, and not otherwise.
func TestBuildFollowsItsBase(t *testing.T) {
	t.Parallel()
	const base = "docker.io/library/base:1"
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		return solveResult{Digest: strconv.Itoa(n)}, nil
	})
	w.solver.bases = map[string]string{base: "sha256:" + strings.Repeat("a", 64)}
	clock := time.Now()
	w.r.now = func() time.Time { return clock }
	w.apply(api.BuildSpec{Name: "p/f", RebuildOnBase: "10s", DockerfileInline: "FROM base:1\n"})

	steps := []struct {
		name    string
		advance time.Duration
		moveTo  string
		solves  int
		message string
	}{
		{"first build", 0, "", 1, ""},
		{"base unchanged", 11 * time.Second, "", 1, ""},
		{"base moved, not due yet", time.Second, "sha256:" + strings.Repeat("b", 64), 1, ""},
		{"base moved and due", 10 * time.Second, "", 2, "; base " + base + " moved to a new digest"},
		{"built on the new base", 11 * time.Second, "", 2, ""},
	}
	for _, s := range steps {
		clock = clock.Add(s.advance)
		if s.moveTo != "" {
			w.solver.moveBase(base, s.moveTo)
		}
		st, err := w.reconcile("p/f")
		if err != nil || st.Phase != api.BuildSucceeded || w.solver.count() != s.solves {
			t.Fatalf("%s: %s after %d solves, %v; want succeeded after %d", s.name, st.Phase, w.solver.count(), err, s.solves)
		}
		if s.message != "" && !strings.Contains(st.Message, s.message) {
			t.Errorf("%s: message %q, want %q", s.name, st.Message, s.message)
		}
	}
	b, _ := w.store.GetBuild(context.Background(), "p/f")
	if cur, _ := b.Current(); cur.Detail.Bases[base] != "sha256:"+strings.Repeat("b", 64) {
		t.Errorf("bases recorded %v, want the moved digest", cur.Detail.Bases)
	}
}

// TestUnfollowedBaseMoveIsReported: a build without x-uc-rebuild-on-base
// is not rebuilt when its base moves, but its status says the base moved
// (checked once per BaseWatch), and stops saying so when it moves back.
func TestUnfollowedBaseMoveIsReported(t *testing.T) {
	t.Parallel()
	const base = "docker.io/library/debian:12"
	first, second := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	w := newBuildWorld(t, func(_ context.Context, n int, _ func(progress)) (solveResult, error) {
		return solveResult{Digest: strconv.Itoa(n)}, nil
	})
	w.r.cfg.BaseWatch = time.Minute
	w.solver.bases = map[string]string{base: first}
	clock := time.Now()
	w.r.now = func() time.Time { return clock }
	w.apply(api.BuildSpec{Name: "p/u", DockerfileInline: "FROM debian:12\n"})

	steps := []struct {
		name    string
		advance time.Duration
		moveTo  string
		moved   map[string]string
	}{
		{"first build", 0, "", nil},
		{"base moved, not due yet", 30 * time.Second, second, nil},
		{"base moved and due: reported, not rebuilt", 31 * time.Second, "", map[string]string{base: second}},
		{"still moved", 61 * time.Second, "", map[string]string{base: second}},
		{"moved back", 61 * time.Second, first, nil},
	}
	for _, s := range steps {
		clock = clock.Add(s.advance)
		if s.moveTo != "" {
			w.solver.moveBase(base, s.moveTo)
		}
		st, err := w.reconcile("p/u")
		if err != nil || st.Phase != api.BuildSucceeded || w.solver.count() != 1 {
			t.Fatalf("%s: %s after %d solves, %v; want succeeded after 1", s.name, st.Phase, w.solver.count(), err)
		}
		if !maps.Equal(st.Detail.MovedBases, s.moved) {
			t.Errorf("%s: moved bases %v, want %v", s.name, st.Detail.MovedBases, s.moved)
		}
	}
}
