package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Followed git branches (x-uc-follow): the spec keeps the branch, and its
// owner resolves it to a commit when first seen, every interval, and when
// the spec's generation moves (uc refresh build, a push webhook). The
// build then runs on the context pinned to that commit, so its build key
// and status carry the commit: a new commit builds, and a force-push back
// to an older one finds its image by build key. Only the owner resolves:
// every node would otherwise ask the forge.

// head is what a followed branch resolved to, and when.
type head struct {
	uid        string
	generation int64
	commit     string
	err        error // the last resolution's failure; retried on every reconcile
	at         time.Time
}

// gitHeads remembers each followed build's last resolution.
type gitHeads map[string]head

// due reports whether a build's branch must be resolved again.
func (h head) due(rec state.BuildRecord, every time.Duration, now time.Time) bool {
	return h.at.IsZero() || h.err != nil || h.uid != rec.Meta.UID || h.generation != rec.Meta.Generation || now.Sub(h.at) >= every
}

// followGit pins a followed build's context to the commit its branch
// points at; ok is false when the branch cannot be resolved, with the
// status that says so (nil when the build's status says so already) and
// the outcome: a deleted branch is terminal, anything else is retried.
func (r *Reconciler) followGit(ctx context.Context, rec state.BuildRecord) (_ state.BuildRecord, ok bool, _ *api.BuildStatus, _ error) {
	if !rec.Spec.Follows() {
		return rec, true, nil, nil
	}
	h := r.resolveHead(ctx, rec)
	if h.err == nil {
		rec.Spec.Context, rec.Spec.ContextDigest = api.PinGitContext(rec.Spec.Context, h.commit), "git:"+h.commit
		return rec, true, nil, nil
	}
	var gone *gitremote.NoRefError
	terminal := errors.As(h.err, &gone)
	st := r.unresolvedStatus(rec, h.err)
	if cur, found := rec.Current(); found && terminal && cur.Message == st.Message && cur.Phase == api.BuildFailed && cur.Detail.Generation == rec.Meta.Generation {
		return rec, false, nil, nil // said already, and retrying cannot help
	}
	if terminal {
		return rec, false, &st, reconcile.Stall("BranchGone", h.err)
	}
	return rec, false, &st, h.err
}

// resolveHead resolves the build's branch when due, else returns the last
// resolution.
func (r *Reconciler) resolveHead(ctx context.Context, rec state.BuildRecord) head {
	r.mu.Lock()
	h, now := r.heads[rec.Spec.Name], r.now()
	r.mu.Unlock()
	if !h.due(rec, rec.Spec.FollowInterval(), now) {
		return h
	}
	url, ref, _ := api.SplitGitContext(rec.Spec.Context)
	commit, err := gitremote.Resolve(ctx, url, ref, rec.Spec.GitCredential)
	var gone *gitremote.NoRefError
	if errors.As(err, &gone) {
		err = fmt.Errorf("branch %s of %s no longer exists: the last image built stays; push the branch again, or point the build at another", gitremote.RefName(ref), url)
		err = errors.Join(err, gone) // keeps the type for followGit
	}
	h = head{uid: rec.Meta.UID, generation: rec.Meta.Generation, commit: commit, err: err, at: now}
	if err == nil && commit != r.heads[rec.Spec.Name].commit {
		r.log.Info("A followed branch resolved.", "build", rec.Spec.Name, "branch", gitremote.RefName(ref), "commit", commit)
	}
	r.mu.Lock()
	r.heads[rec.Spec.Name] = h
	r.mu.Unlock()
	return h
}

// unresolvedStatus says the build's branch could not be resolved. It
// keeps the last image (nodes keep pulling it) and the commit it was
// built from.
func (r *Reconciler) unresolvedStatus(rec state.BuildRecord, cause error) api.BuildStatus {
	st := newStatus(r.cfg.Node, rec)
	if cur, ok := rec.Current(); ok {
		st.Digest, st.ObservedGeneration, st.Detail = cur.Digest, cur.ObservedGeneration, cur.Detail
	}
	st.Phase, st.Message = api.BuildFailed, firstLine(cause)
	st.Detail.Generation, st.Detail.FinishedAt, st.Detail.Commit = rec.Meta.Generation, r.now(), ""
	return st
}

// firstLine is an error's first line: errors.Join adds the wrapped
// error's own, shorter, message after a newline.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// commitOf is the commit a pinned git context names ("" for any other).
func commitOf(spec api.BuildSpec) string {
	if !api.IsGitContext(spec.Context) {
		return ""
	}
	commit, _ := strings.CutPrefix(spec.ContextDigest, "git:")
	return commit
}

// recheckAfter is when a build comes back on its own: its bases or its
// branch are due to be checked (0: never).
func (r *Reconciler) recheckAfter(spec api.BuildSpec) time.Duration {
	bases, branch := r.baseInterval(spec), time.Duration(0)
	if spec.Follows() {
		branch = spec.FollowInterval()
	}
	if bases == 0 || branch > 0 && branch < bases {
		return branch
	}
	return bases
}
