package build

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/distribution/reference"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/publish"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// Publishing (x-uc-push): after a build succeeds, its owner copies the
// image by digest from the internal registry to each external reference,
// with the credential the spec names, read on the owner. Each target's
// state is in the build's status; one that failed in a way a retry may
// fix is retried with the build's back-off, one whose credential was
// refused waits for a new digest or a spec change.

// publishPending pushes the current image to the targets that do not
// have it yet. It returns the status to write (nil when nothing was
// attempted) and the outcome: an error when some target should be
// retried.
func (r *Reconciler) publishPending(ctx context.Context, rec state.BuildRecord) (*api.BuildStatus, error) {
	cur, ok := rec.Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.Digest == "" || len(rec.Spec.Push) == 0 {
		return nil, nil
	}
	todo := pendingTargets(rec.Spec, cur)
	if len(todo) == 0 {
		return nil, nil
	}
	registry, err := r.read.NodeRegistry(ctx, r.cfg.Registry, r.now())
	if err != nil {
		return nil, err
	}
	_, repo, _ := api.SplitImageRef(cur.Detail.Ref)
	src := publish.Endpoint{Ref: registry + "/" + repo + "@" + cur.Digest, Insecure: true,
		Transport: regclient.BasicAuth(nil, r.cfg.Credentials)}
	st := cur // the owner's row from now on, if another node built it
	st.Node = r.cfg.Node
	st.Detail.Pushed = maps.Clone(cur.Detail.Pushed)
	if st.Detail.Pushed == nil {
		st.Detail.Pushed = map[string]api.PushState{}
	}
	var retry []error
	mounts := &publish.Mounts{} // targets in one registry share their blobs
	for _, target := range todo {
		state := r.pushOne(ctx, rec.Spec, mounts, src, target, cur.Digest)
		st.Detail.Pushed[target] = state
		if state.State == api.PushRetrying {
			retry = append(retry, fmt.Errorf("push to %s: %s", target, state.Error))
		}
	}
	st.UpdatedAt = r.now()
	return &st, errors.Join(retry...)
}

// pendingTargets are the spec's targets that do not hold the current
// digest: never pushed, pushed an older build, or failing in a way a
// retry may fix.
func pendingTargets(spec api.BuildSpec, cur api.BuildStatus) []string {
	var out []string
	for _, target := range spec.Push {
		p, ok := cur.Detail.Pushed[target]
		if !ok || p.Digest != cur.Digest || p.State == api.PushRetrying {
			out = append(out, target)
		}
	}
	return out
}

// pushOne copies the image to one target and says how that went.
func (r *Reconciler) pushOne(ctx context.Context, spec api.BuildSpec, mounts *publish.Mounts, src publish.Endpoint, target, digest string) api.PushState {
	out := api.PushState{Digest: digest, At: r.now()}
	dst := publish.Endpoint{Ref: target}
	if spec.PushCredential != "" {
		cred, err := regclient.ResolveCredential(spec.PushCredential, registryDomain(target))
		if err != nil {
			out.State, out.Error = api.PushFailed, fmt.Sprintf("credential %s on %s: %v", spec.PushCredential, r.cfg.Node, err)
			return out
		}
		dst.Credential = &cred
	}
	pushed, err := mounts.Copy(ctx, src, dst)
	switch {
	case publish.IsRefused(err):
		out.State, out.Error = api.PushFailed, err.Error()
	case err != nil:
		out.State, out.Error = api.PushRetrying, err.Error()
	default:
		out.State, out.Digest = api.PushPushed, pushed
		r.log.Info("Published a build.", "build", spec.Name, "to", target, "digest", pushed)
	}
	return out
}

// registryDomain is the registry a reference names, docker.io when none.
func registryDomain(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Domain(named)
}
