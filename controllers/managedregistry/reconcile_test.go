package managedregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	dockerclient "github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
	"github.com/ucplane/uc/test/harness"
)

// fakeEngine keeps containers in memory. Starting the registry container
// serves a real in-process registry on the address its environment names,
// so the controller's health check talks to a real one.
type fakeEngine struct {
	mu        sync.Mutex
	container *container.InspectResponse // the one registry container, or nil
	stop      func()
	creates   int
	starts    int
	createErr error
	deaf      bool // started containers do not answer
}

func (e *fakeEngine) ContainerInspect(_ context.Context, name string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.container == nil {
		return container.InspectResponse{}, fmt.Errorf("no such container %s: %w", name, cerrdefs.ErrNotFound)
	}
	return *e.container, nil
}

func (e *fakeEngine) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, _ *network.NetworkingConfig,
	_ *ocispec.Platform, name string) (container.CreateResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.creates++
	if e.createErr != nil {
		return container.CreateResponse{}, e.createErr
	}
	e.container = &container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{Name: name, HostConfig: host,
		State: &container.State{Status: "created"}}, Config: cfg}
	return container.CreateResponse{ID: name}, nil
}

func (e *fakeEngine) ContainerStart(context.Context, string, container.StartOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.starts++
	e.container.State = &container.State{Status: "running", Running: true}
	if e.deaf {
		return nil
	}
	addr := ""
	for _, kv := range e.container.Config.Env {
		addr = strings.TrimPrefix(kv, "REGISTRY_HTTP_ADDR=")
		if addr != kv {
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.Open(ctx, registry.Config{DataDir: tempDir(), Listen: addr})
	if err != nil {
		cancel()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx) }()
	e.stop = func() { cancel(); <-done }
	return nil
}

func (e *fakeEngine) ContainerRemove(context.Context, string, container.RemoveOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kill()
	e.container = nil
	return nil
}

// kill stops the registry a container serves, as if its process died.
func (e *fakeEngine) kill() {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	}
	if e.container != nil {
		e.container.State = &container.State{Status: "exited"}
	}
}

func (e *fakeEngine) ImageInspect(context.Context, string, ...dockerclient.ImageInspectOption) (image.InspectResponse, error) {
	return image.InspectResponse{}, nil // the stock image is there
}

func (e *fakeEngine) ImageLoad(context.Context, io.Reader, ...dockerclient.ImageLoadOption) (image.LoadResponse, error) {
	return image.LoadResponse{}, errors.New("not loaded in tests")
}

func (e *fakeEngine) ImagePull(context.Context, string, image.PullOptions) (io.ReadCloser, error) {
	return nil, errors.New("not pulled in tests")
}

func (e *fakeEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return nil, nil
}

func (e *fakeEngine) counts() (creates, starts int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.creates, e.starts
}

var tempDirs struct {
	sync.Mutex
	t *testing.T
}

func tempDir() string {
	tempDirs.Lock()
	defer tempDirs.Unlock()
	return tempDirs.t.TempDir()
}

// registryWorld is node a (this node) and maybe b on a real embedded state
// and cache, with the managed-registry controller over a fake engine.
type registryWorld struct {
	t      *testing.T
	store  *state.Store
	cache  *state.Cache
	engine *fakeEngine
	m      *managed
	port   int
}

func newRegistryWorld(t *testing.T, engine *fakeEngine) *registryWorld {
	t.Helper()
	tempDirs.Lock()
	tempDirs.t = t
	tempDirs.Unlock()
	srv := statetest.Start(t)
	w := &registryWorld{t: t, store: srv.Store, cache: srv.StartCache(t), engine: engine, port: freePort(t)}
	w.node("a", time.Now().Add(time.Hour))
	w.m = &managed{store: srv.Store, read: w.cache.Reader, engine: engine, log: slog.New(slog.DiscardHandler),
		http: &http.Client{Timeout: 2 * time.Second},
		cfg:  ManagedConfig{Config: Config{Node: "a", DataDir: t.TempDir()}, Address: "127.0.0.1", FailoverAfter: 5 * time.Second}}
	t.Cleanup(func() { engine.mu.Lock(); engine.kill(); engine.mu.Unlock() })
	return w
}

// freePort is the port of test/harness.FreeAddr.
func freePort(t *testing.T) int {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcp.Port
}

func (w *registryWorld) node(name string, heartbeat time.Time) {
	w.t.Helper()
	if err := w.store.RegisterNode(context.Background(), api.Node{Name: name, State: api.NodeReady, StartedAt: time.Now(),
		HeartbeatAt: heartbeat, Capacity: api.NodeCapacity{Engine: true}}); err != nil {
		w.t.Fatal(err)
	}
	statetest.Eventually(w.t, "the cache to hold node "+name, func() bool {
		n, err := w.cache.GetNode(context.Background(), name)
		return err == nil && n.HeartbeatAt.Equal(heartbeat.Truncate(time.Millisecond))
	})
}

func (w *registryWorld) want(spec api.RegistrySpec) {
	w.t.Helper()
	spec.Image = "registry:2" // the stock image: the fake engine has it
	if spec.Port == 0 {
		spec.Port = w.port
	}
	if err := w.store.PutRegistrySpec(context.Background(), spec); err != nil {
		w.t.Fatal(err)
	}
	_, gen, _ := w.store.GetRegistrySpec(context.Background())
	statetest.Eventually(w.t, "the cache to hold the registry spec", func() bool {
		_, g, err := w.cache.GetRegistrySpec(context.Background())
		return err == nil && g == gen
	})
}

// reconcile runs one Reconcile and returns node a's registry status, once
// the cache holds it.
func (w *registryWorld) reconcile() (api.RegistryStatus, error) {
	w.t.Helper()
	_, err := w.m.Reconcile(context.Background(), "default")
	var own api.RegistryStatus
	statuses, _ := w.store.ListRegistryStatus(context.Background())
	for _, st := range statuses {
		if st.Node == "a" {
			own = st
		}
	}
	statetest.Eventually(w.t, "the cache to hold a's registry status", func() bool {
		cached, _ := w.cache.ListRegistryStatus(context.Background())
		for _, st := range cached {
			if st.Node == "a" {
				return st.UpdatedAt.Equal(own.UpdatedAt)
			}
		}
		return own.Node == ""
	})
	return own, err
}

func ready(st api.RegistryStatus) api.Condition {
	for _, c := range st.Conditions {
		if c.Type == api.ConditionReady {
			return c
		}
	}
	return api.Condition{}
}

// TestManagedReconcile walks the managed registry on node a through its
// transitions, one reconcile after another.
func TestManagedReconcile(t *testing.T) {
	t.Parallel()
	t.Run("serves, stays up without new containers, and comes back when it dies", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{})
		w.want(api.RegistrySpec{})
		st, err := w.reconcile()
		if c := ready(st); err != nil || c.Status != "True" || c.Reason != "Serving" || st.Address != fmt.Sprintf("127.0.0.1:%d", w.port) {
			t.Fatalf("first reconcile: %+v %v; want Ready Serving on port %d", st, err, w.port)
		}
		since := ready(st).LastTransitionTime
		st, _ = w.reconcile()
		if creates, starts := w.engine.counts(); creates != 1 || starts != 1 || !ready(st).LastTransitionTime.Equal(since) {
			t.Errorf("healthy again: %d creates, %d starts, Ready since %v (was %v); want 1, 1, unchanged", creates, starts,
				ready(st).LastTransitionTime, since)
		}
		w.engine.mu.Lock()
		w.engine.kill()
		w.engine.mu.Unlock()
		st, _ = w.reconcile()
		if creates, starts := w.engine.counts(); creates != 1 || starts != 2 || ready(st).Status != "True" {
			t.Errorf("after the container died: %d creates, %d starts, Ready %s; want it started again", creates, starts, ready(st).Status)
		}
	})
	t.Run("a new port replaces the container", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{})
		w.want(api.RegistrySpec{})
		w.reconcile()
		w.port = freePort(t)
		w.want(api.RegistrySpec{Port: w.port})
		st, err := w.reconcile()
		if creates, _ := w.engine.counts(); err != nil || creates != 2 || st.Address != fmt.Sprintf("127.0.0.1:%d", w.port) || st.ObservedGeneration != 2 {
			t.Errorf("after the port changed: %d creates, %+v, %v; want a new container on the new port, generation 2", creates, st, err)
		}
	})
	t.Run("an engine that cannot create it says why", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{createErr: errors.New("no space left on device")})
		w.want(api.RegistrySpec{})
		st, _ := w.reconcile()
		if c := ready(st); c.Status != "False" || c.Reason != "ContainerFailed" || !strings.Contains(c.Message, "no space left") {
			t.Errorf("create failed: Ready %+v; want False ContainerFailed saying why", c)
		}
	})
	t.Run("a container that does not answer is unhealthy", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{deaf: true})
		w.want(api.RegistrySpec{})
		st, _ := w.reconcile()
		if c := ready(st); c.Status != "False" || c.Reason != "Unhealthy" {
			t.Errorf("deaf container: Ready %+v; want False Unhealthy", c)
		}
	})
	t.Run("another live node that serves keeps it; this one stops", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{})
		w.want(api.RegistrySpec{})
		w.reconcile()
		w.node("b", time.Now().Add(time.Hour))
		if err := w.store.PutRegistryStatus(context.Background(), api.RegistryStatus{Node: "b", Address: "127.0.0.1:1",
			UpdatedAt: time.Now().Add(time.Minute), Conditions: []api.Condition{{Type: api.ConditionReady, Status: "True"}}}); err != nil {
			t.Fatal(err)
		}
		w.want(api.RegistrySpec{Node: "b"})
		st, err := w.reconcile()
		if c := ready(st); err != nil || c.Status != "False" || c.Reason != "NotHere" || w.engine.container != nil {
			t.Errorf("pinned to b: %+v %v, container %v; want a's container gone, Ready False NotHere", st, err, w.engine.container != nil)
		}
	})
	t.Run("no eligible node is terminal", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{})
		w.want(api.RegistrySpec{Node: "nosuch"})
		if _, err := w.reconcile(); !reconcile.IsTerminal(err) {
			t.Errorf("no eligible node: %v, want a terminal error", err)
		}
	})
	t.Run("no spec: the container goes", func(t *testing.T) {
		w := newRegistryWorld(t, &fakeEngine{})
		w.want(api.RegistrySpec{})
		w.reconcile()
		if err := w.store.DeleteRegistrySpec(context.Background()); err != nil {
			t.Fatal(err)
		}
		statetest.Eventually(t, "the cache to drop the spec", func() bool {
			_, _, err := w.cache.GetRegistrySpec(context.Background())
			return errors.Is(err, state.ErrNotFound)
		})
		st, err := w.reconcile()
		if c := ready(st); err != nil || c.Status != "False" || w.engine.container != nil {
			t.Errorf("no spec: %+v %v; want the container removed and Ready False", st, err)
		}
	})
}
