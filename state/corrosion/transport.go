package corrosion

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

// Pings or TCP keepalives on a connection that has been quiet for idleProbe
// notice a peer that vanished without closing it, which would otherwise
// leave a subscription stream waiting forever.
const (
	idleProbe    = 30 * time.Second
	probeTimeout = 15 * time.Second
)

// dialer is shared by every transport. Keepalives stand in for HTTP/2
// pings on HTTP/1.1 connections: two unanswered probes, 15 s apart, after
// 30 s of silence end the connection.
var dialer = &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
	Enable: true, Idle: idleProbe, Interval: probeTimeout, Count: 2,
}}

// h2cTransport speaks HTTP/2 over plain TCP (prior knowledge), as
// corro-client does.
func h2cTransport() *http2.Transport {
	return &http2.Transport{
		AllowHTTP:       true,
		ReadIdleTimeout: idleProbe,
		PingTimeout:     probeTimeout,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}
}

// stdTransport speaks HTTP/1.1 on http:// URLs and lets TLS's ALPN choose
// between h2 and http/1.1 on https:// URLs.
func stdTransport(roots *x509.CertPool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialer.DialContext
	tr.ForceAttemptHTTP2 = true
	// Over HTTP/1.1 every open subscription holds a connection of its own;
	// keep enough idle ones that queries between them do not redial.
	tr.MaxIdleConnsPerHost = 32
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: idleProbe, PingTimeout: probeTimeout}
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return tr
}

// ErrCAFile is a CA file (WithCAFile) that cannot be read or holds no
// certificate.
var ErrCAFile = errors.New("CA file")

// rootsWith is the system's trusted roots plus the PEM certificates in
// caFile, for a TLS-terminating proxy signed by a private CA.
func rootsWith(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w %s holds no PEM certificate", ErrCAFile, caFile)
	}
	return pool, nil
}

// Protocol modes of a fallbackTransport.
const (
	modeUnknown int32 = iota
	modeH2C
	modeHTTP1
)

// fallbackTransport speaks h2c to an http:// address, and HTTP/1.1 when
// the first contact shows that the peer does not speak h2c: a Corrosion
// agent accepts both, but a plain reverse proxy in front of it speaks only
// HTTP/1.1 and answers the h2c preface with an HTTP/1.1 error.
type fallbackTransport struct {
	h2c   *http2.Transport
	http1 *http.Transport
	mode  atomic.Int32
}

func newFallbackTransport() *fallbackTransport {
	return &fallbackTransport{h2c: h2cTransport(), http1: stdTransport(nil)}
}

func (t *fallbackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch t.mode.Load() {
	case modeH2C:
		return t.h2c.RoundTrip(req)
	case modeHTTP1:
		return t.http1.RoundTrip(req)
	}
	resp, err := t.h2c.RoundTrip(req)
	if err == nil {
		t.mode.CompareAndSwap(modeUnknown, modeH2C)
		return resp, nil
	}
	if !refusesH2C(err) || req.Context().Err() != nil {
		return nil, err
	}
	// The peer never read the request as HTTP/2, so sending it again as
	// HTTP/1.1 cannot apply it twice.
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	resp, err = t.http1.RoundTrip(retry)
	if err == nil {
		t.mode.CompareAndSwap(modeUnknown, modeHTTP1)
	}
	return resp, err
}

// refusesH2C tells an answer to the h2c preface that is not HTTP/2: an
// HTTP/1.1 reply (read as a frame far too large) or a hang-up.
func refusesH2C(err error) bool {
	return errors.Is(err, http2.ErrFrameTooLarge) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (t *fallbackTransport) CloseIdleConnections() {
	t.h2c.CloseIdleConnections()
	t.http1.CloseIdleConnections()
}
