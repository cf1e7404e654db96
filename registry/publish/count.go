package publish

import (
	"io"
	"net/http"
	"sync/atomic"
)

// Counter is a transport that counts the request body bytes it sends:
// what a copy cost the network, for reports and benchmarks.
type Counter struct {
	Base http.RoundTripper
	sent atomic.Int64
}

// Sent is the request body bytes sent so far.
func (c *Counter) Sent() int64 { return c.sent.Load() }

func (c *Counter) RoundTrip(req *http.Request) (*http.Response, error) {
	base := c.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if req.Body != nil && req.Body != http.NoBody {
		req = req.Clone(req.Context())
		req.Body = &countingBody{ReadCloser: req.Body, n: &c.sent}
	}
	return base.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
