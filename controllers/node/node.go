// Package node keeps this node's own row in the nodes table: registered
// with its labels and version, and heartbeating while ucd runs. Other
// controllers read liveness from those rows; only this node writes its own.
package node

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// Config describes this node.
type Config struct {
	Name      string
	Labels    map[string]string
	Version   string
	Capacity  api.NodeCapacity
	Heartbeat time.Duration // how often to heartbeat; default 5 s
	// Confirm is how soon after writing its row the node looks at it
	// again; default DefaultConfirm (never later than the heartbeat).
	Confirm time.Duration
}

// Reconciler registers the node and heartbeats it. It is level-triggered:
// if the row is deleted or edited by someone else, the next reconcile puts it
// back.
type Reconciler struct {
	store   *state.Store // writes
	read    state.Reader // the cache
	cfg     Config
	started time.Time
	now     func() time.Time
}

// DefaultHeartbeat is how often a node heartbeats when not configured.
const DefaultHeartbeat = 5 * time.Second

// DefaultConfirm is how soon a node looks at the row it wrote again. A
// subscription shows a table's net change: when someone deletes (or edits
// back) the row before the node's watch saw it written, the watch shows
// nothing at all, and only this second look, not an event, restores it.
const DefaultConfirm = 5 * time.Second

// New returns the node controller.
func New(cache *state.Cache, cfg Config, log *slog.Logger) *reconcile.Controller {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Confirm <= 0 {
		cfg.Confirm = DefaultConfirm
	}
	r := &Reconciler{store: cache.Store(), read: cache.Reader, cfg: cfg, started: time.Now(), now: time.Now}
	own := func(ctx context.Context) ([]string, error) { return []string{cfg.Name}, nil }
	// Watch only our own row, and not its heartbeats: other nodes are none
	// of our work, and our heartbeats are timed by RequeueAfter.
	src := cache.Nodes.Source(func(ev state.Event[api.Node]) []string {
		if ev.Key != cfg.Name || ev.Type == state.EventUpdated && sameButHeartbeat(ev.Old, ev.New) {
			return nil
		}
		return []string{ev.Key}
	})
	return reconcile.New(reconcile.Options{Name: "node", Lister: own, Resync: time.Minute, Logger: log}, r, src)
}

// Reconcile makes the node's row match this process and heartbeats it.
func (r *Reconciler) Reconcile(ctx context.Context, key string) (reconcile.Result, error) {
	if key != r.cfg.Name {
		return reconcile.Result{}, nil
	}
	now := r.now()
	cur, err := r.read.GetNode(ctx, key)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return reconcile.Result{}, err
	}
	if err != nil || r.differs(cur) {
		return r.register(ctx, now)
	}
	if age := now.Sub(cur.HeartbeatAt); age < r.cfg.Heartbeat {
		return reconcile.Result{RequeueAfter: r.cfg.Heartbeat - age}, nil
	}
	if err := r.store.Heartbeat(ctx, key, now); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: r.cfg.Heartbeat}, nil
}

func (r *Reconciler) differs(cur api.Node) bool {
	return cur.State != api.NodeReady || cur.Version != r.cfg.Version ||
		!maps.Equal(nonNil(cur.Labels), nonNil(r.cfg.Labels)) || !cur.StartedAt.Equal(r.started.Truncate(time.Millisecond)) ||
		!slices.Equal(cur.Capacity.Builders, r.cfg.Capacity.Builders) ||
		!slices.Equal(cur.Capacity.Platforms, r.cfg.Capacity.Platforms) || !slices.Equal(cur.Capacity.Emulated, r.cfg.Capacity.Emulated) ||
		cur.Capacity.Address != r.cfg.Capacity.Address || cur.Capacity.Engine != r.cfg.Capacity.Engine ||
		!slices.Equal(cur.Capacity.Entitlements, r.cfg.Capacity.Entitlements) || cur.Capacity.API != r.cfg.Capacity.API
}

func (r *Reconciler) register(ctx context.Context, now time.Time) (reconcile.Result, error) {
	err := r.store.RegisterNode(ctx, api.Node{
		Name: r.cfg.Name, Labels: r.cfg.Labels, State: api.NodeReady, Version: r.cfg.Version, Capacity: r.cfg.Capacity,
		StartedAt: r.started, HeartbeatAt: now,
	})
	return reconcile.Result{RequeueAfter: min(r.cfg.Heartbeat, r.cfg.Confirm)}, err
}

// sameButHeartbeat compares two versions of a node row, heartbeat aside.
func sameButHeartbeat(a, b api.Node) bool {
	a.HeartbeatAt = b.HeartbeatAt
	return reflect.DeepEqual(a, b)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
