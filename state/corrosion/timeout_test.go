package corrosion_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
)

// frozen is a state API that accepts connections (the kernel does, from
// its backlog) but never answers, like a server stopped with SIGSTOP.
func frozen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return "http://" + ln.Addr().String()
}

func TestRequestTimeoutFrozenServer(t *testing.T) {
	t.Parallel()
	addr := frozen(t)
	const limit = 100 * time.Millisecond
	calls := map[string]func(context.Context, *corrosion.Client) error{
		"Exec": func(ctx context.Context, c *corrosion.Client) error {
			_, err := c.Exec(ctx, corrosion.Stmt("INSERT INTO items (id) VALUES (1)"))
			return err
		},
		"QueryAll": func(ctx context.Context, c *corrosion.Client) error {
			_, _, err := c.QueryAll(ctx, corrosion.Stmt("SELECT 1"))
			return err
		},
		"Subscribe": func(ctx context.Context, c *corrosion.Client) error {
			s, err := c.Subscribe(ctx, corrosion.Stmt("SELECT id FROM items"), corrosion.SubscribeOptions{})
			if err == nil {
				s.Close()
			}
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, addr, corrosion.WithRequestTimeout(limit))
			// The test's own deadline only stops a hang; the request
			// timeout must end the call first.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := call(ctx, c)
			var to *corrosion.Timeout
			if !errors.As(err, &to) {
				t.Fatalf("%s on a frozen server: got %v, want a *corrosion.Timeout", name, err)
			}
			want := "state API " + addr + " did not answer within 100ms"
			if err.Error() != want {
				t.Errorf("message: got %q, want %q", err.Error(), want)
			}
		})
	}
}

// TestRequestTimeoutBoundsOnlyStreamStart: a subscription outlives the
// request timeout; only its start is bounded.
func TestRequestTimeoutBoundsOnlyStreamStart(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	// Generous, so that a loaded machine starts the stream in time.
	const limit = time.Second
	c := newClient(t, s.url(), corrosion.WithRequestTimeout(limit))
	sub := subscribeToEOQ(t, c, corrosion.Stmt("SELECT name FROM items"))
	time.Sleep(limit + limit/2) // past the limit: the stream must still be open
	if _, err := newClient(t, s.url()).Exec(ctxFor(t), corrosion.Stmt("INSERT INTO items (id, name) VALUES (1, 'late')")); err != nil {
		t.Fatal(err)
	}
	ev, err := sub.Next()
	if err != nil || ev.Kind != corrosion.EventChange || ev.Values[0] != "late" {
		t.Fatalf("after the limit: got %+v, %v; want the change", ev, err)
	}
}
