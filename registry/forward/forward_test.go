package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness"
	"github.com/ucplane/uc/test/harness/poll"
)

// target is a registry address that tests move.
type target struct {
	mu   sync.Mutex
	addr string
}

func (t *target) set(addr string) { t.mu.Lock(); t.addr = addr; t.mu.Unlock() }

func (t *target) get(context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.addr == "" {
		return "", errors.New("no registry")
	}
	return t.addr, nil
}

func server(t *testing.T, name string) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s got %d bytes", name, len(body))
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func start(t *testing.T, f *Forwarder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	return stop
}

// get asks the stable address on a fresh connection each time.
func get(addr, body string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+addr+"/v2/", "text/plain", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestForwardsToWhereTheRegistryIsNow(t *testing.T) {
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var tg target
	start(t, &Forwarder{Listen: addr, Target: tg.get, Log: slog.New(slog.DiscardHandler)})

	poll.Eventually(t, "the stable address to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if got, err := get(addr, "x"); err == nil {
		t.Fatalf("a request went through with no registry to forward to: %q", got)
	}
	tg.set(server(t, "first"))
	big := strings.Repeat("layer", 200_000)
	if got, err := get(addr, big); err != nil || got != fmt.Sprintf("first got %d bytes", len(big)) {
		t.Fatalf("through the stable address: %q, %v", got, err)
	}
	tg.set(server(t, "second")) // the registry moved
	if got, err := get(addr, "abc"); err != nil || got != "second got 3 bytes" {
		t.Fatalf("after the move: %q, %v", got, err)
	}
}

// Two nodes on one host: one serves the address, the other takes over
// when it stops.
func TestTakesOverATakenAddress(t *testing.T) {
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var one, two target
	one.set(server(t, "one"))
	two.set(server(t, "two"))
	log := slog.New(slog.DiscardHandler)
	stopOne := start(t, &Forwarder{Listen: addr, Target: one.get, Log: log})
	poll.Value(t, "the first forwarder", func() (string, error) { return get(addr, "") },
		func(s string) bool { return s == "one got 0 bytes" })
	start(t, &Forwarder{Listen: addr, Target: two.get, RetryBind: 20 * time.Millisecond, Log: log})
	stopOne()
	poll.Value(t, "the second forwarder to take over", func() (string, error) { return get(addr, "") },
		func(s string) bool { return s == "two got 0 bytes" })
}

func TestRefusesAnAddressItCannotServe(t *testing.T) {
	f := &Forwarder{Listen: "256.0.0.1:1", Target: (&target{}).get, Log: slog.New(slog.DiscardHandler)}
	if err := f.Run(context.Background()); err == nil {
		t.Fatal("an impossible address was accepted")
	}
}
