package controllers

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/statetest"
)

// TestWaitForSchemaThroughAGateway: a proxy in front of the state API
// answers 502 until the API behind it is up; ucd waits instead of exiting.
// Before, any answer but a refused connection was permanent (found by
// make chaos: ucd started before the state server behind its proxy).
func TestWaitForSchemaThroughAGateway(t *testing.T) {
	srv := statetest.Start(t)
	target, _ := url.Parse(srv.Addr)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{Protocols: h2c}
	var answered atomic.Int32
	gw := &http.Server{Protocols: h2c, ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answered.Add(1) <= 3 {
			http.Error(w, "upstream connect error", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(ln) }()
	t.Cleanup(func() { gw.Close() })
	c, err := corrosion.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := waitForSchema(ctx, state.NewStore(c), 30*time.Second, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("waitForSchema through a gateway answering 502 three times: %v", err)
	}
	if n := answered.Load(); n < 4 {
		t.Errorf("%d requests, want the 3 answered 502 and then one that passed", n)
	}
}
