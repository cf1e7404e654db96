// Package gitsync is the GitOps sync controller (uc sync add): the owner
// of a sync follows its repository's ref and, on every new commit (or
// new generation: a spec change, uc refresh syncs, a push webhook),
// checks the commit out under its data dir and applies the file exactly
// as uc apply does, pruning what the file no longer has. An invalid file
// changes nothing and is reported with the commit.
package gitsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/apply"
)

// Config says where this node keeps its checkouts.
type Config struct {
	Node string
	// Dir holds one checkout per sync this node owns, reused across
	// commits so that build contexts keep their paths.
	Dir string
}

// Reconciler applies the syncs this node owns.
type Reconciler struct {
	store *state.Store
	cache *state.Cache
	cfg   Config
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex
	heads map[string]head // by sync name
}

// head is what a sync's ref last resolved to.
type head struct {
	uid        string
	generation int64
	commit     string
	at         time.Time
}

// New returns the sync controller. Owner changes are caught by the resync.
func New(cache *state.Cache, cfg Config, log *slog.Logger) *reconcile.Controller {
	r := &Reconciler{store: cache.Store(), cache: cache, cfg: cfg, log: log.With("controller", "sync"), now: time.Now, heads: map[string]head{}}
	specs := cache.SyncSpecs.Source(func(ev state.Event[state.SyncRecord]) []string { return []string{ev.Key} })
	return reconcile.New(reconcile.Options{Name: "sync", Workers: 2, Timeout: 10 * time.Minute, Resync: 30 * time.Second,
		Lister: r.list, Logger: log}, r, specs)
}

func (r *Reconciler) list(context.Context) ([]string, error) {
	var names []string
	for _, rec := range r.cache.SyncSpecs.List() {
		names = append(names, rec.Spec.Name)
	}
	return names, nil
}

// Reconcile applies a sync's file when its ref moved or its spec changed.
func (r *Reconciler) Reconcile(ctx context.Context, name string) (reconcile.Result, error) {
	rec, ok := r.cache.GetSync(name)
	if !ok {
		return reconcile.Result{}, r.store.DeleteSyncStatus(ctx, name, r.cfg.Node)
	}
	nodes, err := r.cache.ListNodes(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if owner, ok := api.PickOwner("sync/"+name, nodes, r.now(), nil); !ok || owner != r.cfg.Node {
		return reconcile.Result{}, nil
	}
	every := rec.Spec.IntervalDuration()
	st, err := r.reconcileSync(ctx, rec)
	if st != nil {
		if werr := r.store.PutSyncStatus(ctx, *st); werr != nil {
			return reconcile.Result{}, errors.Join(err, werr)
		}
	}
	return reconcile.Result{RequeueAfter: every}, err
}

// reconcileSync returns the status to write (nil: none) and the outcome.
func (r *Reconciler) reconcileSync(ctx context.Context, rec state.SyncRecord) (*api.SyncStatus, error) {
	cur := r.ownStatus(rec)
	commit, err := r.resolve(ctx, rec)
	if err != nil {
		return r.failed(rec, cur, "", err), err // retried: the forge may be away
	}
	if cur.Commit == commit && cur.ObservedGeneration == rec.Meta.Generation && cur.Phase != api.SyncPending {
		return nil, nil
	}
	checkedOut, err := r.checkout(ctx, rec.Spec)
	if err != nil {
		return r.failed(rec, cur, commit, err), err
	}
	st := r.apply(ctx, rec, cur, checkedOut)
	return &st, nil
}

// ownStatus is this node's row for the sync's current incarnation.
func (r *Reconciler) ownStatus(rec state.SyncRecord) api.SyncStatus {
	for _, st := range rec.Status {
		if st.Node == r.cfg.Node && st.SpecUID == rec.Meta.UID {
			return st
		}
	}
	return api.SyncStatus{Name: rec.Spec.Name, Node: r.cfg.Node, SpecUID: rec.Meta.UID, Phase: api.SyncPending}
}

// resolve returns the commit the sync's ref points at, asking the remote
// when due: first seen, a new generation, or the interval passed.
func (r *Reconciler) resolve(ctx context.Context, rec state.SyncRecord) (string, error) {
	r.mu.Lock()
	h := r.heads[rec.Spec.Name]
	r.mu.Unlock()
	now := r.now()
	if h.commit != "" && h.uid == rec.Meta.UID && h.generation == rec.Meta.Generation && now.Sub(h.at) < rec.Spec.IntervalDuration() {
		return h.commit, nil
	}
	commit, err := gitremote.Resolve(ctx, rec.Spec.Repo, rec.Spec.Ref, rec.Spec.Credential)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	r.heads[rec.Spec.Name] = head{uid: rec.Meta.UID, generation: rec.Meta.Generation, commit: commit, at: now}
	r.mu.Unlock()
	return commit, nil
}

// checkout fetches the ref's tip into the sync's work tree and returns
// the commit checked out (the ref may have moved since it was resolved).
func (r *Reconciler) checkout(ctx context.Context, spec api.SyncSpec) (string, error) {
	return gitremote.Checkout(ctx, r.dir(spec.Name), spec.Repo, spec.Ref, spec.Credential)
}

// dir is the sync's work tree.
func (r *Reconciler) dir(name string) string {
	return filepath.Join(r.cfg.Dir, strings.NewReplacer("/", "_", "..", "_").Replace(name))
}

// apply applies the file at the checked-out commit, as uc apply would.
func (r *Reconciler) apply(ctx context.Context, rec state.SyncRecord, cur api.SyncStatus, commit string) api.SyncStatus {
	st := cur
	st.ObservedGeneration, st.Commit, st.UpdatedAt = rec.Meta.Generation, commit, r.now()
	opts, err := r.options(rec.Spec)
	var p *api.Project
	if err == nil {
		p, err = apply.Load(ctx, opts)
	}
	var res state.ApplyResult
	if err == nil {
		res, err = apply.Apply(ctx, r.store, p, opts)
	}
	if err != nil {
		st.Phase, st.Message = api.SyncFailed, fmt.Sprintf("commit %s not applied, nothing changed: %v", short(commit), err)
		r.log.Warn("A sync's file was not applied.", "sync", rec.Spec.Name, "commit", commit, "err", err)
		return st
	}
	st.Phase, st.Applied, st.AppliedAt, st.Project = api.SyncApplied, commit, r.now(), p.Name
	st.Changes = nil
	for _, c := range res.Changes {
		if c.Action != state.Unchanged {
			st.Changes = append(st.Changes, fmt.Sprintf("%s %s %s", c.Kind, c.Name, c.Action))
		}
	}
	st.Message = fmt.Sprintf("applied commit %s: %d changes", short(commit), len(st.Changes))
	r.log.Info("Applied a sync.", "sync", rec.Spec.Name, "commit", commit, "project", p.Name, "changes", len(st.Changes))
	return st
}

// options are apply's options for the sync's path: a directory is an
// image monorepo, a file a Compose or Bake file.
func (r *Reconciler) options(spec api.SyncSpec) (apply.Options, error) {
	path := filepath.Join(r.dir(spec.Name), filepath.Clean("/"+spec.Path))
	fi, err := os.Stat(path)
	if err != nil {
		return apply.Options{}, fmt.Errorf("%s is not in the repository: %w", spec.Path, err)
	}
	opts := apply.Options{}
	opts.Compose.MaxContextSize = 1 << 30
	if fi.IsDir() {
		opts.Contexts = path
	} else {
		opts.Compose.Files = []string{path}
	}
	return opts, nil
}

// failed says a sync could not be resolved or checked out; the last
// applied commit stays.
func (r *Reconciler) failed(rec state.SyncRecord, cur api.SyncStatus, commit string, err error) *api.SyncStatus {
	st := cur
	st.Phase, st.Commit, st.UpdatedAt = api.SyncFailed, commit, r.now()
	st.Message = err.Error()
	if cur.Phase == st.Phase && cur.Message == st.Message {
		return nil // said already
	}
	return &st
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
