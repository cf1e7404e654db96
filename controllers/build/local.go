package build

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Builds made off the cluster (x-uc-build: local): uc build runs them on
// the user's side and records their status itself. The cluster never
// builds them: their owner, any live node, says that the build waits for
// uc build, and publishes a result (x-uc-push) once there is one.

// reconcileLocal is the owner's part in a build made off the cluster.
func (r *Reconciler) reconcileLocal(ctx context.Context, rec state.BuildRecord, nodes []api.Node) (*api.BuildStatus, error) {
	owner, ok := api.PickOwner(rec.Spec.Name, nodes, r.now(), nil)
	if !ok || owner != r.cfg.Node {
		return nil, nil
	}
	if builtOffCluster(rec) {
		return r.publishPending(ctx, rec)
	}
	st := newStatus(r.cfg.Node, rec)
	if cur, ok := rec.Current(); ok {
		st.Digest, st.ObservedGeneration = cur.Digest, cur.ObservedGeneration
	}
	st.Phase = api.BuildPending
	st.Message = fmt.Sprintf("built off the cluster (x-uc-build: local): waiting for uc build to build generation %d", rec.Meta.Generation)
	return &st, reconcile.Wait("BuildsOffCluster", st.Message, 0)
}

// builtOffCluster reports whether uc build finished this generation.
func builtOffCluster(rec state.BuildRecord) bool {
	for _, st := range rec.Status {
		if st.SpecUID == rec.Meta.UID && st.ObservedGeneration == rec.Meta.Generation && st.Detail.Part == "" &&
			(st.Phase == api.BuildSucceeded || st.Phase == api.BuildFailed) {
			return true
		}
	}
	return false
}

// BuildHere runs one build in this process, as a cluster builder would,
// with cfg's driver, and records its status under cfg.Node: uc build's
// path. Its inputs (service: contexts) must have results already.
func BuildHere(ctx context.Context, store *state.Store, name string, cfg Config, log *slog.Logger) (api.BuildStatus, error) {
	r := newReconciler(store, store.Reader, cfg, log)
	rec, err := store.GetBuild(ctx, name)
	if err != nil {
		return api.BuildStatus{}, err
	}
	inputs, waiting, err := r.inputs(ctx, rec.Spec)
	if err != nil {
		return api.BuildStatus{}, err
	}
	if waiting != "" {
		return api.BuildStatus{}, fmt.Errorf("build %s reads build %s, which has no result for its current generation yet: build it first", name, waiting)
	}
	st, outcome := r.build(ctx, rec, inputs, "")
	if st == nil {
		return api.BuildStatus{}, outcome
	}
	if err := r.summarize(ctx, rec, st, outcome); err != nil {
		return *st, err
	}
	return *st, nil
}
