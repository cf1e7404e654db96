package prepull

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

// Builds before pulls: a built image that other builds of the graph build
// on is pulled once they are done. Their builds are what the graph waits
// on, and a pull costs the engine CPU per layer; the children's pulls
// bring the parent's layers, so its own pull afterwards finds them there.

// MaxPullDeferral bounds how long a pull waits for the builds over its
// image, after its own build finished: a child that never builds (no
// builder for it, a spec stuck pending) must not keep its parent off the
// nodes.
const MaxPullDeferral = 2 * time.Minute

// buildsOver names a build that reads build (a child in the graph) and has
// yet to finish over its current result, and how much longer the pull may
// wait for it. "" when the pull may go ahead.
func (r *Reconciler) buildsOver(ctx context.Context, build string, cur api.BuildStatus) (string, time.Duration) {
	left := MaxPullDeferral - r.now().Sub(cur.Detail.FinishedAt)
	if cur.Detail.FinishedAt.IsZero() || left <= 0 {
		return "", 0
	}
	recs, err := r.read.ListBuilds(ctx, "")
	if err != nil {
		return "", 0
	}
	for _, child := range recs {
		if slices.Contains(child.Spec.DependsOn(), build) && unfinishedOver(child, build, cur.Digest) {
			return child.Spec.Name, left
		}
	}
	return "", 0
}

// unfinishedOver: the child has no outcome yet for its current
// generation over the parent's digest. A failed child is finished: a retry
// may take long, and the parent's pull need not wait for it.
func unfinishedOver(child state.BuildRecord, parent, digest string) bool {
	st, ok := child.Current()
	switch {
	case !ok:
		return true
	case st.Phase == api.BuildFailed:
		return false
	case st.Phase != api.BuildSucceeded || st.ObservedGeneration != child.Meta.Generation:
		return true
	}
	// Built over an earlier result of the parent: it rebuilds.
	_, used, _ := strings.Cut(st.Detail.Inputs[parent], "@")
	return used != digest
}

// childBuilding is buildsOver for a built image ("" for any other).
func (r *Reconciler) childBuilding(ctx context.Context, spec api.ImageSpec) (string, time.Duration) {
	if spec.Build == "" {
		return "", 0
	}
	b, err := r.read.GetBuild(ctx, spec.Build)
	if err != nil {
		return "", 0
	}
	cur, ok := b.Current()
	if !ok {
		return "", 0
	}
	return r.buildsOver(ctx, spec.Build, cur)
}
