// Package build is the build controller: for every BuildSpec, the one live
// builder node that rendezvous hashing picks solves it with BuildKit, pushes
// the image to the internal registry and records the digest, timings and
// the last lines of the log in its own build_status row.
package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	dockerclient "github.com/docker/docker/client"
	"github.com/moby/buildkit/session"
	"k8s.io/client-go/util/workqueue"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry/contextstore"
	"github.com/ucplane/uc/state"
)

// Config says how this node builds.
type Config struct {
	Node string
	// Driver is how this node reaches its BuildKit. Nil: the node does not
	// build, and only records why a build cannot run when no live node
	// builds at all and it is that build's owner among the live nodes.
	Driver Driver
	// MaxBuilds limits concurrent builds on this node; more wait, visibly,
	// as "queued". Default DefaultMaxBuilds.
	MaxBuilds int
	// LogDir keeps every build's full log (empty: keep none).
	LogDir string
	// ContextCacheDir holds contexts fetched from the registry, by digest.
	ContextCacheDir string
	// DataDir is the node's data dir: when its disk is full, a failed
	// build says so and is retried.
	DataDir string
	// Credentials are the internal registry's, when it has auth.
	Credentials api.CredentialSource
	// Engine is this node's Docker Engine, if any: a restore copies from it
	// an image whose sources are gone with the old registry.
	Engine *dockerclient.Client
	// Registry is the internal registry's stable address on this node
	// (registry/forward): builds push there and record it in their
	// references. Empty: the registry's own address.
	Registry string
	// BaseWatch is how often the owner of a build that does not follow its
	// bases checks whether they moved, to say so in its status. Default
	// DefaultBaseWatch; negative: never.
	BaseWatch time.Duration
}

// DefaultBaseWatch is how often unfollowed bases are checked: a move is
// news, not a rebuild, so it need not be seen soon.
const DefaultBaseWatch = 15 * time.Minute

// Reconciler builds the BuildSpecs this node owns.
type Reconciler struct {
	store    *state.Store // writes, and the fresh read before a build starts
	read     state.Reader // the cache
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	registry *registryClient
	solver   solver        // BuildKit, through cfg.Driver
	slots    chan struct{} // one per build this node may run at once

	mu      sync.Mutex
	running map[string]runningBuild // by build name
	// unwritten holds outcomes whose status write failed, by build name,
	// until a retry writes them.
	unwritten map[string]api.BuildStatus
	attempts  map[string]attempt // failed attempts, by build name
	followed  baseChecks         // when followed builds' bases were last resolved
	heads     gitHeads           // what followed branches last resolved to
}

// DefaultMaxBuilds is how many builds a node runs at once by default.
const DefaultMaxBuilds = 4

// New returns the build controller. It watches specs, and nodes because a
// membership change can move a build to another owner; the resync catches
// nodes that go silent without a row changing. It reads through the
// cache, and reads the state API only to decide to start a build.
func New(cache *state.Cache, cfg Config, log *slog.Logger) *reconcile.Controller {
	r := newReconciler(cache.Store(), cache.Reader, cfg, log)
	cfg = r.cfg
	specs := r.cancelSuperseded(cache.BuildSpecs.Source(func(ev state.Event[state.BuildRecord]) []string { return []string{ev.Key} }))
	nodes := cache.Nodes.Source(allBuildsIf(r, nodeMoved))
	sources := []reconcile.Source{specs, nodes}
	if cfg.Driver != nil { // a node that only reports refusals needs no more
		// A registry that moves may lack images: every build checks.
		registries := cache.RegistryStatus.Source(allBuildsIf(r, registryMoved))
		sources = append(sources, registries, cache.BuildStatus.Source(r.dependentsOf))
	}
	return reconcile.New(reconcile.Options{
		// More workers than slots, so that builds past the limit show as queued.
		Name: "build", Workers: cfg.MaxBuilds + 2, Timeout: 30 * time.Minute, Resync: 30 * time.Second,
		Lister: r.listBuilds, Logger: log, RateLimiter: buildRetries(),
	}, r, sources...)
}

// buildRetries spaces out retries of a failing build from 1 s up to
// 5 minutes, so that a registry or BuildKit that comes back is noticed
// soon, and input failures get their few attempts over seconds, not
// milliseconds.
func buildRetries() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 5*time.Minute)
}

func newReconciler(store *state.Store, read state.Reader, cfg Config, log *slog.Logger) *Reconciler {
	if cfg.MaxBuilds <= 0 {
		cfg.MaxBuilds = DefaultMaxBuilds
	}
	return &Reconciler{store: store, read: read, cfg: cfg, log: log.With("controller", "build"), now: time.Now, solver: driverSolver{cfg.Driver},
		registry: newRegistryClient(cfg.Credentials), slots: make(chan struct{}, cfg.MaxBuilds), running: map[string]runningBuild{},
		unwritten: map[string]api.BuildStatus{}, attempts: map[string]attempt{}, heads: gitHeads{}}
}

// nodeMoved is a node change that can move builds: not a heartbeat.
func nodeMoved(ev state.Event[api.Node]) bool {
	o, n := ev.Old, ev.New
	return ev.Type != state.EventUpdated || o.State != n.State || !reflect.DeepEqual(o.Capacity, n.Capacity) ||
		!maps.Equal(o.Labels, n.Labels) || !o.StartedAt.Equal(n.StartedAt)
}

// registryMoved is a registry record that changed where or whether it serves.
func registryMoved(ev state.Event[api.RegistryStatus]) bool {
	return ev.Type != state.EventUpdated || ev.Old.Address != ev.New.Address ||
		api.IsTrue(ev.Old.Conditions, api.ConditionReady) != api.IsTrue(ev.New.Conditions, api.ConditionReady)
}

// allBuildsIf re-checks every build on an event that matters.
func allBuildsIf[T any](r *Reconciler, matters func(state.Event[T]) bool) func(state.Event[T]) []string {
	return func(ev state.Event[T]) []string {
		if !matters(ev) {
			return nil
		}
		names, _ := r.listBuilds(context.Background())
		return names
	}
}

// dependentsOf turns a build's new result into a check of the builds that
// read it through a service: context.
func (r *Reconciler) dependentsOf(ev state.Event[api.BuildStatus]) []string {
	if part := ev.Object(); part.Detail.Part != "" { // a part's outcome: its owner merges, or fails
		if ev.Type == state.EventUpdated && ev.Old.Phase == ev.New.Phase && ev.Old.Digest == ev.New.Digest {
			return nil
		}
		return []string{part.Name}
	}
	if ev.Type == state.EventUpdated && ev.Old.Digest == ev.New.Digest {
		return nil
	}
	parent := ev.Object().Name
	recs, _ := r.read.ListBuilds(context.Background(), "")
	var out []string
	for _, b := range recs {
		if slices.Contains(b.Spec.DependsOn(), parent) {
			out = append(out, b.Spec.Name)
		}
	}
	return out
}

func (r *Reconciler) listBuilds(ctx context.Context) ([]string, error) {
	recs, err := r.read.ListBuilds(ctx, "")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(recs))
	for i, b := range recs {
		names[i] = b.Spec.Name
	}
	return names, nil
}

// Reconcile builds name if this node owns it and its generation is not
// built. It concludes one status and one outcome, and summarize writes
// that status once (see status.go).
func (r *Reconciler) Reconcile(ctx context.Context, name string) (reconcile.Result, error) {
	rec, err := r.read.GetBuild(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		r.forgetUnwritten(name)
		return reconcile.Result{}, r.store.DeleteBuildStatus(ctx, name, r.cfg.Node)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	// An outcome whose write failed is this reconcile's one write; its
	// row's event brings the key back for anything more.
	if written, err := r.flushUnwritten(ctx, rec); err != nil || written {
		return reconcile.Result{}, err
	}
	st, err := r.reconcileBuild(ctx, rec)
	// A build comes back when its bases or its branch are due to be checked.
	return reconcile.Result{RequeueAfter: r.recheckAfter(rec.Spec)}, r.summarize(ctx, rec, st, err)
}

// reconcileBuild decides what this node does about a build, and returns
// the status that says so (nil: nothing to say) and the outcome.
func (r *Reconciler) reconcileBuild(ctx context.Context, rec state.BuildRecord) (*api.BuildStatus, error) {
	nodes, err := r.read.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	if rec.Spec.BuildOn == api.BuildOnLocal {
		return r.reconcileLocal(ctx, rec, nodes)
	}
	builder, refusal, ok := pickBuilder(rec.Spec.Name, nodes, r.now(), rec.Spec)
	var plan map[string]string // nil: no split (one that only reports a refusal builds nothing)
	// A followed branch is resolved by the owner alone: parts built
	// elsewhere could build another commit.
	if refusal == nil && !rec.Spec.Follows() {
		plan = platformPlan(rec.Spec.Name, nodes, r.now(), rec.Spec, builder)
	}
	if mine := platformsOf(plan, rec.Spec, r.cfg.Node); ok && builder != r.cfg.Node && len(mine) > 0 && r.cfg.Driver != nil {
		return r.reconcilePart(ctx, rec, mine)
	}
	if !ok || builder != r.cfg.Node {
		return nil, r.dropRefusal(ctx, rec)
	}
	if r.cfg.Driver != nil && refusal == nil {
		var resolved bool
		var st *api.BuildStatus
		if rec, resolved, st, err = r.followGit(ctx, rec); !resolved {
			return st, err
		}
	}
	// Only the owner reads its inputs: most nodes own few builds.
	inputs, waiting, err := r.inputs(ctx, rec.Spec)
	if err != nil {
		return nil, err
	}
	done := handled(rec, inputs)
	switch {
	case done && r.cfg.Driver != nil:
		if st, moved, err := r.followBases(ctx, rec, inputs); moved {
			return st, err
		}
		if st, err := r.publishPending(ctx, rec); st != nil {
			return st, err
		}
		return r.restoreIfLost(ctx, rec, inputs)
	case done || r.cfg.Driver == nil && refusal == nil: // a node without a driver only reports refusals
		return nil, nil
	case refusal != nil:
		return unschedulable(r.cfg.Node, rec, refusal)
	case waiting != "":
		return r.wait(rec, waiting)
	}
	// The cache may not hold this node's own last status yet, and a build
	// is costly: the decision to start one reads the state API.
	fresh, err := r.store.GetBuild(ctx, rec.Spec.Name)
	if err != nil {
		return nil, ignoreNotFound(err)
	}
	if rec.Status = fresh.Status; handled(rec, inputs) || fresh.Meta.UID != rec.Meta.UID || fresh.Meta.Generation != rec.Meta.Generation {
		return nil, nil // a new generation has its own event
	}
	if plan != nil {
		return r.assemble(ctx, rec, inputs, plan)
	}
	return r.build(ctx, rec, inputs, "")
}

// ignoreNotFound: a spec deleted meanwhile needs nothing more; its delete
// event reconciles it again.
func ignoreNotFound(err error) error {
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	return err
}

// inputs are the current results of the builds this one reads, as image
// references by digest; waiting names one that has no result for its
// current generation yet.
func (r *Reconciler) inputs(ctx context.Context, spec api.BuildSpec) (map[string]string, string, error) {
	deps := spec.DependsOn()
	if len(deps) == 0 {
		return nil, "", nil
	}
	out := make(map[string]string, len(deps))
	for _, dep := range deps {
		res, ready, err := r.read.BuildResult(ctx, dep)
		if err != nil {
			return nil, "", err
		}
		if !ready {
			return nil, dep, nil
		}
		// The digest pins it, not the tag; a result recorded before the
		// stable address existed names the registry's own address.
		registry, repo, _ := api.SplitImageRef(res.Detail.Ref)
		out[dep] = cmp.Or(r.cfg.Registry, registry) + "/" + repo + "@" + res.Digest
	}
	return out, "", nil
}

// sameInputs compares inputs by digest only: the registry's address in a
// reference may change without the content changing.
func sameInputs(a, b map[string]string) bool {
	return maps.EqualFunc(a, b, func(x, y string) bool {
		_, dx, _ := strings.Cut(x, "@")
		_, dy, _ := strings.Cut(y, "@")
		return dx == dy
	})
}

// handled reports whether some node already finished this generation of
// this incarnation of the spec, successfully or with a terminal error,
// from the same inputs.
func handled(rec state.BuildRecord, inputs map[string]string) bool {
	for _, st := range rec.Status {
		if st.SpecUID == rec.Meta.UID && st.ObservedGeneration == rec.Meta.Generation && !isUnschedulable(st) && st.Detail.Part == "" &&
			(st.Phase == api.BuildSucceeded || st.Phase == api.BuildFailed) && sameInputs(st.Detail.Inputs, inputs) &&
			(!rec.Spec.Follows() || st.Detail.Commit == commitOf(rec.Spec)) {
			return true
		}
	}
	return false
}

// build runs one build and returns its outcome; why, when set, says why
// in the status message (a restore).
func (r *Reconciler) build(ctx context.Context, rec state.BuildRecord, inputs map[string]string, why string) (*api.BuildStatus, error) {
	return r.buildAs(ctx, rec, inputs, why, "")
}

// buildAs runs one build; a part (some platforms of a split build, see
// split.go) is pushed under its build key alone and its status says so.
func (r *Reconciler) buildAs(ctx context.Context, rec state.BuildRecord, inputs map[string]string, why, part string) (*api.BuildStatus, error) {
	registry, refs, failed, err := r.destination(ctx, rec)
	if failed != nil || err != nil {
		return failed, err
	}
	st := r.startStatus(rec, refs[0])
	if why != "" {
		st.Message = why
	}
	bases, basesKnown := r.resolveBases(ctx, rec.Spec)
	st.Detail.Inputs, st.Detail.Bases, st.Detail.Key = inputs, bases, BuildKey(rec.Spec, inputs, bases)
	st.Detail.Driver, st.Detail.Part = r.cfg.Driver.Name(), part
	keyRef := repository(refs[0]) + ":" + keyTag(st.Detail.Key)
	if part != "" {
		refs, st.Detail.Ref = nil, keyRef
	}
	if basesKnown {
		if done, err := r.tryReuse(ctx, rec, &st, keyRef, reuseRefs(refs, keyRef)); done || err != nil {
			return &st, err
		}
	}
	release, err := r.acquireSlot(ctx, st)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.solve(ctx, rec, st, registry, append(refs, keyRef), inputs)
}

// destination is where a build pushes: this node's address of the
// registry and the build's image references. Invalid references fail the
// build, with the failed status returned.
func (r *Reconciler) destination(ctx context.Context, rec state.BuildRecord) (string, []string, *api.BuildStatus, error) {
	registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now())
	if err != nil {
		return "", nil, nil, fmt.Errorf("build %s: %w", rec.Spec.Name, err)
	}
	refs, err := imageRefs(registry, rec.Spec)
	if err != nil {
		st, err := r.failed(newStatus(r.cfg.Node, rec), reconcile.Stall("InvalidImage", err))
		return "", nil, st, err
	}
	return registry, refs, nil, nil
}

// reuseRefs are what a reused image is tagged as: the build's refs, or a
// part's build key alone.
func reuseRefs(refs []string, keyRef string) []string {
	if len(refs) == 0 {
		return []string{keyRef}
	}
	return refs
}

// restoreIfLost rebuilds a finished build whose image the registry no
// longer holds: the registry moved to a node without it. Builds are
// reproducible, so the rebuild (cached) gives the same digest.
func (r *Reconciler) restoreIfLost(ctx context.Context, rec state.BuildRecord, inputs map[string]string) (*api.BuildStatus, error) {
	cur, ok := rec.Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.Digest == "" {
		return nil, nil
	}
	registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now())
	if err != nil {
		return nil, nil // no registry now; its return enqueues nothing, the resync will look again
	}
	_, repo, _ := api.SplitImageRef(cur.Detail.Ref)
	_, _, _, present, err := r.registry.manifest(ctx, registry, repo, cur.Digest)
	if err != nil || present {
		return nil, err
	}
	if !r.contextsAvailable(ctx, rec.Spec, registry) {
		if st, err := r.copyFromEngine(ctx, rec, cur, registry); st != nil || err != nil {
			return st, err
		}
	}
	r.log.Info("The registry lacks this build's image; restoring it by rebuilding.", "build", rec.Spec.Name,
		"digest", cur.Digest, "registry", registry)
	return r.build(ctx, rec, inputs, fmt.Sprintf("restoring %s into registry %s: rebuilding on %s", cur.Digest, registry, r.cfg.Node))
}

// contextsAvailable reports whether a rebuild can get the build's shipped
// contexts: from this node's cache or from the registry now serving.
func (r *Reconciler) contextsAvailable(ctx context.Context, spec api.BuildSpec, registry string) bool {
	for _, ref := range spec.ShippedContexts() {
		name, dg, ok := strings.Cut(ref, "@")
		if !ok {
			continue // not shipped: a path on the builder, or git
		}
		if _, err := os.Stat(filepath.Join(r.cfg.ContextCacheDir, strings.TrimPrefix(dg, "sha256:"))); err == nil {
			continue
		}
		_, repo, _ := api.SplitImageRef(name)
		if _, _, _, present, err := r.registry.manifest(ctx, registry, repo, dg); err != nil || !present {
			return false
		}
	}
	return true
}

// copyFromEngine restores an image whose contexts are gone by pushing it
// from this node's engine, which pre-pulled it. The engine re-compresses
// layers, so the digest is new while the content is the same; the image's
// nodes then pull the new digest. It returns no status when the engine
// lacks the image.
func (r *Reconciler) copyFromEngine(ctx context.Context, rec state.BuildRecord, cur api.BuildStatus, registry string) (*api.BuildStatus, error) {
	if r.cfg.Engine == nil {
		return nil, nil
	}
	from := repository(cur.Detail.Ref) + "@" + cur.Digest
	refs, err := imageRefs(registry, rec.Spec)
	if err != nil {
		return nil, err
	}
	st := r.startStatus(rec, refs[0])
	st.Detail.Inputs, st.Detail.Bases, st.Detail.Key, st.Detail.Driver = cur.Detail.Inputs, cur.Detail.Bases, cur.Detail.Key, "engine copy"
	if st.Detail.Key != "" {
		refs = append(refs, repository(refs[0])+":"+keyTag(st.Detail.Key))
	}
	digest, ok, err := engineCopy(ctx, r.cfg.Engine, r.cfg.Credentials, from, refs)
	if !ok || err != nil {
		return nil, err
	}
	r.log.Info("Restored an image whose sources are gone by pushing it from this node's engine.", "build", rec.Spec.Name,
		"old_digest", cur.Digest, "digest", digest, "registry", registry)
	st.Detail.StartedAt = r.now()
	st.Detail.RestoredFrom = fmt.Sprintf("%s's engine, was %s (its contexts are gone with the old registry; "+
		"same content, new digest: the engine re-compresses layers)", r.cfg.Node, cur.Digest)
	return r.succeeded(rec, st, digest)
}

// resolveBases finds the digests of the build's base images. When they
// cannot be known (an unreadable Dockerfile, a missing image), no stored
// image can be proven the same, so the build solves and the solve reports
// the problem in its own words.
func (r *Reconciler) resolveBases(ctx context.Context, spec api.BuildSpec) (map[string]string, bool) {
	images, err := baseImages(spec)
	if err == nil && len(images) > 0 {
		var bases map[string]string
		if bases, err = r.solver.resolveBases(ctx, images, r.baseAuth(ctx)); err == nil {
			return bases, true
		}
	}
	if err != nil {
		r.log.Info("Base images unknown; building without reuse.", "build", spec.Name, "err", err)
		return nil, false
	}
	return nil, true
}

// baseAuth lets a base-image lookup authenticate to the internal registry.
func (r *Reconciler) baseAuth(ctx context.Context) session.Attachable {
	registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now())
	if err != nil {
		return registryAuth("", r.cfg.Credentials)
	}
	return registryAuth(registry, r.cfg.Credentials)
}

// tryReuse finishes the build without a solve when the registry already
// holds an image for its build key.
func (r *Reconciler) tryReuse(ctx context.Context, rec state.BuildRecord, st *api.BuildStatus, keyRef string, refs []string) (bool, error) {
	if !reusable(rec.Spec) || !sameRepository(refs) {
		return false, nil
	}
	digest, ok, err := r.registry.reuse(ctx, keyRef, refs)
	if err != nil || !ok {
		return false, err
	}
	st.Detail.Reused = true
	r.log.Info("Reusing the image stored for this build key; no solve.", "build", rec.Spec.Name, "key", st.Detail.Key[:12], "digest", digest)
	done, _ := r.succeeded(rec, *st, digest)
	*st = *done
	return true, nil
}

// solve runs the build, cancellable when its spec moves on, and returns
// its outcome.
func (r *Reconciler) solve(ctx context.Context, rec state.BuildRecord, st api.BuildStatus, registry string, refs []string, inputs map[string]string) (*api.BuildStatus, error) {
	st.Detail.StartedAt = r.now()
	r.progress(ctx, st)
	spec, err := r.localContext(ctx, rec.Spec)
	if err != nil {
		return r.failed(st, r.diskFull(err))
	}
	rec.Spec = spec
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.track(rec, cancel)
	defer r.untrack(rec.Spec.Name)
	logf, err := openLog(r.cfg.LogDir, rec.Spec.Name, rec.Meta.Generation)
	if err != nil {
		r.log.Warn("Cannot keep the build's full log.", "build", rec.Spec.Name, "err", err)
	}
	r.log.Info("Building.", "build", rec.Spec.Name, "generation", rec.Meta.Generation, "ref", refs[0])
	auth := registryAuth(registry, r.cfg.Credentials)
	res, err := r.solver.solve(bctx, registry, auth, rec.Spec, refs, inputs, writerOrNil(logf), r.reporter(ctx, st))
	st.Detail.LogTail, st.Detail.StepsDone, st.Detail.StepsTotal, st.Detail.StepsCached = res.LogTail, res.StepsDone, res.StepsTotal, res.StepsCached
	closeLog(logf, outcome(err, bctx))
	switch {
	case err != nil && errors.Is(context.Cause(bctx), errSuperseded):
		r.log.Info("Build cancelled: its spec changed.", "build", rec.Spec.Name, "generation", rec.Meta.Generation)
		return nil, nil // the spec's change enqueued the key again
	case err != nil:
		return r.failed(st, r.diskFull(err))
	}
	return r.succeeded(rec, st, res.Digest)
}

// localContext points the spec at a local copy of its shipped context,
// fetched from the registry and verified piece by piece.
func (r *Reconciler) localContext(ctx context.Context, spec api.BuildSpec) (api.BuildSpec, error) {
	if err := os.MkdirAll(r.cfg.ContextCacheDir, 0o755); err != nil {
		return spec, err
	}
	if spec.ContextRef != "" { // else not shipped: the context is a path here
		dir, err := r.fetch(ctx, spec.ContextRef)
		if err != nil {
			return spec, err
		}
		spec.Context = dir
	}
	extra := maps.Clone(spec.AdditionalContexts)
	for name, v := range extra {
		if ref, ok := strings.CutPrefix(v, api.ShippedContextPrefix); ok {
			dir, err := r.fetch(ctx, ref)
			if err != nil {
				return spec, fmt.Errorf("additional context %s: %w", name, err)
			}
			extra[name] = dir
		}
	}
	spec.AdditionalContexts = extra
	return spec, nil
}

// fetch gets a shipped context through the registry's stable address: the
// reference names the registry's own address at the time (the CLI, which
// is no node, ships there), and the registry may have moved since.
func (r *Reconciler) fetch(ctx context.Context, ref string) (string, error) {
	if registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now()); err == nil {
		ref = rehost(ref, registry)
	}
	dir, err := contextstore.Fetch(ctx, r.registry.http, ref, r.cfg.ContextCacheDir)
	if err != nil {
		return "", transient(err)
	}
	return dir, nil
}

// rehost points host/repo@digest at another registry.
func rehost(ref, registry string) string {
	_, rest, ok := strings.Cut(ref, "/")
	if !ok {
		return ref
	}
	return registry + "/" + rest
}

// writerOrNil keeps a nil *os.File from becoming a non-nil io.Writer.
func writerOrNil(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	return f
}

func outcome(err error, bctx context.Context) string {
	switch {
	case err == nil:
		return "succeeded"
	case errors.Is(context.Cause(bctx), errSuperseded):
		return "cancelled (the spec changed)"
	}
	return "failed: " + err.Error()
}

// repository drops a reference's tag.
func repository(ref string) string {
	registry, repo, _ := api.SplitImageRef(ref)
	return registry + "/" + repo
}

// sameRepository reports whether every ref names the same repository, so
// that a stored image can be re-tagged in place.
func sameRepository(refs []string) bool {
	for _, ref := range refs[1:] {
		if repository(ref) != repository(refs[0]) {
			return false
		}
	}
	return true
}

// imageRefs names the image and its extra tags in the internal registry;
// the first is the image itself.
func imageRefs(registry string, spec api.BuildSpec) ([]string, error) {
	var refs []string
	for _, name := range append([]string{spec.Image}, spec.Tags...) {
		ref, err := api.InternalRef(registry, name)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	return refs, nil
}
