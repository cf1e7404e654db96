package corrosion_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/embedded"
	"github.com/ucplane/uc/state/statetest"
)

const schema = `
CREATE TABLE items (
    id   INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    val
);`

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// server is an embedded state server on loopback with the test schema.
type server struct {
	t    *testing.T
	opts embedded.Options
	cur  atomic.Pointer[statetest.Server]
}

func startServer(t *testing.T, opts embedded.Options) *server {
	t.Helper()
	opts.Schema, opts.Logger = []string{schema}, quiet()
	s := &server{t: t, opts: opts}
	s.cur.Store(statetest.StartWith(t, opts))
	return s
}

// restart serves the same data directory again on a new port, where dial
// follows it.
func (s *server) restart() {
	s.t.Helper()
	old := s.cur.Load()
	if err := old.Stop(); err != nil {
		s.t.Error(err)
	}
	opts := s.opts
	opts.DataDir = old.DataDir
	s.cur.Store(statetest.StartWith(s.t, opts))
}

func (s *server) url() string { return s.cur.Load().Addr }

// dial connects to wherever the server listens now, so that one client
// follows it across restarts.
func (s *server) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, strings.TrimPrefix(s.url(), "http://"))
}

// protoRecorder notes the protocol of every response.
type protoRecorder struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	protos map[string]bool
	reqs   []string
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	p.mu.Unlock()
	resp, err := p.rt.RoundTrip(r)
	if err == nil {
		p.mu.Lock()
		if p.protos == nil {
			p.protos = map[string]bool{}
		}
		p.protos[resp.Proto] = true
		p.mu.Unlock()
	}
	return resp, err
}

func (p *protoRecorder) CloseIdleConnections() {
	if c, ok := p.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (p *protoRecorder) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reqs...)
}

// xnetH2C is the client's default transport, dialing through dial.
func xnetH2C(dial func(ctx context.Context, network, addr string) (net.Conn, error)) http.RoundTripper {
	return &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return dial(ctx, network, addr)
	}}
}

// nativeH2C is net/http's own h2c transport with a small receive window,
// so that a reader that stops reading soon stalls the server.
func nativeH2C(window int) http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr.Protocols = &p
	tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: window, MaxReceiveBufferPerConnection: 64 << 10}
	return tr
}

// newClient is corrosion.New for a test: the client lets go of its
// connections before the server stops, so that the stop is quick.
func newClient(t *testing.T, base string, opts ...corrosion.Option) *corrosion.Client {
	t.Helper()
	cl, err := corrosion.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// subscribeToEOQ subscribes and reads the snapshot, up to its eoq; the
// stream closes when the test ends.
func subscribeToEOQ(t *testing.T, cl *corrosion.Client, stmt corrosion.Statement) *corrosion.Stream {
	t.Helper()
	sub, err := cl.Subscribe(ctxFor(t), stmt, corrosion.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	for ev, err := sub.Next(); ev.Kind != corrosion.EventEOQ; ev, err = sub.Next() {
		if err != nil {
			t.Fatal(err)
		}
	}
	return sub
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientProtocols(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	h1 := &protoRecorder{rt: http.DefaultTransport.(*http.Transport).Clone()}
	h2 := &protoRecorder{rt: nativeH2C(1 << 20)}
	xh2 := &protoRecorder{rt: xnetH2C(s.dial)}
	cases := []struct {
		name  string
		opts  []corrosion.Option
		rec   *protoRecorder
		proto string
	}{
		{"default h2c", nil, nil, ""},
		{"WithHTTP1", []corrosion.Option{corrosion.WithHTTP1()}, nil, ""},
		{"recorded HTTP/1.1", []corrosion.Option{corrosion.WithHTTPClient(&http.Client{Transport: h1})}, h1, "HTTP/1.1"},
		{"recorded native h2c", []corrosion.Option{corrosion.WithHTTPClient(&http.Client{Transport: h2})}, h2, "HTTP/2.0"},
		{"recorded x/net h2c", []corrosion.Option{corrosion.WithHTTPClient(&http.Client{Transport: xh2})}, xh2, "HTTP/2.0"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := newClient(t, s.url(), c.opts...)
			ctx := ctxFor(t)
			id := int64(i + 1)
			if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (?, ?)", id, c.name)); err != nil {
				t.Fatal(err)
			}
			_, rows, err := cl.QueryAll(ctx, corrosion.Stmt("SELECT name FROM items WHERE id = ?", id))
			if err != nil || len(rows) != 1 || rows[0][0] != c.name {
				t.Fatalf("QueryAll: %v %v", rows, err)
			}
			sub := subscribeToEOQ(t, cl, corrosion.Stmt("SELECT name FROM items WHERE id = ?", id+100))
			if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (?, 'sub')", id+100)); err != nil {
				t.Fatal(err)
			}
			if ev, err := sub.Next(); err != nil || ev.Change != corrosion.ChangeInsert || ev.ChangeID != 1 {
				t.Errorf("change %+v %v", ev, err)
			}
			if c.rec != nil && (len(c.rec.protos) != 1 || !c.rec.protos[c.proto]) {
				t.Errorf("protocols %v, want only %s", c.rec.protos, c.proto)
			}
		})
	}
}

func TestClientValuesRoundTrip(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	cl := newClient(t, s.url())
	ctx := ctxFor(t)
	cases := []struct {
		in   any
		want any
		typ  string
	}{
		{nil, nil, "null"},
		{true, int64(1), "integer"},
		{int64(math.MaxInt64), int64(math.MaxInt64), "integer"},
		{int64(math.MinInt64), int64(math.MinInt64), "integer"},
		{uint64(math.MaxUint64), float64(math.MaxUint64), "real"},
		{1.0, 1.0, "real"},
		{0.1, 0.1, "real"},
		{"text", "text", "text"},
		{[]byte{0, 1, 255}, []byte{0, 1, 255}, "blob"},
		{[]byte{}, []byte{}, "blob"},
		{map[string]int{"a": 1}, `{"a":1}`, "text"},
	}
	for i, c := range cases {
		if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, val) VALUES (?, ?)", i, c.in)); err != nil {
			t.Fatalf("%v: %v", c.in, err)
		}
		_, rows, err := cl.QueryAll(ctx, corrosion.Stmt("SELECT val, typeof(val) FROM items WHERE id = ?", i))
		if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0][0], c.want) || rows[0][1] != c.typ {
			t.Errorf("%#v: read back %#v, %v; want %#v (%s)", c.in, rows, err, c.want, c.typ)
		}
	}
}

func TestClientToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{Token: "s3cret"})
	ctx := ctxFor(t)
	good := newClient(t, s.url(), corrosion.WithToken("s3cret"))
	if _, err := good.Exec(ctx, corrosion.Stmt("INSERT INTO items (id) VALUES (1)")); err != nil {
		t.Errorf("with token: %v", err)
	}
	for _, opts := range [][]corrosion.Option{nil, {corrosion.WithToken("wrong")}} {
		bad := newClient(t, s.url(), opts...)
		_, err := bad.Exec(ctx, corrosion.Stmt("INSERT INTO items (id) VALUES (2)"))
		var api *corrosion.APIError
		if !errors.As(err, &api) || api.Status != 401 {
			t.Errorf("token %v: %v", opts, err)
		}
		err = bad.Watch(ctx, corrosion.Stmt("SELECT id FROM items"), corrosion.WatchOptions{Logger: quiet()}, func(corrosion.WatchEvent) error { return nil })
		if !errors.As(err, &api) || api.Status != 401 {
			t.Errorf("Watch without the token: %v", err)
		}
	}
}

func TestClientErrorsFromServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	cl := newClient(t, s.url())
	ctx := ctxFor(t)
	var api *corrosion.APIError
	if _, _, err := cl.QueryAll(ctx, corrosion.Stmt("DELETE FROM items")); !errors.As(err, &api) || api.Status != 400 || api.Message != "statement is not readonly" {
		t.Errorf("write through Query: %v", err)
	}
	if _, err := cl.Exec(ctx); !errors.As(err, &api) || api.Status != 400 || api.Message != "at least 1 statement is required" {
		t.Errorf("empty Exec: %v", err)
	}
	if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO nope VALUES (1)")); !errors.As(err, &api) || api.Status != 500 || !strings.Contains(api.Message, "no such table") {
		t.Errorf("bad Exec: %v", err)
	}
	_, _, err := cl.QueryAll(ctx, corrosion.Stmt("SELECT 1 UNION ALL SELECT abs(-9223372036854775807 - 1)"))
	var se *corrosion.StreamError
	if !errors.As(err, &se) || !strings.Contains(se.Message, "overflow") {
		t.Errorf("error after the header: %v", err)
	}
	if _, err := cl.Resubscribe(ctx, "00000000-0000-4000-8000-000000000000", corrosion.SubscribeOptions{}); !errors.Is(err, corrosion.ErrSubscriptionNotFound) {
		t.Errorf("unknown subscription: %v", err)
	}
}

// watcher runs Watch in the background and records what it delivers.
type watcher struct {
	mu       sync.Mutex
	events   []corrosion.WatchEvent
	state    map[int64]string // rowid → name, rebuilt at each snapshot
	ids      []uint64         // change ids, in delivery order
	snaps    int
	hold     chan struct{} // when set, the handler blocks on it once
	held     chan struct{} // closed when the handler blocks
	done     chan error
	cancel   context.CancelFunc
	holdOnce sync.Once
}

func watch(t *testing.T, cl *corrosion.Client, stmt corrosion.Statement, hold bool) *watcher {
	w := &watcher{state: map[int64]string{}, done: make(chan error, 1), held: make(chan struct{})}
	if hold {
		w.hold = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		w.done <- cl.Watch(ctx, stmt, corrosion.WatchOptions{Logger: quiet(), MaxBackoff: 200 * time.Millisecond}, w.handle)
	}()
	t.Cleanup(func() {
		w.release()
		cancel()
		if err := <-w.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v", err)
		}
	})
	return w
}

func (w *watcher) handle(ev corrosion.WatchEvent) error {
	if !ev.Snapshot && w.hold != nil {
		w.holdOnce.Do(func() { close(w.held); <-w.hold })
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev)
	if ev.Snapshot {
		w.snaps++
		w.state = map[int64]string{}
		for _, r := range ev.Rows {
			w.state[r.RowID] = fmt.Sprint(r.Values...)
		}
		return nil
	}
	w.ids = append(w.ids, ev.Change.ChangeID)
	switch ev.Change.Change {
	case corrosion.ChangeDelete:
		delete(w.state, ev.Change.RowID)
	default:
		w.state[ev.Change.RowID] = fmt.Sprint(ev.Change.Values...)
	}
	return nil
}

func (w *watcher) release() {
	if w.hold != nil {
		select {
		case <-w.hold:
		default:
			close(w.hold)
		}
	}
}

// values is the set of rows the watcher believes in.
func (w *watcher) values() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, v := range w.state {
		out = append(out, v)
	}
	sortStrings(out)
	return out
}

func (w *watcher) snapshots() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snaps
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// eventually polls cond for up to 15 s.
var eventually = statetest.Eventually

// rowsOf is what a watcher should hold for the items table.
func rowsOf(t *testing.T, cl *corrosion.Client) []string {
	_, rows, err := cl.QueryAll(ctxFor(t), corrosion.Stmt("SELECT name FROM items"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprint(r...))
	}
	sortStrings(out)
	return out
}

func sameRows(t *testing.T, w *watcher, cl *corrosion.Client) func() bool {
	return func() bool { return reflect.DeepEqual(w.values(), rowsOf(t, cl)) }
}

func TestWatchEmbedded(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	cl := newClient(t, s.url())
	ctx := ctxFor(t)
	cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')"))
	w := watch(t, cl, corrosion.Stmt("SELECT name FROM items"), false)
	eventually(t, "the initial snapshot", func() bool { return w.snapshots() == 1 })
	if got := w.values(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("snapshot %v", got)
	}
	for _, q := range []string{
		"INSERT INTO items (id, name) VALUES (3, 'c')",
		"UPDATE items SET name = 'B' WHERE id = 2",
		"DELETE FROM items WHERE id = 1",
	} {
		if _, err := cl.Exec(ctx, corrosion.Stmt(q)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the watcher to catch up", sameRows(t, w, cl))
	w.mu.Lock()
	defer w.mu.Unlock()
	if !reflect.DeepEqual(w.ids, []uint64{1, 2, 3}) {
		t.Errorf("change ids %v", w.ids)
	}
}

// TestWatchSlowListener lets the server drop a watcher that stopped
// reading; the watcher resumes from its last change id and misses nothing.
func TestWatchSlowListener(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{Subs: embedded.SubOptions{ListenBuffer: 1}})
	rec := &protoRecorder{rt: nativeH2C(16 << 10)}
	cl := newClient(t, s.url(), corrosion.WithHTTPClient(&http.Client{Transport: rec}))
	ctx := ctxFor(t)
	w := watch(t, cl, corrosion.Stmt("SELECT name FROM items"), true)
	eventually(t, "the initial snapshot", func() bool { return w.snapshots() == 1 })
	cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (0, 'first')"))
	<-w.held // the handler now sits on change 1 and reads nothing more
	const n = 2000
	insertMany(t, cl, 1, n)
	waitLastChange(t, cl, n+1) // the matcher has sent every change
	w.release()
	eventually(t, "the watcher to catch up", sameRows(t, w, cl))
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, id := range w.ids {
		if id != uint64(i+1) {
			t.Fatalf("change #%d has id %d: missed or repeated changes", i+1, id)
		}
	}
	if len(w.ids) != n+1 || w.snaps != 1 {
		t.Errorf("%d changes and %d snapshots, want %d and 1", len(w.ids), w.snaps, n+1)
	}
	resumed := false
	for _, r := range rec.requests() {
		resumed = resumed || strings.HasPrefix(r, "GET /v1/subscriptions/") && strings.Contains(r, "from=")
	}
	if !resumed {
		t.Errorf("the watcher never resumed: %v", rec.requests())
	}
}

// TestWatchPurged resumes after the server purged the changes the
// watcher needs; it re-lists the subscription instead.
func TestWatchPurged(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{Subs: embedded.SubOptions{ListenBuffer: 1, Retain: 5, PurgeEvery: 10 * time.Millisecond}})
	rec := &protoRecorder{rt: nativeH2C(16 << 10)}
	cl := newClient(t, s.url(), corrosion.WithHTTPClient(&http.Client{Transport: rec}))
	ctx := ctxFor(t)
	stmt := corrosion.Stmt("SELECT name FROM items")
	w := watch(t, cl, stmt, true)
	eventually(t, "the initial snapshot", func() bool { return w.snapshots() == 1 })
	cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (0, 'first')"))
	<-w.held
	const n = 2000
	insertMany(t, cl, 1, n)
	waitLastChange(t, cl, n+1)
	// Wait for the purge: a resume from change 1 is refused.
	other := newClient(t, s.url())
	sub, err := other.Subscribe(ctx, stmt, corrosion.SubscribeOptions{SkipRows: true})
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	eventually(t, "the purge", func() bool {
		st, err := other.Resubscribe(ctx, sub.ID, corrosion.SubscribeOptions{From: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = st.Next()
		return corrosion.IsPurged(err)
	})
	w.release()
	eventually(t, "a second snapshot", func() bool { return w.snapshots() == 2 })
	eventually(t, "the watcher to catch up", sameRows(t, w, cl))
	if _, err := cl.Exec(ctx, corrosion.Stmt("UPDATE items SET name = 'last' WHERE id = 0")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watcher to follow changes after the re-list", sameRows(t, w, cl))
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 1; i < len(w.ids); i++ {
		if w.ids[i] <= w.ids[i-1] {
			t.Fatalf("change ids go backwards: %v", w.ids[i-1:i+1])
		}
	}
}

// TestWatchServerRestart restarts the embedded server on the same data
// directory: the subscription is gone (404), so the watcher subscribes
// again and re-lists.
func TestWatchServerRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, embedded.Options{})
	rec := &protoRecorder{rt: xnetH2C(s.dial)}
	cl := newClient(t, "http://state.invalid", corrosion.WithHTTPClient(&http.Client{Transport: rec}))
	ctx := ctxFor(t)
	if _, err := cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (1, 'a')")); err != nil {
		t.Fatal(err)
	}
	w := watch(t, cl, corrosion.Stmt("SELECT name FROM items"), false)
	eventually(t, "the initial snapshot", func() bool { return w.snapshots() == 1 })
	cl.Exec(ctx, corrosion.Stmt("INSERT INTO items (id, name) VALUES (2, 'b')"))
	eventually(t, "the first change", sameRows(t, w, cl))

	s.restart()
	// The first request may share a dial the watcher started towards the
	// old address; a caller retries what did not reach the server.
	eventually(t, "a write to the new server", func() bool {
		_, err := cl.Exec(ctx, corrosion.Stmt("INSERT OR REPLACE INTO items (id, name) VALUES (3, 'c')"))
		var u *corrosion.Unreachable
		if err != nil && !errors.As(err, &u) {
			t.Fatalf("Exec after restart: %v", err)
		}
		return err == nil
	})
	eventually(t, "a snapshot from the new server", func() bool { return w.snapshots() == 2 })
	eventually(t, "the watcher to hold every row", sameRows(t, w, cl))
	cl.Exec(ctx, corrosion.Stmt("UPDATE items SET name = 'A' WHERE id = 1"))
	eventually(t, "a change after the restart", sameRows(t, w, cl))

	var posts, notFound int
	for _, r := range rec.requests() {
		if strings.HasPrefix(r, "POST /v1/subscriptions") {
			posts++
		}
		if strings.HasPrefix(r, "GET /v1/subscriptions/") {
			notFound++
		}
	}
	if posts != 2 || notFound == 0 {
		t.Errorf("requests %v: want a resume attempt and a second POST", rec.requests())
	}
}

func insertMany(t *testing.T, cl *corrosion.Client, from, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("INSERT INTO items (id, name) VALUES ")
	for i := from; i < from+n; i++ {
		if i > from {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%d, 'row %d')", i, i)
	}
	if _, err := cl.Exec(ctxFor(t), corrosion.Stmt(b.String())); err != nil {
		t.Fatal(err)
	}
}

// waitLastChange waits until the subscription on items has issued change
// id last, as an attaching client's snapshot says.
func waitLastChange(t *testing.T, cl *corrosion.Client, last uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("change %d", last), func() bool {
		sub, err := cl.Subscribe(ctxFor(t), corrosion.Stmt("SELECT name FROM items"), corrosion.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		for {
			ev, err := sub.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind == corrosion.EventEOQ {
				return ev.ChangeID >= last
			}
		}
	})
}
