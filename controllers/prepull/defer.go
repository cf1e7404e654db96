package prepull

import (
	"context"
	"slices"
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

// buildsOver names a build that reads build, directly or through others
// (a descendant in the graph), and has yet to finish over its current
// result, and how much longer the pull may wait for it. "" when the pull
// may go ahead.
func (r *Reconciler) buildsOver(ctx context.Context, build string, cur api.BuildStatus) (string, time.Duration) {
	left := MaxPullDeferral - r.now().Sub(cur.Detail.FinishedAt)
	if cur.Detail.FinishedAt.IsZero() || left <= 0 {
		return "", 0
	}
	recs, err := r.read.ListBuilds(ctx, "")
	if err != nil {
		return "", 0
	}
	for _, d := range descendants(recs, build) {
		if r.unfinished(ctx, d) {
			return d.Spec.Name, left
		}
	}
	return "", 0
}

// descendants lists the builds that read build, nearest first.
func descendants(recs []state.BuildRecord, build string) []state.BuildRecord {
	var out []state.BuildRecord
	seen := map[string]bool{build: true}
	for queue := []string{build}; len(queue) > 0; queue = queue[1:] {
		for _, rec := range recs {
			if !seen[rec.Spec.Name] && slices.Contains(rec.Spec.DependsOn(), queue[0]) {
				seen[rec.Spec.Name] = true
				out = append(out, rec)
				queue = append(queue, rec.Spec.Name)
			}
		}
	}
	return out
}

// unfinished: the build has no result yet for its current generation
// made from its parents' current results (state.Reader.BuildResult). A
// failed build is finished: a retry may take long, and its ancestors'
// pulls need not wait for it.
func (r *Reconciler) unfinished(ctx context.Context, b state.BuildRecord) bool {
	if st, ok := b.Current(); ok && st.Phase == api.BuildFailed {
		return false
	}
	_, ready, err := r.read.BuildResult(ctx, b.Spec.Name)
	return err == nil && !ready
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

// ancestors lists the builds that build reads, directly or through others.
func (r *Reconciler) ancestors(build string) []string {
	var out []string
	seen := map[string]bool{build: true}
	for queue := []string{build}; len(queue) > 0; queue = queue[1:] {
		rec, err := r.read.GetBuild(context.Background(), queue[0])
		if err != nil {
			continue
		}
		for _, parent := range rec.Spec.DependsOn() {
			if !seen[parent] {
				seen[parent] = true
				out = append(out, parent)
				queue = append(queue, parent)
			}
		}
	}
	return out
}
