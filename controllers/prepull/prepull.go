// Package prepull is the pre-pull controller, one per node: it pulls, by
// digest, every image whose ImageSpec places it on this node, through the
// node's Docker Engine, and records one (image, node) presence row.
package prepull

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	godigest "github.com/opencontainers/go-digest"
	"k8s.io/client-go/util/workqueue"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Engine is what the controller needs from a Docker Engine.
type Engine interface {
	// Pull pulls ref and returns the digest the engine recorded for it,
	// reporting progress as it goes.
	// auth is the X-Registry-Auth value ("" anonymous).
	Pull(ctx context.Context, ref, auth string, progress func(Progress)) (digest string, err error)
	// Has reports whether the engine holds ref.
	Has(ctx context.Context, ref string) (bool, error)
	// Resolve returns the digest ref's tag names now, without pulling.
	Resolve(ctx context.Context, ref, auth string) (digest string, err error)
}

// Config describes this node.
type Config struct {
	Node string
	// MaxPulls bounds concurrent pulls on this node; default DefaultMaxPulls.
	MaxPulls int
	// InternalAuth is the X-Registry-Auth for a pull from the internal
	// registry ("" for other registries or no auth).
	InternalAuth func(ctx context.Context, ref string) string
	// Pulls records what this node pulled, for pruning; nil: no record.
	Pulls *PullLog
	// Registry is the internal registry's stable address on this node
	// (registry/forward), which built images are pulled from. Empty: the
	// registry's own address.
	Registry string
}

// resyncEvery re-checks every image against the engine.
const resyncEvery = 10 * time.Minute

// DefaultMaxPulls is how many images a node pulls at once by default.
const DefaultMaxPulls = 3

// Reconciler keeps this node's images present.
type Reconciler struct {
	store  *state.Store // writes
	read   state.Reader // the cache
	engine Engine
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	own    ownWrites // this node's latest row writes, newer than a lagging cache
}

// New returns the prepull controller. It follows image specs, build
// results (a new digest means a new pull), resolutions of tags, and this
// node's own row (new labels may place new images here), all from the cache.
func New(cache *state.Cache, engine Engine, cfg Config, log *slog.Logger) *reconcile.Controller {
	r := &Reconciler{store: cache.Store(), read: cache.Reader, engine: engine, cfg: cfg, log: log.With("controller", "prepull"), now: time.Now}
	specs := cache.ImageSpecs.Source(func(ev state.Event[state.ImageRecord]) []string { return []string{ev.Key} })
	builds := cache.BuildStatus.Source(r.imagesOfBuild)
	self := cache.Nodes.Source(r.allImagesIfPlaced)
	resolutions := cache.ImageResolutions.Source(resolvedImage)
	return reconcile.New(reconcile.Options{
		// Watches drive every change; the resync only catches an image
		// removed from the engine behind uc's back. At 30 s it re-read
		// every spec and inspected every image twice a minute (the idle
		// bench: ~130 state requests/s per node with 1,000 specs).
		Name: "prepull", Workers: cmp.Or(cfg.MaxPulls, DefaultMaxPulls), Timeout: 30 * time.Minute, Resync: resyncEvery,
		Lister: r.listImages, Logger: log, RateLimiter: pullRetries(),
	}, r, specs, builds, self, resolutions)
}

// pullRetries spaces out retries of a failing pull like the kubelet's
// image pull back-off (up to 5 minutes), not the controller default's
// 16 minutes: a registry that comes back is noticed soon.
func pullRetries() workqueue.TypedRateLimiter[string] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Second, 5*time.Minute)
}

func (r *Reconciler) listImages(ctx context.Context) ([]string, error) {
	imgs, err := r.read.ListImages(ctx, "")
	if err != nil {
		return nil, err
	}
	names := make([]string, len(imgs))
	for i, img := range imgs {
		names[i] = img.Spec.Name
	}
	return names, nil
}

// imagesOfBuild maps a build's new digest to the images that pull it,
// and its outcome to the images of the builds it reads.
func (r *Reconciler) imagesOfBuild(ev state.Event[api.BuildStatus]) []string {
	var builds []string
	if ev.Type != state.EventUpdated || ev.Old.Digest != ev.New.Digest {
		builds = append(builds, ev.Object().Name)
	}
	// A build's outcome may end its ancestors' wait (builds before pulls).
	if ev.Type != state.EventUpdated || ev.Old.Digest != ev.New.Digest || ev.Old.Phase != ev.New.Phase {
		builds = append(builds, r.ancestors(ev.Object().Name)...)
	}
	if len(builds) == 0 {
		return nil
	}
	return r.imagesWhere(func(img api.ImageSpec) bool { return slices.Contains(builds, img.Build) })
}

// allImagesIfPlaced re-checks every image when this node's labels or state
// change: they decide what is placed here. Heartbeats do not.
func (r *Reconciler) allImagesIfPlaced(ev state.Event[api.Node]) []string {
	o, n := ev.Old, ev.New
	if ev.Key != r.cfg.Node || ev.Type == state.EventUpdated && o.State == n.State && maps.Equal(o.Labels, n.Labels) {
		return nil
	}
	return r.imagesWhere(func(api.ImageSpec) bool { return true })
}

// resolvedImage wakes an image when its tag's resolution changes; a
// periodic re-check that finds the same digest only moves updated_at.
func resolvedImage(ev state.Event[api.ImageResolution]) []string {
	o, n := ev.Old, ev.New
	if ev.Type == state.EventUpdated && o.SpecUID == n.SpecUID && o.ObservedGeneration == n.ObservedGeneration &&
		o.Digest == n.Digest && o.Error == n.Error {
		return nil
	}
	return []string{ev.Object().Image}
}

func (r *Reconciler) imagesWhere(match func(api.ImageSpec) bool) []string {
	imgs, _ := r.read.ListImages(context.Background(), "")
	var out []string
	for _, img := range imgs {
		if match(img.Spec) {
			out = append(out, img.Spec.Name)
		}
	}
	return out
}

// Reconcile makes the image present on this node if it is placed here.
// It concludes this node's presence row and an outcome, and summarize
// writes the row once. A pull in progress also reports progress (pulling,
// layers and bytes), throttled.
func (r *Reconciler) Reconcile(ctx context.Context, name string) (reconcile.Result, error) {
	img, err := r.read.GetImage(ctx, name)
	if errors.Is(err, state.ErrNotFound) {
		return reconcile.Result{}, errors.Join(r.deleteRow(ctx, name), r.store.DeleteResolution(ctx, name, r.cfg.Node))
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	self, err := r.read.GetNode(ctx, r.cfg.Node)
	if errors.Is(err, state.ErrNotFound) {
		return reconcile.Result{RequeueAfter: 2 * time.Second}, nil // not registered yet
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if !img.Spec.Places(self) { // the placement rule every node and uc wait use (api.ImageSpec.Need)
		return reconcile.Result{}, r.dropOwnRow(ctx, img)
	}
	row, res, err := r.ensurePresent(ctx, img)
	return res, r.summarize(ctx, img, row, err)
}

func (r *Reconciler) dropOwnRow(ctx context.Context, img state.ImageRecord) error {
	if _, ok := r.ownRow(img); !ok {
		return nil
	}
	return r.deleteRow(ctx, img.Spec.Name)
}

// ownRow is this node's row for the image: its own latest write while the
// cache may lag behind it, else the cache's copy.
func (r *Reconciler) ownRow(img state.ImageRecord) (api.ImagePresence, bool) {
	if ow, ok := r.own.recall(img.Spec.Name, r.now()); ok {
		return ow.row, !ow.deleted
	}
	for _, p := range img.Presence {
		if p.Node == r.cfg.Node {
			return p, true
		}
	}
	return api.ImagePresence{}, false
}

// summarize writes the row a reconcile concluded, its state set from the
// outcome, and returns the outcome. ObservedGeneration moves only when
// this generation was handled: present, or failed for good.
func (r *Reconciler) summarize(ctx context.Context, img state.ImageRecord, row *api.ImagePresence, outcome error) error {
	if row == nil {
		return outcome
	}
	prev, had := r.ownRow(img)
	wait, waiting := reconcile.IsWaiting(outcome)
	switch {
	case waiting:
		row.State, row.Error = api.PresencePending, wait.Message
	case reconcile.IsTerminal(outcome):
		row.State, row.Error = api.PresenceFailed, attempt(*row)+outcome.Error()
	case outcome != nil && row.Detail.Ref == "" && had && prev.State == api.PresenceRetrying && prev.SpecUID == row.SpecUID:
		return outcome // a pull's own failure is on the row already: keep its attempt count
	case outcome != nil:
		row.State, row.Error = api.PresenceRetrying, attempt(*row)+outcome.Error()+"; retrying with backoff"
	}
	row.ObservedGeneration = 0
	if row.State == api.PresencePresent || row.State == api.PresenceFailed {
		row.ObservedGeneration = img.Meta.Generation
	} else if had && prev.SpecUID == row.SpecUID {
		row.ObservedGeneration = prev.ObservedGeneration
	}
	return errors.Join(outcome, r.putRow(ctx, *row))
}

// attempt prefixes a pull's failure with its attempt number.
func attempt(row api.ImagePresence) string {
	if row.Detail.Attempts == 0 {
		return ""
	}
	return fmt.Sprintf("attempt %d: ", row.Detail.Attempts)
}

// ensurePresent concludes the image's row on this node: present, or why
// not (the outcome). No row means nothing to say.
func (r *Reconciler) ensurePresent(ctx context.Context, img state.ImageRecord) (*api.ImagePresence, reconcile.Result, error) {
	row := &api.ImagePresence{Image: img.Spec.Name, Node: r.cfg.Node, SpecUID: img.Meta.UID}
	ref, waiting, err := r.resolve(ctx, img)
	switch {
	case err != nil:
		return row, reconcile.Result{}, err
	case waiting != "":
		return row, reconcile.Result{}, reconcile.Wait("Waiting", waiting, 0)
	}
	if child, left := r.childBuilding(ctx, img.Spec); child != "" {
		return row, reconcile.Result{}, reconcile.Wait("BuildsFirst",
			"waiting for build "+child+", which builds on this image, to finish first; its pull brings this image's layers", left)
	}
	// A periodically refreshed tag comes back when it is due.
	again := reconcile.Result{RequeueAfter: r.refreshAfter(ctx, img)}
	if r.alreadyPresent(ctx, img, ref) {
		return nil, again, nil
	}
	return r.pull(ctx, img, row, ref, again)
}

// resolve names what to pull: a built image by its registry reference and
// digest, an external one by the digest its tag was resolved to, once, by
// the image's owner node. waiting says why there is nothing to pull yet.
func (r *Reconciler) resolve(ctx context.Context, img state.ImageRecord) (ref, waiting string, err error) {
	if img.Spec.Build != "" {
		return r.builtRef(ctx, img.Spec)
	}
	if strings.Contains(img.Spec.Image, "@") {
		return img.Spec.Image, "", nil // pinned by the user
	}
	res, ok, err := r.read.Resolution(ctx, img.Spec.Name, img.Meta.UID, img.Meta.Generation)
	if err != nil {
		return "", "", err
	}
	if !ok {
		if res, ok, waiting, err = r.resolveTag(ctx, img, false); !ok || err != nil {
			return "", waiting, err
		}
	} else {
		res = r.refreshTag(ctx, img, res)
	}
	if res.Error != "" {
		return "", "", reconcile.Stall("TagNotFound", fmt.Errorf("%s (resolved by %s)", res.Error, res.Node))
	}
	pinned, err := pinDigest(img.Spec.Image, res.Digest)
	return pinned, "", err
}

// refreshTag resolves a resolved tag again when the spec asks for it
// periodically, the interval has passed and this node owns the image. A
// failure keeps the last digest (images already present stay wanted over
// a registry blip) and the next interval tries again.
func (r *Reconciler) refreshTag(ctx context.Context, img state.ImageRecord, last api.ImageResolution) api.ImageResolution {
	if every := img.Spec.RefreshInterval(); every == 0 || r.now().Sub(last.UpdatedAt) < every {
		return last
	}
	res, ok, _, err := r.resolveTag(ctx, img, true)
	if err != nil {
		r.log.Warn("Refreshing a tag failed; keeping its last digest.", "image", img.Spec.Name, "ref", img.Spec.Image, "digest", last.Digest, "err", err)
		return last
	}
	if !ok {
		return last // another node owns the image
	}
	if res.Digest != last.Digest {
		r.log.Info("Tag moved; every node pulls the new digest.", "image", img.Spec.Name, "ref", img.Spec.Image, "from", last.Digest, "to", res.Digest)
	}
	return res
}

// refreshAfter is when the image's tag is next due for a periodic refresh;
// zero when it is not refreshed periodically.
func (r *Reconciler) refreshAfter(ctx context.Context, img state.ImageRecord) time.Duration {
	every := img.Spec.RefreshInterval()
	if every == 0 || img.Spec.Build != "" || strings.Contains(img.Spec.Image, "@") {
		return 0
	}
	res, ok, err := r.read.Resolution(ctx, img.Spec.Name, img.Meta.UID, img.Meta.Generation)
	if err != nil || !ok {
		return every
	}
	return max(every-r.now().Sub(res.UpdatedAt), time.Second)
}

// resolveTag resolves the image's tag when this node owns the image, and
// records the result (a digest, or a tag that does not exist) for every
// node. Other nodes wait for that record. A refresh records only a digest:
// a tag that vanished upstream leaves the last one in place.
func (r *Reconciler) resolveTag(ctx context.Context, img state.ImageRecord, refreshing bool) (res api.ImageResolution, ok bool, waiting string, err error) {
	nodes, err := r.read.ListNodes(ctx)
	if err != nil {
		return res, false, "", err
	}
	// Only a live node the image is placed on looks at it at all.
	resolver, found := api.PickOwner(img.Spec.Name, nodes, r.now(), img.Spec.Places)
	if !found || resolver != r.cfg.Node {
		return res, false, fmt.Sprintf("waiting for %s to resolve %s to a digest", cmp.Or(resolver, "a live node"), img.Spec.Image), nil
	}
	res = api.ImageResolution{Image: img.Spec.Name, Node: r.cfg.Node, SpecUID: img.Meta.UID,
		ObservedGeneration: img.Meta.Generation, Ref: img.Spec.Image}
	auth, err := r.engineAuth(ctx, img.Spec, img.Spec.Image)
	if err != nil {
		return res, false, "", err
	}
	digest, err := r.engine.Resolve(ctx, img.Spec.Image, auth)
	if err != nil {
		if err = explainAuth(err, img.Spec, img.Spec.Image); reconcile.IsTerminal(err) {
			return res, false, "", err // this node's credential, not the image: no record for all
		}
	}
	switch {
	case err != nil && cerrdefs.IsNotFound(err):
		res.Error = fmt.Sprintf("image %s does not exist: %v", img.Spec.Image, err)
	case err != nil:
		return res, false, "", fmt.Errorf("resolve %s: %w", img.Spec.Image, err) // retried with backoff
	default:
		res.Digest = digest
		if !refreshing { // a refresh logs only a move
			r.log.Info("Resolved a tag to a digest for every node.", "image", img.Spec.Name, "ref", img.Spec.Image, "digest", digest)
		}
	}
	if refreshing && res.Error != "" {
		return res, false, "", errors.New(res.Error)
	}
	return res, true, "", r.store.PutResolution(ctx, res)
}

// pinDigest names ref's repository at digest, e.g. nginx:1.27 →
// nginx@sha256:….
func pinDigest(ref, digest string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	dg, err := godigest.Parse(digest)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w", digest, err)
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), dg)
	if err != nil {
		return "", err
	}
	return reference.FamiliarString(pinned), nil
}

// builtRef is a built image's registry reference by digest.
func (r *Reconciler) builtRef(ctx context.Context, spec api.ImageSpec) (ref, waiting string, err error) {
	b, err := r.read.GetBuild(ctx, spec.Build)
	if errors.Is(err, state.ErrNotFound) {
		return "", "waiting for build " + spec.Build + ", which does not exist", nil
	}
	if err != nil {
		return "", "", err
	}
	cur, ok := b.Current()
	if !ok || cur.Digest == "" {
		return "", "waiting for build " + spec.Build, nil
	}
	registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now())
	if err != nil {
		return "", "", err
	}
	// The repository from the build, through this node's stable address
	// (a build recorded before it existed names the registry's own).
	_, repo, _ := api.SplitImageRef(cur.Detail.Ref)
	return registry + "/" + repo + "@" + cur.Digest, "", nil
}

// alreadyPresent is true when this row already says present for this
// digest and the engine still holds the image.
func (r *Reconciler) alreadyPresent(ctx context.Context, img state.ImageRecord, ref string) bool {
	row, ok := r.ownRow(img)
	if !ok || row.State != api.PresencePresent || row.SpecUID != img.Meta.UID || !strings.HasSuffix(ref, row.Digest) {
		return false
	}
	has, err := r.engine.Has(ctx, ref)
	return err == nil && has
}

// pull pulls ref into the engine and concludes the row. Once it starts,
// the row says pulling, with progress, while it runs.
func (r *Reconciler) pull(ctx context.Context, img state.ImageRecord, row *api.ImagePresence, ref string, again reconcile.Result) (*api.ImagePresence, reconcile.Result, error) {
	if r.onEngine(ctx, img.Spec, ref) {
		row.State, row.Digest = api.PresencePresent, ref[strings.LastIndex(ref, "@")+1:]
		row.Detail = api.PresenceDetail{Ref: ref, StartedAt: r.now()}
		r.log.Info("Image is already on the engine; no pull.", "image", row.Image, "ref", ref)
		r.recordPull(ref)
		return row, again, nil
	}
	row.State = api.PresencePulling
	row.Detail = api.PresenceDetail{Ref: ref, Attempts: 1, StartedAt: r.now()}
	if prev, ok := r.ownRow(img); ok && prev.Detail.Ref == ref && prev.SpecUID == row.SpecUID {
		row.Detail.Attempts = prev.Detail.Attempts + 1
		row.ObservedGeneration = prev.ObservedGeneration
	}
	r.progress(ctx, *row)
	auth, err := r.engineAuth(ctx, img.Spec, ref)
	if err != nil {
		return row, reconcile.Result{}, err
	}
	digest, err := r.pullPlatform(ctx, ref, auth, img.Spec.Platform, r.reporter(ctx, row))
	row.Detail.Duration = r.now().Sub(row.Detail.StartedAt)
	if err != nil {
		return row, reconcile.Result{}, pullFailure(img.Spec, ref, err)
	}
	row.State, row.Digest, row.Error = api.PresencePresent, digest, ""
	r.log.Info("Image is present.", "image", row.Image, "ref", ref, "duration", row.Detail.Duration)
	r.recordPull(ref)
	return row, again, nil
}

// pullFailure types a failed pull's outcome by the engine's typed error:
// a refused credential, or an external image the registry does not have,
// stalls; anything else is retried. A built image the internal registry
// lacks is not lost: the registry moved (a failover starts it empty) and
// the build controller restores it.
func pullFailure(spec api.ImageSpec, ref string, err error) error {
	if err = explainAuth(err, spec, ref); reconcile.IsTerminal(err) {
		return err
	}
	if cerrdefs.IsNotFound(err) && spec.Build == "" {
		return reconcile.Stall("ImageNotFound", err)
	}
	return err
}

// progress writes the row while a pull runs; a failed write is logged,
// as the outcome's write comes later.
func (r *Reconciler) progress(ctx context.Context, row api.ImagePresence) {
	if err := r.putRow(ctx, row); err != nil {
		r.log.Warn("Writing pull progress failed.", "image", row.Image, "err", err)
	}
}

// onEngine is true when the engine already holds ref, which names a
// digest, so a pull could fetch nothing new (the kubelet's IfNotPresent).
// An image with a pull credential is pulled anyway: holding it must not
// stand in for the credential's check.
func (r *Reconciler) onEngine(ctx context.Context, spec api.ImageSpec, ref string) bool {
	if spec.PullCredential != "" || !strings.Contains(ref, "@") {
		return false
	}
	has, err := r.engine.Has(ctx, ref)
	return err == nil && has
}

// recordPull notes that this node's specs brought ref here, for pruning.
func (r *Reconciler) recordPull(ref string) {
	if r.cfg.Pulls == nil {
		return
	}
	if err := r.cfg.Pulls.Pulled(ref); err != nil {
		r.log.Warn("Cannot record the pull for pruning.", "ref", ref, "err", err)
	}
}

// reporter writes pull progress into the row at most once a second:
// gossip carries real changes, not every chunk of every layer.
func (r *Reconciler) reporter(ctx context.Context, row *api.ImagePresence) func(Progress) {
	var last time.Time
	return func(p Progress) {
		row.Detail.LayersDone, row.Detail.LayersTotal, row.Detail.Bytes, row.Detail.BytesTotal = p.LayersDone, p.LayersTotal, p.Bytes, p.BytesTotal
		if r.now().Sub(last) < time.Second {
			return
		}
		last = r.now()
		r.progress(ctx, *row)
	}
}

// platformPuller is an engine that can pull one platform of an image
// index, for services with a platform: of their own.
type platformPuller interface {
	PullPlatform(ctx context.Context, ref, auth, platform string, progress func(Progress)) (string, error)
}

func (r *Reconciler) pullPlatform(ctx context.Context, ref, auth, platform string, progress func(Progress)) (string, error) {
	if pp, ok := r.engine.(platformPuller); ok && platform != "" {
		return pp.PullPlatform(ctx, ref, auth, platform, progress)
	}
	return r.engine.Pull(ctx, ref, auth, progress)
}
