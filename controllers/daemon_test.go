package controllers_test

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/controllers"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/state/statetest"
	"github.com/ucplane/uc/test/harness"
	"github.com/ucplane/uc/test/harness/poll"
)

const waitFor = 10 * time.Second

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func storeAt(t *testing.T, url string) *state.Store {
	t.Helper()
	c, err := corrosion.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return state.NewStore(c)
}

// running is a controllers.Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg controllers.Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RegistryAddress == "" { // not the default: other tests' clusters may run beside
		cfg.RegistryAddress = freeAddr(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- controllers.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitFor):
			t.Error("controllers.Run did not return after cancel")
		}
	})
	return r
}

// stop cancels Run and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		t.Fatal("controllers.Run did not return after cancel")
	}
	return nil
}

// waitNode polls until the node's row satisfies ok.
func waitNode(t *testing.T, st *state.Store, name string, r *running, ok func(api.Node) bool) api.Node {
	t.Helper()
	return poll.Value(t, "node "+name, func() (api.Node, error) {
		select {
		case err := <-r.done:
			t.Fatalf("controllers.Run returned early: %v", err)
		default:
		}
		return st.GetNode(t.Context(), name)
	}, ok)
}

func TestRunEmbedded(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // Run creates it
	addr := freeAddr(t)
	labels := map[string]string{"zone": "eu"}
	r := start(t, controllers.Config{Node: "node1", DataDir: dir, StateListen: addr, Labels: labels,
		Version: "v9", Heartbeat: 50 * time.Millisecond})
	st := storeAt(t, "http://"+addr)
	n := waitNode(t, st, "node1", r, func(n api.Node) bool { return n.State == api.NodeReady })
	if !maps.Equal(n.Labels, labels) || n.Version != "v9" {
		t.Errorf("node = %+v, want labels %v and version v9", n, labels)
	}
	waitNode(t, st, "node1", r, func(m api.Node) bool { return m.HeartbeatAt.After(n.HeartbeatAt) })

	t.Run("second Run on the same data dir", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		defer cancel()
		err := controllers.Run(ctx, controllers.Config{Node: "node2", DataDir: dir, StateListen: freeAddr(t),
			Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("second Run = %v, want an error saying %s is in use", err, dir)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	})

	t.Run("listen address taken", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), waitFor)
		defer cancel()
		err := controllers.Run(ctx, controllers.Config{Node: "node2", DataDir: t.TempDir(), StateListen: addr,
			Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("Run on a taken address = %v, want an error naming %s", err, addr)
		}
	})

	if err := r.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	// The embedded state is down, and its data dir is free again.
	if _, err := st.ListNodes(t.Context()); err == nil {
		t.Error("the embedded state still answers after Run returned")
	}
	srv := statetest.StartIn(t, dir)
	got, err := srv.Store.GetNode(t.Context(), "node1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.NodeGone {
		t.Errorf("node state after a clean stop = %q, want gone", got.State)
	}
}

func TestRunWithCorrosionAPI(t *testing.T) {
	t.Parallel()
	srv := statetest.Start(t)
	// Two nodes share one state; neither serves its own.
	dir := t.TempDir()
	r1 := start(t, controllers.Config{Node: "node1", DataDir: filepath.Join(dir, "n1"), CorrosionAPI: srv.Addr, Heartbeat: 50 * time.Millisecond})
	r2 := start(t, controllers.Config{Node: "node2", DataDir: filepath.Join(dir, "n2"), CorrosionAPI: srv.Addr,
		Labels: map[string]string{"gpu": "yes"}, Heartbeat: 50 * time.Millisecond})
	ready := func(n api.Node) bool { return n.State == api.NodeReady }
	waitNode(t, srv.Store, "node1", r1, ready)
	if n := waitNode(t, srv.Store, "node2", r2, ready); n.Labels["gpu"] != "yes" {
		t.Errorf("node2 labels = %v", n.Labels)
	}

	if err := r2.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if n, err := srv.Store.GetNode(t.Context(), "node2"); err != nil || n.State != api.NodeGone {
		t.Errorf("node2 after a clean stop = %+v, %v; want gone", n, err)
	}
	if n, err := srv.Store.GetNode(t.Context(), "node1"); err != nil || n.State != api.NodeReady {
		t.Errorf("node1 = %+v, %v; want it still ready", n, err)
	}
	if err := r1.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if n, err := srv.Store.GetNode(t.Context(), "node1"); err != nil || n.State != api.NodeGone {
		t.Errorf("node1 after a clean stop = %+v, %v; want gone", n, err)
	}
}

func TestRunFailsToStart(t *testing.T) {
	t.Parallel()
	// A state without uc's nodes table: Corrosion without the schema file.
	incomplete := func(t *testing.T) string {
		return statetest.StartWith(t, embedded.Options{Logger: slog.New(slog.DiscardHandler),
			Schema: []string{"CREATE TABLE IF NOT EXISTS build_specs (name TEXT NOT NULL PRIMARY KEY);"}}).Addr
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     func(t *testing.T) controllers.Config
		want    []string
		maxTime time.Duration
	}{
		{"unreachable state API", func(t *testing.T) controllers.Config {
			return controllers.Config{CorrosionAPI: "http://127.0.0.1:1", StartTimeout: 300 * time.Millisecond}
		}, []string{"http://127.0.0.1:1", "unreachable"}, 5 * time.Second},
		{"incomplete schema", func(t *testing.T) controllers.Config {
			// Fails at once, without waiting out the (long) start timeout.
			return controllers.Config{CorrosionAPI: incomplete(t), StartTimeout: time.Minute}
		}, []string{"missing", "table nodes", "build_specs.uid"}, 5 * time.Second},
		{"bad corrosion API URL", func(t *testing.T) controllers.Config {
			return controllers.Config{CorrosionAPI: "127.0.0.1:8080"}
		}, []string{"127.0.0.1:8080"}, 5 * time.Second},
		{"data dir is a file", func(t *testing.T) controllers.Config {
			return controllers.Config{DataDir: notADir, StateListen: freeAddr(t)}
		}, []string{"data dir"}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg(t)
			cfg.Node = "node1"
			if cfg.DataDir == "" {
				cfg.DataDir = t.TempDir()
			}
			cfg.Logger = slog.New(slog.DiscardHandler)
			ctx, cancel := context.WithTimeout(t.Context(), waitFor)
			defer cancel()
			begin := time.Now()
			err := controllers.Run(ctx, cfg)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if took := time.Since(begin); took > tc.maxTime {
				t.Errorf("Run took %v to fail, want under %v", took, tc.maxTime)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A daemon stopped while it still waits for its state API stops cleanly.
func TestRunStoppedWhileWaitingForState(t *testing.T) {
	t.Parallel()
	r := start(t, controllers.Config{Node: "node1", DataDir: t.TempDir(), CorrosionAPI: "http://127.0.0.1:1", StartTimeout: time.Minute})
	time.Sleep(200 * time.Millisecond) // likely mid-retry; any point before registering must stop cleanly
	begin := time.Now()
	if err := r.stop(t); err != nil {
		t.Errorf("Run stopped during start-up = %v, want nil", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Run took %v to stop", took)
	}
}

func TestOpenEmbeddedExtraSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, sql string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.sql", "CREATE TABLE deploys (id TEXT NOT NULL PRIMARY KEY, who TEXT NOT NULL DEFAULT '');")
	bad := write("bad.sql", "CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT);")
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name    string
		paths   []string
		wantErr []string // substrings; none means success
	}{
		{"file", []string{good}, nil},
		{"refused names file and rule", []string{bad}, []string{"bad.sql", "table audit", "NOT NULL"}},
		{"missing path", []string{filepath.Join(dir, "nope.sql")}, []string{"nope.sql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := controllers.StateConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", SchemaPaths: tt.paths}
			srv, ln, err := controllers.OpenEmbedded(context.Background(), sc, log)
			if err == nil {
				ln.Close()
				srv.DB().Close()
			}
			switch {
			case len(tt.wantErr) == 0 && err != nil:
				t.Fatalf("got %v, want success", err)
			case len(tt.wantErr) > 0 && err == nil:
				t.Fatalf("got success, want an error naming %v", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}
