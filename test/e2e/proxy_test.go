package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStateBehindProxies puts the state API behind a plain HTTP/1.1
// reverse proxy, and behind a TLS-terminating one with a private CA: a node
// runs through it (heartbeats, subscriptions) and uc reads through it. Both
// failed with `http2: frame too large` (or an unknown certificate) before.
func TestStateBehindProxies(t *testing.T) {
	for _, tlsProxy := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsProxy), func(t *testing.T) {
			c := startCluster(t, true)
			target, err := url.Parse(c.apiURL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
			var caArgs []string
			if tlsProxy {
				proxy.EnableHTTP2 = true
				proxy.StartTLS()
				ca := filepath.Join(t.TempDir(), "ca.pem")
				if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
					t.Fatal(err)
				}
				caArgs = []string{"--corrosion-ca", ca}
			} else {
				proxy.Start() // net/http without h2c: HTTP/1.1 only
			}
			// The node's streams hold the proxy's connections: stop it first.
			t.Cleanup(func() { c.stop(); proxy.Close() })
			c.apiURL = proxy.URL
			c.nodeArgs = func(string) []string { return caArgs }
			if err := c.startNode("node1", "via=proxy"); err != nil {
				t.Fatal(err)
			}
			if err := poll(20*time.Second, func() error {
				r := c.uc(append([]string{"get", "nodes", "node1", "-o", "json"}, caArgs...)...)
				if r.code != 0 {
					return fmt.Errorf("uc get nodes through the proxy: %v", r)
				}
				var nodes []map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &nodes); err != nil {
					return err
				}
				if countState(nodes, "ready") != 1 {
					return fmt.Errorf("node1 not ready through the proxy: %v", nodes)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
