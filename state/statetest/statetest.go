// Package statetest starts a real embedded state server for tests, and
// for test/bench, which measures one.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/test/harness/poll"
)

// Server is a running embedded state.
type Server struct {
	Addr    string // http://127.0.0.1:PORT, kept across Restart
	DataDir string
	Store   *state.Store

	parent context.Context // Restart serves under it again
	opts   embedded.Options
	cancel context.CancelFunc // nil once stopped
	done   chan error
}

// Start serves the embedded state with uc's schema on a loopback port
// until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, embedded.Options{})
}

// StartIn is Start with a given data directory, e.g. to restart on it.
func StartIn(t testing.TB, dir string) *Server {
	t.Helper()
	return StartWith(t, embedded.Options{DataDir: dir})
}

// StartWith is Start with other options: a schema, a token, a logger. An
// empty DataDir is a new temporary directory.
func StartWith(t testing.TB, opts embedded.Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	s, err := Serve(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Serve is Start for a program without a testing.TB (test/bench): it
// serves until Stop or the end of ctx. opts.DataDir must exist; an empty
// opts.Schema is uc's.
func Serve(ctx context.Context, opts embedded.Options) (*Server, error) {
	if opts.Schema == nil {
		opts.Schema = []string{state.Schema}
	}
	s := &Server{DataDir: opts.DataDir, parent: ctx, opts: opts}
	addr, err := s.serve("127.0.0.1:0", nil)
	if err != nil {
		return nil, err
	}
	s.Addr = "http://" + addr
	c, err := corrosion.New(s.Addr)
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	s.Store = state.NewStore(c)
	return s, nil
}

// serve opens the data directory, runs before (if set) on the opened state
// and serves it on addr (host:port). It returns the address it listens on.
func (s *Server) serve(addr string, before func(*embedded.Server)) (string, error) {
	ctx, cancel := context.WithCancel(s.parent)
	srv, err := embedded.Open(ctx, s.opts)
	if err != nil {
		cancel()
		return "", fmt.Errorf("open embedded state: %w", err)
	}
	if before != nil {
		before(srv)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		return "", errors.Join(fmt.Errorf("listen: %w", err), srv.DB().Close())
	}
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- srv.Serve(ctx, ln) }()
	return ln.Addr().String(), nil
}

// Stop stops serving and waits, for up to 10 s, until the state has closed
// its database. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("embedded state stopped with: %w", err)
		}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("embedded state did not stop within 10 s")
	}
}

// Restart stops the server and serves its data directory again on the same
// address, so that clients find it there. before, if set, runs on the
// reopened state before it serves: a change no subscription sees.
func (s *Server) Restart(before func(*embedded.Server)) error {
	if err := s.Stop(); err != nil {
		return err
	}
	_, err := s.serve(strings.TrimPrefix(s.Addr, "http://"), before)
	return err
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

// DeleteNode removes a node's row, as an operator editing the state by
// hand would: nothing in uc deletes one.
func (s *Server) DeleteNode(ctx context.Context, name string) error {
	_, err := s.Store.Client().Exec(ctx, corrosion.Stmt("DELETE FROM nodes WHERE name = ?", name))
	return err
}
