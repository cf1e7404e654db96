package build

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Status. Each reconcile concludes one status and one outcome (nil, a
// reconcile.Wait, a reconcile.Stall, or a transient error), and summarize
// writes that status once, with conditions derived from the outcome, as
// Flux's controllers summarize. A build in progress also reports progress
// (queued, building, steps done) through progress, throttled: those rows
// say what is happening, not how a reconcile ended.

// summarize writes a reconcile's status, if it has one, and returns the
// outcome for the runtime. ObservedGeneration moves only when this
// generation was handled: built, or failed for good.
func (r *Reconciler) summarize(ctx context.Context, rec state.BuildRecord, st *api.BuildStatus, outcome error) error {
	if st == nil {
		return outcome
	}
	if st.Phase == api.BuildSucceeded || reconcile.IsTerminal(outcome) {
		st.ObservedGeneration = rec.Meta.Generation
	}
	st.Conditions = conditions(r.ownConditions(rec), r.now(), *st, outcome)
	if err := r.record(ctx, *st); err != nil {
		// Not wrapped: the failed write, not the outcome, decides the retry.
		return fmt.Errorf("build %s: %v, and %w", rec.Spec.Name, cmp.Or(errString(outcome), st.Phase), err)
	}
	if outcome != nil && !isWaiting(outcome) {
		return fmt.Errorf("build %s: %w", rec.Spec.Name, outcome)
	}
	return outcome
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func isWaiting(err error) bool {
	_, ok := reconcile.IsWaiting(err)
	return ok
}

// conditions are the build's Kubernetes-style conditions for a status and
// its outcome.
func conditions(prev []api.Condition, now time.Time, st api.BuildStatus, outcome error) []api.Condition {
	cond := func(t, status, reason string) api.Condition {
		return api.Condition{Type: t, Status: status, Reason: reason, Message: st.Message}
	}
	reason := reconcile.Reason(outcome)
	switch {
	case st.Phase == api.BuildSucceeded:
		return api.SetConditions(prev, now, cond(api.ConditionReady, "True", builtReason(st)))
	case isWaiting(outcome):
		return api.SetConditions(prev, now, cond(api.ConditionReconciling, "True", reason))
	case reconcile.IsTerminal(outcome):
		return api.SetConditions(prev, now, cond(api.ConditionReady, "False", reason), cond(api.ConditionStalled, "True", reason))
	case outcome != nil:
		return api.SetConditions(prev, now, cond(api.ConditionReady, "False", "BuildFailed"), cond(api.ConditionReconciling, "True", "RetryingBuild"))
	case st.Phase == api.BuildQueued:
		return api.SetConditions(prev, now, cond(api.ConditionReconciling, "True", "Queued"))
	}
	return api.SetConditions(prev, now, cond(api.ConditionReconciling, "True", "Building"))
}

func builtReason(st api.BuildStatus) string {
	switch {
	case st.Detail.Reused:
		return "Reused"
	case st.Detail.RestoredFrom != "":
		return "Restored"
	}
	return "Built"
}

// ownConditions are the conditions of this node's row for the build.
func (r *Reconciler) ownConditions(rec state.BuildRecord) []api.Condition {
	for _, st := range rec.Status {
		if st.Node == r.cfg.Node {
			return st.Conditions
		}
	}
	return nil
}

// progress writes a build's state while it runs (queued, building, steps).
// A failed write is logged: the outcome's write comes later and is kept
// until it succeeds.
func (r *Reconciler) progress(ctx context.Context, st api.BuildStatus) {
	st.Conditions = conditions(st.Conditions, r.now(), st, nil)
	if err := r.store.PutBuildStatus(ctx, st); err != nil {
		r.log.Warn("Writing build progress failed.", "build", st.Name, "phase", st.Phase, "err", err)
	}
}

// wait says that the build waits for another build's result; that
// result's status change enqueues this build again.
func (r *Reconciler) wait(rec state.BuildRecord, dep string) (*api.BuildStatus, error) {
	st := newStatus(r.cfg.Node, rec)
	if cur, ok := rec.Current(); ok {
		st.Digest, st.ObservedGeneration = cur.Digest, cur.ObservedGeneration
	}
	st.Phase = api.BuildPending
	st.Message = "waiting for build " + dep
	return &st, reconcile.Wait("WaitingForDependency", st.Message, 0)
}

// reasonUnschedulable marks a build no live node may run. It fails the
// generation for waiting users, but is looked at again whenever nodes
// change, since a matching node may join.
const reasonUnschedulable = "Unschedulable"

func unschedulable(node string, rec state.BuildRecord, why error) (*api.BuildStatus, error) {
	st := newStatus(node, rec)
	st.Phase, st.Message = api.BuildFailed, why.Error()
	if cur, ok := rec.Current(); ok {
		st.Digest = cur.Digest
	}
	return &st, reconcile.Stall(reasonUnschedulable, why)
}

// dropRefusal deletes this node's refusal once another node owns the
// build: left behind, it would stay the newest word on the generation and
// fail waiters while the new owner builds.
func (r *Reconciler) dropRefusal(ctx context.Context, rec state.BuildRecord) error {
	for _, old := range rec.Status {
		if old.Node == r.cfg.Node && isUnschedulable(old) {
			return r.store.DeleteBuildStatus(ctx, rec.Spec.Name, r.cfg.Node)
		}
	}
	return nil
}

func isUnschedulable(st api.BuildStatus) bool {
	return slices.ContainsFunc(st.Conditions, func(c api.Condition) bool { return c.Reason == reasonUnschedulable })
}

func newStatus(node string, rec state.BuildRecord) api.BuildStatus {
	return api.BuildStatus{Name: rec.Spec.Name, Node: node, SpecUID: rec.Meta.UID}
}

// startStatus keeps the last good digest and observed generation while the
// new generation builds, so that nodes keep the working image meanwhile.
func (r *Reconciler) startStatus(rec state.BuildRecord, ref string) api.BuildStatus {
	st := newStatus(r.cfg.Node, rec)
	if cur, ok := rec.Current(); ok && cur.Phase == api.BuildSucceeded {
		st.Digest, st.ObservedGeneration = cur.Digest, cur.ObservedGeneration
	}
	st.Conditions = r.ownConditions(rec) // what progress's transitions start from
	st.Phase = api.BuildBuilding
	st.Message = fmt.Sprintf("building generation %d on %s", rec.Meta.Generation, r.cfg.Node)
	st.Detail = api.BuildDetail{Generation: rec.Meta.Generation, Ref: ref, StartedAt: r.now(), Commit: commitOf(rec.Spec)}
	return st
}

// reporter writes progress at most once a second: gossip carries only
// real changes, and a build's every log line is not one.
func (r *Reconciler) reporter(ctx context.Context, st api.BuildStatus) func(progress) {
	var last time.Time
	return func(p progress) {
		if r.now().Sub(last) < time.Second {
			return
		}
		last = r.now()
		st.Detail.StepsDone, st.Detail.StepsTotal, st.Detail.LogTail = p.StepsDone, p.StepsTotal, p.LogTail
		r.progress(ctx, st)
	}
}

// succeeded is the status of a build that produced digest.
func (r *Reconciler) succeeded(rec state.BuildRecord, st api.BuildStatus, digest string) (*api.BuildStatus, error) {
	now := r.now()
	st.Phase, st.Digest = api.BuildSucceeded, digest
	st.Detail.FinishedAt = now
	st.Detail.History = history(rec, digest)
	st.Message = fmt.Sprintf("built in %s", now.Sub(st.Detail.StartedAt).Round(10*time.Millisecond))
	if st.Detail.Reused {
		st.Message = "reused the image stored for build key " + st.Detail.Key[:12] + " (no solve)"
	}
	if st.Detail.RestoredFrom != "" {
		st.Message = "restored from " + st.Detail.RestoredFrom
	}
	r.log.Info("Build succeeded.", "build", rec.Spec.Name, "digest", digest, "duration", now.Sub(st.Detail.StartedAt))
	return &st, nil
}

// history is the digests of the last successful builds, newest first,
// carried over from the latest success any node recorded for this spec.
func history(rec state.BuildRecord, digest string) []string {
	var last api.BuildStatus
	for _, st := range rec.Status {
		if st.Phase == api.BuildSucceeded && st.Detail.Part == "" && st.Detail.FinishedAt.After(last.Detail.FinishedAt) {
			last = st
		}
	}
	out := []string{digest}
	for _, d := range append([]string{last.Digest}, last.Detail.History...) {
		if d != "" && !slices.Contains(out, d) && len(out) < rec.Spec.Keep() {
			out = append(out, d)
		}
	}
	return out
}

// failed is the status of a build that failed with cause. Whether a retry
// may help is decided by the type of cause (classifyFailure).
func (r *Reconciler) failed(st api.BuildStatus, cause error) (*api.BuildStatus, error) {
	st.Phase, st.Message = api.BuildFailed, cause.Error()
	st.Detail.FinishedAt = r.now()
	return &st, r.classifyFailure(st, cause)
}

// record writes a build's outcome. A write that fails (the state's disk
// is full, the API is away) is kept and written first by the key's next
// reconcile, which the returned error schedules with backoff: an outcome
// is never dropped, and never left showing "building".
func (r *Reconciler) record(ctx context.Context, st api.BuildStatus) error {
	err := r.store.PutBuildStatus(ctx, st)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.unwritten[st.Name] = st
		if IsDiskFull(err) {
			return fmt.Errorf("writing its status failed, the state's disk is full (retrying): %w", err)
		}
		return fmt.Errorf("writing its status failed (retrying): %w", err)
	}
	delete(r.unwritten, st.Name)
	return nil
}

// flushUnwritten writes an outcome whose write failed before, unless the
// spec it was for is gone or replaced. written says the build's status
// changed, so the caller reads it again.
func (r *Reconciler) flushUnwritten(ctx context.Context, rec state.BuildRecord) (written bool, err error) {
	r.mu.Lock()
	st, ok := r.unwritten[rec.Spec.Name]
	if ok && st.SpecUID != rec.Meta.UID {
		delete(r.unwritten, rec.Spec.Name)
		ok = false
	}
	r.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := r.record(ctx, st); err != nil {
		return false, fmt.Errorf("build %s: %w", rec.Spec.Name, err)
	}
	r.log.Info("Wrote a build outcome whose first write failed.", "build", rec.Spec.Name, "phase", st.Phase)
	return true, nil
}

// forgetUnwritten drops an outcome kept for a build that is gone.
func (r *Reconciler) forgetUnwritten(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.unwritten, name)
}
