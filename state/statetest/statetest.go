// Package statetest starts a real embedded state server for tests.
package statetest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/test/harness/poll"
)

// Server is a running embedded state with uc's schema.
type Server struct {
	Addr    string // http://127.0.0.1:PORT
	DataDir string
	Store   *state.Store
}

// Start serves the embedded state on a loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn is Start with a given data directory, e.g. to restart on it.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := embedded.Open(ctx, embedded.Options{DataDir: dir, Schema: []string{state.Schema}})
	if err != nil {
		cancel()
		t.Fatalf("open embedded state: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("embedded state stopped with: %v", err)
		}
	})
	addr := "http://" + ln.Addr().String()
	c, err := corrosion.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Addr: addr, DataDir: dir, Store: state.NewStore(c)}
}

// Eventually polls cond until it holds and fails the test, naming what it
// waited for, if it does not within poll.Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Eventually(t, what, cond)
}

// StartCache starts a cache over the server's state until the test ends,
// and waits for its first listing.
func (s *Server) StartCache(t testing.TB) *state.Cache {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := state.NewCache(s.Store, slog.New(slog.DiscardHandler))
	c.Start(ctx)
	wait, stop := context.WithTimeout(ctx, 15*time.Second)
	defer stop()
	if err := c.WaitForSync(wait); err != nil {
		t.Fatal(err)
	}
	return c
}
