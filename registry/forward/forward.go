// Package forward serves the internal registry's stable address: a
// loopback port, the same on every node, that ucd forwards to wherever the
// registry runs now. Engines and BuildKit only ever see that address, so
// image references in state never change when the registry moves, and
// Docker trusts it as a plain-HTTP registry without flags (127.0.0.0/8).
//
// The forwarder copies bytes, not requests: registry auth and TLS pass
// through untouched.
package forward

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Forwarder listens on Listen and connects every client to Target.
type Forwarder struct {
	// Listen is the stable address, e.g. 127.0.0.1:5454.
	Listen string
	// Target is where the registry is served now, asked per connection.
	Target func(ctx context.Context) (string, error)
	// RetryBind is how soon a taken address is first tried again; the
	// wait doubles up to maxRetryBind, so that nodes sharing a host cost
	// next to nothing while they wait.
	RetryBind time.Duration
	Log       *slog.Logger
}

// dialTimeout bounds connecting to the registry: a client waits no longer
// than that on a registry that is gone.
const dialTimeout = 5 * time.Second

// Run serves until ctx ends. When the address is taken, it waits for it
// to come free and serves it then: several nodes of one cluster may share
// a host (tests, or a laptop), and then one of them forwards for all,
// the next taking over when it stops.
func (f *Forwarder) Run(ctx context.Context) error {
	waiting := false
	wait := f.retry()
	for {
		ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.Listen)
		switch {
		case err == nil:
			f.Log.Info("Serving the registry's stable address.", "addr", f.Listen)
			return f.serve(ctx, ln)
		case !errors.Is(err, syscall.EADDRINUSE):
			return err
		case !waiting:
			waiting = true
			f.Log.Info("The registry's stable address is served by another process on this host; taking it over when it is free.", "addr", f.Listen)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, max(maxRetryBind, f.retry()))
	}
}

// maxRetryBind bounds the wait between two tries of a taken address: how
// long another node on the host may take to serve it after its holder
// stops.
const maxRetryBind = 2 * time.Second

func (f *Forwarder) retry() time.Duration {
	if f.RetryBind > 0 {
		return f.RetryBind
	}
	return 500 * time.Millisecond
}

func (f *Forwarder) serve(ctx context.Context, ln net.Listener) error {
	var conns sync.WaitGroup
	defer conns.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			f.forward(ctx, c)
		}()
	}
}

// forward joins one client to the registry. A registry that cannot be
// reached closes the client's connection: its pull or push fails and is
// retried, as if the registry itself were down.
func (f *Forwarder) forward(ctx context.Context, client net.Conn) {
	defer client.Close()
	target, err := f.Target(ctx)
	if err != nil {
		f.Log.Debug("No registry to forward to.", "err", err)
		return
	}
	dialCtx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	upstream, err := (&net.Dialer{}).DialContext(dialCtx, "tcp", target)
	if err != nil {
		f.Log.Debug("Cannot reach the registry.", "target", target, "err", err)
		return
	}
	defer upstream.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); upstream.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		pipe(upstream, client)
		close(done)
	}()
	pipe(client, upstream)
	<-done
}

// pipe copies src to dst and then half-closes dst, so that each side sees
// the other's end of stream (HTTP/1.1 clients rely on it).
func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = dst.Close()
}
