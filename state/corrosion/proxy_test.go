package corrosion_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
)

// proxy is a reverse proxy in front of the embedded state that notes the
// protocol each request reached it with.
type proxy struct {
	srv    *httptest.Server
	mu     sync.Mutex
	protos map[string]bool
}

func startProxy(t *testing.T, backend string, tlsMode string) *proxy {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	p := &proxy{protos: map[string]bool{}}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PRI" { // net/http hands the h2c preface to handlers
			p.mu.Lock()
			p.protos[r.Proto] = true
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	switch tlsMode {
	case "":
		p.srv.Start() // HTTP/1.1 only: net/http without h2c
	case "h2":
		p.srv.EnableHTTP2 = true
		p.srv.StartTLS()
	case "http/1.1":
		p.srv.StartTLS()
	}
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) sawOnly(proto string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.protos) == 1 && p.protos[proto]
}

// caFile writes the proxy's self-signed certificate as a PEM CA file.
func (p *proxy) caFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClientThroughProxies runs transactions, queries and a subscription
// through proxies that do not speak h2c: Corrosion behind a plain reverse
// proxy, or behind a TLS-terminating one that offers h2 or only http/1.1.
func TestClientThroughProxies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, tls, proto string
	}{
		{"HTTP/1.1-only proxy", "", "HTTP/1.1"},
		{"TLS proxy offering h2", "h2", "HTTP/2.0"},
		{"TLS proxy offering http/1.1", "http/1.1", "HTTP/1.1"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, embedded.Options{})
			p := startProxy(t, s.url(), c.tls)
			var opts []corrosion.Option
			if c.tls != "" {
				opts = append(opts, corrosion.WithCAFile(p.caFile(t)))
			}
			cl := newClient(t, p.srv.URL, opts...)
			ctx := ctxFor(t)
			w := watch(t, cl, corrosion.Stmt("SELECT name FROM items"), false)
			eventually(t, "the subscription's snapshot", func() bool { return w.snapshots() == 1 })
			id := int64(i + 1)
			if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (?, ?)", id, c.name)); err != nil {
				t.Fatalf("Exec through %s: %v", c.name, err)
			}
			_, rows, err := cl.QueryAll(ctx, corrosion.Stmt("SELECT name FROM items WHERE id = ?", id))
			if err != nil || len(rows) != 1 || rows[0][0] != c.name {
				t.Fatalf("QueryAll through %s: got %v, %v", c.name, rows, err)
			}
			// The row must come as a change on the open stream, not by a re-list.
			eventually(t, "the subscription to see the row", func() bool { return slices.Equal(w.values(), []string{c.name}) })
			if n := w.snapshots(); n != 1 {
				t.Errorf("the subscription re-listed: %d snapshots, want 1", n)
			}
			if !p.sawOnly(c.proto) {
				t.Errorf("proxy saw protocols %v, want only %s", p.protos, c.proto)
			}
		})
	}
}

// TestClientRefusesUnknownCA: without the proxy's CA the TLS handshake
// fails, rather than trusting any certificate.
func TestClientRefusesUnknownCA(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	p := startProxy(t, s.url(), "h2")
	cl := newClient(t, p.srv.URL)
	if _, err := cl.Exec(ctxFor(t), corrosion.Stmt("INSERT INTO items (id) VALUES (1)")); err == nil {
		t.Fatal("Exec through a proxy with an unknown CA succeeded")
	}
	if _, err := corrosion.New(p.srv.URL, corrosion.WithCAFile(filepath.Join(t.TempDir(), "missing.pem"))); err == nil {
		t.Error("New accepted a missing CA file")
	}
}
