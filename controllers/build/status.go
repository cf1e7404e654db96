package build

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Status writes: every outcome of a build is recorded in this node's own
// build_status row.

// wait records that the build waits for another build's result; that
// result's status change enqueues this build again.
func (r *Reconciler) wait(ctx context.Context, rec state.BuildRecord, dep string) error {
	st := newStatus(r.cfg.Node, rec)
	if cur, ok := rec.Current(); ok {
		st.Digest, st.ObservedGeneration = cur.Digest, cur.ObservedGeneration
	}
	st.Phase = api.BuildPending
	st.Message = "waiting for build " + dep
	st.Conditions = []api.Condition{{Type: api.ConditionReconciling, Status: "True", Reason: "WaitingForDependency",
		Message: st.Message, LastTransitionTime: r.now()}}
	return r.store.PutBuildStatus(ctx, st)
}

// reasonUnschedulable marks a build no live node may run. It fails the
// generation for waiting users, but is looked at again whenever nodes
// change, since a matching node may join.
const reasonUnschedulable = "Unschedulable"

func (r *Reconciler) unschedulable(ctx context.Context, rec state.BuildRecord, why error) error {
	for _, old := range rec.Status {
		if old.Node == r.cfg.Node && old.SpecUID == rec.Meta.UID && old.ObservedGeneration == rec.Meta.Generation &&
			isUnschedulable(old) && old.Message == why.Error() {
			return nil // already said; rewriting would only move timestamps
		}
	}
	st := newStatus(r.cfg.Node, rec)
	st.Phase, st.Message, st.ObservedGeneration = api.BuildFailed, why.Error(), rec.Meta.Generation
	if cur, ok := rec.Current(); ok {
		st.Digest = cur.Digest
	}
	st.Conditions = []api.Condition{
		{Type: api.ConditionReady, Status: "False", Reason: reasonUnschedulable, Message: st.Message, LastTransitionTime: r.now()},
		{Type: api.ConditionStalled, Status: "True", Reason: reasonUnschedulable, Message: st.Message, LastTransitionTime: r.now()},
	}
	return r.store.PutBuildStatus(ctx, st)
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
	st.Phase = api.BuildBuilding
	st.Message = fmt.Sprintf("building generation %d on %s", rec.Meta.Generation, r.cfg.Node)
	st.Detail = api.BuildDetail{Generation: rec.Meta.Generation, Ref: ref, StartedAt: r.now()}
	st.Conditions = []api.Condition{
		{Type: api.ConditionReconciling, Status: "True", Reason: "Building", Message: st.Message, LastTransitionTime: r.now()},
	}
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
		if err := r.store.PutBuildStatus(ctx, st); err != nil {
			r.log.Warn("Writing build progress failed.", "build", st.Name, "err", err)
		}
	}
}

func (r *Reconciler) succeed(ctx context.Context, rec state.BuildRecord, st api.BuildStatus, digest string) error {
	now := r.now()
	st.Phase, st.Digest, st.ObservedGeneration = api.BuildSucceeded, digest, rec.Meta.Generation
	st.Detail.FinishedAt = now
	st.Detail.History = history(rec, digest)
	st.Message = fmt.Sprintf("built in %s", now.Sub(st.Detail.StartedAt).Round(10*time.Millisecond))
	if st.Detail.Reused {
		st.Message = "reused the image stored for build key " + st.Detail.Key[:12] + " (no solve)"
	}
	if st.Detail.RestoredFrom != "" {
		st.Message = "restored from " + st.Detail.RestoredFrom
	}
	st.Conditions = []api.Condition{{Type: api.ConditionReady, Status: "True", Reason: "Built", Message: st.Message, LastTransitionTime: now}}
	r.log.Info("Build succeeded.", "build", rec.Spec.Name, "digest", digest, "duration", now.Sub(st.Detail.StartedAt))
	if err := r.record(ctx, st); err != nil {
		return fmt.Errorf("build %s succeeded, but %w", rec.Spec.Name, err)
	}
	return nil
}

// history is the digests of the last successful builds, newest first,
// carried over from the latest success any node recorded for this spec.
func history(rec state.BuildRecord, digest string) []string {
	var last api.BuildStatus
	for _, st := range rec.Status {
		if st.Phase == api.BuildSucceeded && st.Detail.FinishedAt.After(last.Detail.FinishedAt) {
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

// fail records a failed build. A terminal failure (the Dockerfile's fault)
// marks the generation handled and is not retried once recorded; a
// transient one leaves it to be retried.
func (r *Reconciler) fail(ctx context.Context, rec state.BuildRecord, st api.BuildStatus, cause error, terminal bool) error {
	now := r.now()
	st.Phase, st.Message = api.BuildFailed, cause.Error()
	st.Detail.FinishedAt = now
	cond := api.Condition{Type: api.ConditionStalled, Status: "True", Reason: "BuildFailed", Message: st.Message, LastTransitionTime: now}
	if terminal {
		st.ObservedGeneration = rec.Meta.Generation
	} else {
		cond = api.Condition{Type: api.ConditionReconciling, Status: "True", Reason: "RetryingBuild", Message: st.Message, LastTransitionTime: now}
	}
	st.Conditions = []api.Condition{{Type: api.ConditionReady, Status: "False", Reason: "BuildFailed", Message: st.Message, LastTransitionTime: now}, cond}
	if err := r.record(ctx, st); err != nil {
		return fmt.Errorf("build %s failed (%w), and %w", rec.Spec.Name, cause, err)
	}
	err := fmt.Errorf("build %s: %w", rec.Spec.Name, cause)
	if terminal {
		return reconcile.Terminal(err)
	}
	return err
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
