package main

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The ucd nodes reach the state API through two proxies the chaos program
// controls: a TCP proxy (for a silent cut and an unreachable API) in front
// of an HTTP proxy (for a lost subscription), in front of the state server.

// tcpProxy forwards connections from its listener to target.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*proxyConn]bool
	refuse bool // reset new connections
}

// proxyConn is one forwarded connection; cut stops its bytes for good,
// without closing it, as a partition that drops its packets does.
type proxyConn struct {
	client, server net.Conn
	cut            chan struct{}
	once           sync.Once
}

func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[*proxyConn]bool{}}
	go p.serve()
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			reset(c)
			continue
		}
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(client)
		return
	}
	pc := &proxyConn{client: client, server: server, cut: make(chan struct{})}
	p.mu.Lock()
	p.conns[pc] = true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { pc.pipe(server, client); done <- struct{}{} }()
	go func() { pc.pipe(client, server); done <- struct{}{} }()
	<-done
	select {
	case <-pc.cut: // a cut connection stays open and silent until the proxy stops
		<-done
	default:
	}
	client.Close()
	server.Close()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// pipe copies until either side closes; after a cut it reads and drops.
func (pc *proxyConn) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-pc.cut:
			if err != nil {
				return
			}
			continue
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutAll silences every open connection for good; new ones work.
func (p *tcpProxy) cutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pc := range p.conns {
		pc.once.Do(func() { close(pc.cut) })
	}
	return len(p.conns)
}

// unreachable resets every connection and refuses new ones until healed.
func (p *tcpProxy) unreachable(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
	if !on {
		return
	}
	for pc := range p.conns {
		reset(pc.client)
		pc.server.Close()
	}
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	for pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

// reset closes c with an RST, as a host that refuses it does.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// httpProxy passes the Corrosion API through (h2c on both sides), and
// can forget subscriptions: it ends every open subscription stream and
// answers a resume with the 404 Corrosion gives for an unknown id.
type httpProxy struct {
	srv *http.Server
	ln  net.Listener

	mu          sync.Mutex
	streams     map[*context.CancelFunc]bool
	forgetUntil time.Time
	forgotten   int
}

func newHTTPProxy(target string) (*httpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse("http://" + target)
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	protos.SetHTTP1(true)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.Transport = &http.Transport{Protocols: h2cOnly(), DialContext: (&net.Dialer{}).DialContext}
	rp.ErrorLog = log.New(io.Discard, "", 0) // a fault's errors are expected
	p := &httpProxy{ln: ln, streams: map[*context.CancelFunc]bool{}}
	p.srv = &http.Server{Handler: p.handler(rp), Protocols: protos, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func h2cOnly() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

func (p *httpProxy) addr() string { return p.ln.Addr().String() }

func (p *httpProxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/subscriptions") {
			next.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		forget := time.Now().Before(p.forgetUntil)
		p.mu.Unlock()
		if id, resume := strings.CutPrefix(r.URL.Path, "/v1/subscriptions/"); resume && forget {
			p.mu.Lock()
			p.forgotten++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":"could not find subscription with id `+id+`"}`)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		p.mu.Lock()
		p.streams[&cancel] = true
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.streams, &cancel)
			p.mu.Unlock()
			cancel()
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// forgetSubscriptions ends every open subscription stream, and answers
// resumes with 404 for the next d.
func (p *httpProxy) forgetSubscriptions(d time.Duration) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetUntil = time.Now().Add(d)
	n := len(p.streams)
	for cancel := range p.streams {
		(*cancel)()
	}
	return n
}

func (p *httpProxy) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}
