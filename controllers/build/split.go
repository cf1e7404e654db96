package build

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/containerd/platforms"
	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Multi-platform builds across CPUs: when a live builder builds one of a
// build's platforms natively and the build's owner does not, that node
// builds the platform as a part: it pushes the image under the part's own
// build key and records a status row marked with the platform
// (Detail.Part), which is never the build's result. The owner builds the
// rest (natively, or under emulation) the same way, and once every part
// of this generation is there it merges them into one index, pushed under
// the build's tags. Every node computes the same plan from the node list.

// platformPlan maps each platform of a multi-platform build to the node
// that builds it: another node when it builds the platform natively and
// the owner does not, else the owner. Nil when the owner builds them all.
func platformPlan(name string, nodes []api.Node, now time.Time, spec api.BuildSpec, owner string) map[string]string {
	if len(spec.Platforms) < 2 {
		return nil
	}
	need := RequiredEntitlements(spec)
	var self api.Node
	for _, n := range nodes {
		if n.Name == owner {
			self = n
		}
	}
	plan, split := map[string]string{}, false
	for _, p := range spec.Platforms {
		plan[p] = owner
		if self.BuildsNatively([]string{p}) {
			continue
		}
		native := func(n api.Node) bool {
			return n.CanBuild() && spec.Builder.Matches(n) && n.Allows(need) && n.BuildsNatively([]string{p})
		}
		if node, ok := api.PickOwner(name+"@"+p, nodes, now, native); ok {
			plan[p], split = node, true
		}
	}
	if !split {
		return nil
	}
	return plan
}

// platformsOf lists the platforms the plan gives node, in the spec's order.
func platformsOf(plan map[string]string, spec api.BuildSpec, node string) []string {
	var out []string
	for _, p := range spec.Platforms {
		if plan[p] == node {
			out = append(out, p)
		}
	}
	return out
}

// part is the build of some of a build's platforms: its own spec, and the
// name its status row carries.
func part(rec state.BuildRecord, platforms []string) (state.BuildRecord, string) {
	rec.Spec.Platforms = platforms
	return rec, strings.Join(platforms, ",")
}

// buildPart builds this node's platforms of a split build, unless its row
// already holds them for this generation and these inputs.
func (r *Reconciler) buildPart(ctx context.Context, rec state.BuildRecord, inputs map[string]string, platforms []string) (*api.BuildStatus, error) {
	partRec, name := part(rec, platforms)
	if _, ok := partResult(rec, r.cfg.Node, name, inputs); ok {
		return nil, nil
	}
	return r.buildAs(ctx, partRec, inputs, "", name)
}

// partResult is node's finished row for the part name of this generation
// of the build, from these inputs.
func partResult(rec state.BuildRecord, node, name string, inputs map[string]string) (api.BuildStatus, bool) {
	for _, st := range rec.Status {
		if st.Node == node && st.Detail.Part == name && st.SpecUID == rec.Meta.UID &&
			st.Detail.Generation == rec.Meta.Generation && sameInputs(st.Detail.Inputs, inputs) &&
			(st.Phase == api.BuildSucceeded || st.Phase == api.BuildFailed) {
			return st, true
		}
	}
	return api.BuildStatus{}, false
}

// assemble is the owner's side of a split build: its own part, then, once
// every other node's part is done, one index of them all.
func (r *Reconciler) assemble(ctx context.Context, rec state.BuildRecord, inputs map[string]string, plan map[string]string) (*api.BuildStatus, error) {
	parts := map[string]api.BuildStatus{} // by part name
	if own := platformsOf(plan, rec.Spec, r.cfg.Node); len(own) > 0 {
		// Built, or reused by its build key once built.
		partRec, name := part(rec, own)
		st, err := r.buildAs(ctx, partRec, inputs, "", name)
		if st == nil || st.Phase != api.BuildSucceeded {
			return st, err
		}
		parts[st.Detail.Part] = *st
	}
	nodes := slices.Sorted(maps.Values(plan))
	for _, node := range slices.Compact(nodes) {
		if node == r.cfg.Node {
			continue
		}
		_, name := part(rec, platformsOf(plan, rec.Spec, node))
		st, ok := partResult(rec, node, name, inputs)
		switch {
		case !ok:
			return r.waitingForPart(rec, name, node), nil
		case st.Phase == api.BuildFailed:
			return r.failed(newStatus(r.cfg.Node, rec), reconcile.Stall("PartFailed", fmt.Errorf("%s on %s: %s", name, node, st.Message)))
		}
		parts[name] = st
	}
	return r.mergeParts(ctx, rec, inputs, parts)
}

// waitingForPart is the owner's status while another node builds a part.
func (r *Reconciler) waitingForPart(rec state.BuildRecord, name, node string) *api.BuildStatus {
	st := r.startStatus(rec, "")
	st.Message = fmt.Sprintf("waiting for %s, built natively on %s", name, node)
	return &st
}

// mergeParts pushes one index holding every part's images under the
// build's tags and its build key, and records it as the build's result.
func (r *Reconciler) mergeParts(ctx context.Context, rec state.BuildRecord, inputs map[string]string, parts map[string]api.BuildStatus) (*api.BuildStatus, error) {
	registry, refs, failed, err := r.destination(ctx, rec)
	if failed != nil || err != nil {
		return failed, err
	}
	st := r.startStatus(rec, refs[0])
	st.Detail.Inputs, st.Detail.Driver, st.Detail.Parts = inputs, r.cfg.Driver.Name(), map[string]string{}
	_, repo, _ := api.SplitImageRef(refs[0])
	var index ocispec.Index
	index.SchemaVersion, index.MediaType = 2, ocispec.MediaTypeImageIndex
	var keys, built []string
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		descs, err := r.partDescriptors(ctx, registry, repo, parts[name], name)
		if err != nil {
			return nil, fmt.Errorf("build %s: part %s: %w", rec.Spec.Name, name, err)
		}
		index.Manifests = append(index.Manifests, descs...)
		st.Detail.Parts[name] = parts[name].Node
		keys, built = append(keys, parts[name].Detail.Key), append(built, name+" on "+parts[name].Node)
		if st.Detail.Bases == nil && len(parts[name].Detail.Bases) > 0 {
			st.Detail.Bases = map[string]string{}
		}
		maps.Copy(st.Detail.Bases, parts[name].Detail.Bases)
	}
	body, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	st.Detail.Key = BuildKey(rec.Spec, inputs, map[string]string{"parts": strings.Join(keys, "")})
	tags := append(slices.Clone(refs), repository(refs[0])+":"+keyTag(st.Detail.Key))
	for _, ref := range tags {
		_, _, tag := api.SplitImageRef(ref)
		if err := r.registry.tag(ctx, registry, repo, tag, body, ocispec.MediaTypeImageIndex); err != nil {
			return nil, transient(fmt.Errorf("build %s: push the merged index: %w", rec.Spec.Name, err))
		}
	}
	// A registry stores a manifest as pushed: its digest is the body's.
	digest := godigest.FromBytes(body).String()
	r.log.Info("Merged the platforms' images into one index.", "build", rec.Spec.Name, "parts", st.Detail.Parts, "digest", digest)
	done, err := r.succeeded(rec, st, digest)
	done.Message = "merged " + strings.Join(built, " and ") + " into one index"
	return done, err
}

// partDescriptors are the index entries of a part: the manifests of its
// index (images and attestations), or its one image manifest with the
// part's platform.
func (r *Reconciler) partDescriptors(ctx context.Context, registry, repo string, part api.BuildStatus, name string) ([]ocispec.Descriptor, error) {
	body, mediaType, digest, ok, err := r.registry.manifest(ctx, registry, repo, part.Digest)
	if err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("the registry lacks %s@%s", repo, part.Digest)
		}
		return nil, err
	}
	if mediaType == ocispec.MediaTypeImageIndex || mediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return nil, err
		}
		return idx.Manifests, nil
	}
	p, err := platforms.Parse(name)
	if err != nil {
		return nil, err
	}
	return []ocispec.Descriptor{{MediaType: mediaType, Digest: godigest.Digest(digest), Size: int64(len(body)), Platform: &p}}, nil
}

// reconcilePart is a non-owner's side of a split build: build its
// platforms once their inputs are known, unless the build is done.
func (r *Reconciler) reconcilePart(ctx context.Context, rec state.BuildRecord, platforms []string) (*api.BuildStatus, error) {
	inputs, waiting, err := r.inputs(ctx, rec.Spec)
	if err != nil || waiting != "" || handled(rec, inputs) {
		return nil, err
	}
	return r.buildPart(ctx, rec, inputs, platforms)
}
