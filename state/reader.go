package state

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
)

// rowSource yields uc's rows, decoded: from the state API (every call is
// a request, so it is fresh) or from the cache (no request). An empty name
// means every row. Lists are sorted by their primary key.
type rowSource interface {
	buildSpecs(ctx context.Context, name string) ([]BuildRecord, error)
	imageSpecs(ctx context.Context, name string) ([]ImageRecord, error)
	buildStatuses(ctx context.Context, name string) ([]api.BuildStatus, error)
	presences(ctx context.Context, image string) ([]api.ImagePresence, error)
	resolutions(ctx context.Context, image string) ([]api.ImageResolution, error)
	nodes(ctx context.Context, name string) ([]api.Node, error)
	registryStatuses(ctx context.Context) ([]api.RegistryStatus, error)
	registrySpec(ctx context.Context) (RegistrySpecRow, bool, error)
	registryCredential(ctx context.Context) (api.Credential, bool, error)
}

// Reader answers uc's questions about state from one row source. The
// store's Reader asks the state API; the cache's reads its own copy. Both
// answer alike, so a caller picks fresh or cached by the value it holds.
type Reader struct{ src rowSource }

// ListBuilds returns build specs with their status, sorted by name. With a
// name it returns at most that one. The slice is never nil, so that an
// empty list encodes as [] rather than null.
func (r Reader) ListBuilds(ctx context.Context, name string) ([]BuildRecord, error) {
	out, err := r.src.buildSpecs(ctx, name)
	if err != nil {
		return nil, err
	}
	statuses, err := r.src.buildStatuses(ctx, name)
	if err != nil {
		return nil, err
	}
	byName := map[string][]api.BuildStatus{}
	for _, st := range statuses {
		byName[st.Name] = append(byName[st.Name], st)
	}
	for i := range out {
		out[i].Status = byName[out[i].Spec.Name]
	}
	return nonNilSlice(out), nil
}

// GetBuild returns one build or ErrNotFound.
func (r Reader) GetBuild(ctx context.Context, name string) (BuildRecord, error) {
	recs, err := r.ListBuilds(ctx, name)
	if err != nil {
		return BuildRecord{}, err
	}
	if len(recs) == 0 {
		return BuildRecord{}, fmt.Errorf("build %s: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// ListImages returns image specs with their presence rows, sorted by name;
// like ListBuilds, never a nil slice.
func (r Reader) ListImages(ctx context.Context, name string) ([]ImageRecord, error) {
	out, err := r.src.imageSpecs(ctx, name)
	if err != nil {
		return nil, err
	}
	presence, err := r.src.presences(ctx, name)
	if err != nil {
		return nil, err
	}
	byImage := map[string][]api.ImagePresence{}
	for _, p := range presence {
		byImage[p.Image] = append(byImage[p.Image], p)
	}
	for i := range out {
		out[i].Presence = byImage[out[i].Spec.Name]
	}
	return nonNilSlice(out), nil
}

// GetImage returns one image or ErrNotFound.
func (r Reader) GetImage(ctx context.Context, name string) (ImageRecord, error) {
	recs, err := r.ListImages(ctx, name)
	if err != nil {
		return ImageRecord{}, err
	}
	if len(recs) == 0 {
		return ImageRecord{}, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// WantedDigest is the digest nodes must hold for an image spec to be
// satisfied. For a built image it is the build's result for the spec's
// current generation; ready is false while that build has not succeeded
// (an older digest on the nodes does not count). For an external image it
// is the digest its tag was resolved to for this generation (ready false
// until resolved), or the digest the user pinned.
func (r Reader) WantedDigest(ctx context.Context, img ImageRecord) (digest string, ready bool, err error) {
	if img.Spec.Build != "" {
		res, ready, err := r.BuildResult(ctx, img.Spec.Build)
		return res.Digest, ready, err
	}
	if _, dg, pinned := strings.Cut(img.Spec.Image, "@"); pinned {
		return dg, true, nil
	}
	res, ok, err := r.Resolution(ctx, img.Spec.Name, img.Meta.UID, img.Meta.Generation)
	if err != nil || !ok {
		return "", false, err
	}
	// A tag that does not exist is settled too: the nodes' rows say failed.
	return res.Digest, true, nil
}

// BuildResult is the status that built the current generation of a build
// spec from its parents' current results; ready is false until that build
// has succeeded.
func (r Reader) BuildResult(ctx context.Context, name string) (api.BuildStatus, bool, error) {
	return r.buildResult(ctx, name, map[string]bool{})
}

// buildResult also requires the build to have been made from its
// parents' current results: after a parent's digest changes, a child's
// last success is stale until it rebuilds, so waiting on it (uc wait,
// pre-pull, a grandchild's inputs) waits for the rebuild.
func (r Reader) buildResult(ctx context.Context, name string, seen map[string]bool) (api.BuildStatus, bool, error) {
	recs, err := r.ListBuilds(ctx, name)
	if err != nil || len(recs) == 0 {
		return api.BuildStatus{}, false, err
	}
	b := recs[0]
	cur, ok := b.Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.ObservedGeneration != b.Meta.Generation {
		return api.BuildStatus{}, false, nil
	}
	if seen[name] { // a cycle, which apply refuses: do not loop
		return cur, true, nil
	}
	seen[name] = true
	for _, dep := range b.Spec.DependsOn() {
		parent, ready, err := r.buildResult(ctx, dep, seen)
		if err != nil || !ready {
			return api.BuildStatus{}, false, err
		}
		if _, used, _ := strings.Cut(cur.Detail.Inputs[dep], "@"); used != parent.Digest {
			return api.BuildStatus{}, false, nil
		}
	}
	return cur, true, nil
}

// Resolution is the newest resolution of the image's tag for this
// incarnation and generation of its spec; ok is false when none exists.
func (r Reader) Resolution(ctx context.Context, image, specUID string, generation int64) (api.ImageResolution, bool, error) {
	all, err := r.src.resolutions(ctx, image)
	if err != nil {
		return api.ImageResolution{}, false, err
	}
	var best api.ImageResolution
	var ok bool
	for _, res := range all {
		if res.SpecUID == specUID && res.ObservedGeneration == generation && (!ok || res.UpdatedAt.After(best.UpdatedAt)) {
			best, ok = res, true
		}
	}
	return best, ok, nil
}

// ListNodes returns every node, sorted by name.
func (r Reader) ListNodes(ctx context.Context) ([]api.Node, error) {
	return r.src.nodes(ctx, "")
}

// GetNode returns one node or ErrNotFound.
func (r Reader) GetNode(ctx context.Context, name string) (api.Node, error) {
	nodes, err := r.src.nodes(ctx, name)
	if err != nil {
		return api.Node{}, err
	}
	if len(nodes) == 0 {
		return api.Node{}, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	return nodes[0], nil
}

// ListRegistryStatus returns every node's registry record.
func (r Reader) ListRegistryStatus(ctx context.Context) ([]api.RegistryStatus, error) {
	return r.src.registryStatuses(ctx)
}

// RegistryAddress is where the internal registry is served now: the
// address a ready registry on a live node published, the newest if several.
func (r Reader) RegistryAddress(ctx context.Context, now time.Time, liveTimeout time.Duration) (string, error) {
	statuses, err := r.src.registryStatuses(ctx)
	if err != nil {
		return "", err
	}
	nodes, err := r.ListNodes(ctx)
	if err != nil {
		return "", err
	}
	byName := map[string]api.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	var best api.RegistryStatus
	for _, st := range statuses {
		n, known := byName[st.Node]
		if known && n.Live(now, liveTimeout) && api.IsTrue(st.Conditions, api.ConditionReady) && st.UpdatedAt.After(best.UpdatedAt) {
			best = st
		}
	}
	if best.Address == "" {
		return "", noRegistry(statuses, byName, now, liveTimeout)
	}
	return best.Address, nil
}

// NodeRegistry is the address a node reaches the internal registry at,
// once a registry is served somewhere: stable, the node's loopback
// forwarder (see registry/forward), so that references never name where
// the registry happens to run. An empty stable falls back to the
// registry's own address (a process without a forwarder, such as a test).
func (r Reader) NodeRegistry(ctx context.Context, stable string, now time.Time) (string, error) {
	addr, err := r.RegistryAddress(ctx, now, api.LiveTimeout)
	if err != nil {
		return "", err
	}
	return cmp.Or(stable, addr), nil
}

// GetRegistrySpec returns the desired registry and its generation;
// ErrNotFound when no managed registry is wanted.
func (r Reader) GetRegistrySpec(ctx context.Context) (api.RegistrySpec, int64, error) {
	row, ok, err := r.src.registrySpec(ctx)
	if err != nil {
		return api.RegistrySpec{}, 0, err
	}
	if !ok {
		return api.RegistrySpec{}, 0, ErrNotFound
	}
	return row.Spec, row.Generation, nil
}

// RegistryCredential is the managed registry's generated credential; ok is
// false when none was generated (the registry has no auth).
func (r Reader) RegistryCredential(ctx context.Context) (api.Credential, bool, error) {
	return r.src.registryCredential(ctx)
}
