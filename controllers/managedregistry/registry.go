// Package managedregistry runs uc's internal registry on the nodes: a
// node started with a registry address serves distribution/v3 in process
// (Run); with a registry spec, one eligible node runs it as a container on
// its engine and another takes over when that node dies (NewManaged).
// Either way the node publishes the address in state, where every node's
// stable-address forwarder (registry/forward) finds it, and collects garbage on a schedule and when its
// disk fills. The registry server itself is package registry.
package managedregistry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/state"
)

// Config says where this node serves the registry and how it is kept
// clean.
type Config struct {
	Node    string
	DataDir string
	Listen  string
	// GCInterval is how often the registry is collected; zero: never on a
	// schedule.
	GCInterval time.Duration
	// GCDiskPercent collects when the registry's filesystem is this full
	// (percent used); zero: never for disk usage.
	GCDiskPercent int
	// GCGrace keeps anything newer than this; zero keeps nothing by age
	// (ucd's --registry-gc-grace defaults to the registry's DefaultGrace).
	GCGrace time.Duration
}

// Defaults for Config's GC settings.
const (
	DefaultGCInterval    = time.Hour
	DefaultGCDiskPercent = 80
)

// healthEvery is how often the served registry is checked and its status
// refreshed.
const healthEvery = 10 * time.Second

// Run serves the registry and keeps this node's registry_status row true
// until ctx is done; then it marks the registry stopped.
func Run(ctx context.Context, store *state.Store, cfg Config, log *slog.Logger) error {
	srv, err := registry.Open(ctx, registry.Config{DataDir: cfg.DataDir, Listen: cfg.Listen})
	if err != nil {
		return err
	}
	log.Info("Serving the internal registry.", "addr", srv.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	r := &reconciler{store: store, node: cfg.Node, addr: srv.Addr(), client: &http.Client{Timeout: 5 * time.Second},
		gc: newGCKeeper(store, cfg, log, inProcess{srv})}
	ctrl := reconcile.New(reconcile.Options{
		Name: "registry", Logger: log, Resync: healthEvery,
		Lister: func(context.Context) ([]string, error) { return []string{cfg.Node}, nil },
	}, r)
	runErr := ctrl.Run(ctx)
	return errors.Join(runErr, <-served, r.markStopped())
}

type reconciler struct {
	store  *state.Store
	node   string
	addr   string
	client *http.Client
	conds  []api.Condition // last written, to keep transition times stable
	gc     *gcKeeper
}

// Reconcile checks the registry answers and publishes the result.
func (r *reconciler) Reconcile(ctx context.Context, _ string) (reconcile.Result, error) {
	cond := api.Condition{Type: api.ConditionReady, Status: "True", Reason: "Serving",
		Message: "serving on " + r.addr}
	if err := healthy(ctx, r.client, r.addr); err != nil {
		cond.Status, cond.Reason, cond.Message = "False", "Unhealthy", err.Error()
	} else {
		r.gc.tick(ctx)
	}
	return reconcile.Result{}, r.put(ctx, cond)
}

// healthy checks that the registry at addr answers the API's base
// endpoint; 401 counts, as a registry with auth answers it so.
func healthy(ctx context.Context, client *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("registry health check: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("registry health check: GET /v2/ answered %s", resp.Status)
	}
	return nil
}

// put writes the status; an unchanged condition keeps its transition time
// so that a healthy registry's periodic check writes nothing.
func (r *reconciler) put(ctx context.Context, cond api.Condition) error {
	r.conds = api.SetConditions(r.conds, time.Now(), cond)
	return r.store.PutRegistryStatus(ctx, api.RegistryStatus{
		Node: r.node, Address: r.addr, Conditions: r.conds, Detail: api.RegistryDetail{GC: r.gc.last},
	})
}

func (r *reconciler) markStopped() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.put(ctx, api.Condition{Type: api.ConditionReady, Status: "False", Reason: "Stopped",
		Message: "ucd stopped serving the registry"})
}
