package corrosion

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
)

// fake is a scripted Corrosion API: each request takes the next step of its
// route's script; when a route's script is used up, requests wait until the
// client goes away (a quiet live stream).
type fake struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []string // "METHOD /path?query" of every request
	bodies []string
	steps  map[string][]func(w http.ResponseWriter, r *http.Request)
}

// newFake starts a fake that speaks HTTP/1.1 and h2c, as Corrosion does.
func newFake(t *testing.T) *fake {
	f := &fake{t: t, steps: map[string][]func(http.ResponseWriter, *http.Request){}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	f.srv.Config.Protocols = &p
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// on appends steps for requests whose "METHOD /path" starts with route.
func (f *fake) on(route string, steps ...func(http.ResponseWriter, *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.steps[route] = append(f.steps[route], steps...)
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.seen = append(f.seen, key+"?"+r.URL.RawQuery)
	f.bodies = append(f.bodies, string(body))
	var step func(http.ResponseWriter, *http.Request)
	for route, steps := range f.steps {
		if strings.HasPrefix(key, route) && len(steps) > 0 {
			step, f.steps[route] = steps[0], steps[1:]
			break
		}
	}
	f.mu.Unlock()
	if step == nil {
		<-r.Context().Done()
		return
	}
	step(w, r)
}

// lastBody is the body of the latest request.
func (f *fake) lastBody() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[len(f.bodies)-1]
}

func (f *fake) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// lines answers 200 with the given NDJSON lines; a line "WAIT" keeps the
// stream open until the client goes away, and the body otherwise ends
// after the last line.
func lines(hdr map[string]string, ls ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(http.StatusOK)
		for _, l := range ls {
			if l == "WAIT" {
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				return
			}
			fmt.Fprintln(w, l)
		}
		w.(http.Flusher).Flush()
	}
}

func status(code int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func clients(t *testing.T, base string, opts ...Option) map[string]*Client {
	out := map[string]*Client{}
	for name, extra := range map[string][]Option{"h2c": nil, "http1": {WithHTTP1()}} {
		c, err := New(base, append(append([]Option(nil), opts...), extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = c
	}
	return out
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "://x"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New("http://127.0.0.1:8080/")
	if err != nil || c.Addr() != "http://127.0.0.1:8080" {
		t.Errorf("New: %v %v", c, err)
	}
	if _, ok := c.http.Transport.(*fallbackTransport); !ok {
		t.Errorf("http:// uses %T, want h2c with an HTTP/1.1 fallback", c.http.Transport)
	}
	// There is no TLS on Corrosion's API, but a proxy in front may add it:
	// then ALPN picks h2 or http/1.1.
	c, _ = New("https://corrosion.example:8443")
	if tr, ok := c.http.Transport.(*http.Transport); !ok || !tr.ForceAttemptHTTP2 {
		t.Errorf("https:// uses %T, want a TLS transport that offers h2", c.http.Transport)
	}
	c, _ = New("http://127.0.0.1:8080", WithHTTP1())
	if tr, ok := c.http.Transport.(*http.Transport); !ok || tr.Protocols != nil && tr.Protocols.UnencryptedHTTP2() {
		t.Errorf("WithHTTP1 uses %T", c.http.Transport)
	}
}

func TestQueryStreamEnds(t *testing.T) {
	t.Parallel()
	cols := `{"columns":["a"]}`
	cases := []struct {
		name  string
		step  func(http.ResponseWriter, *http.Request)
		rows  int
		check func(error) bool
	}{
		{"complete", lines(nil, cols, `{"row":[1,[1]]}`, `{"row":[2,[2]]}`, `{"eoq":{"time":0.0}}`), 2, func(err error) bool { return err == nil }},
		{"truncated after a row", lines(nil, cols, `{"row":[1,[1]]}`), 1, func(err error) bool { return errors.Is(err, ErrTruncated) }},
		{"truncated mid-line", lines(nil, cols, `{"row":[1,[1`), 0, func(err error) bool { return errors.Is(err, ErrTruncated) }},
		{"empty body", lines(nil), 0, func(err error) bool { return errors.Is(err, ErrTruncated) }},
		{"error line", lines(nil, cols, `{"row":[1,[1]]}`, `{"error":"interrupted"}`), 1, func(err error) bool {
			var se *StreamError
			return errors.As(err, &se) && se.Message == "interrupted"
		}},
		{"error line first", lines(nil, `{"error":"boom"}`), 0, func(err error) bool {
			var se *StreamError
			return errors.As(err, &se) && se.Message == "boom"
		}},
		{"row before columns", lines(nil, `{"row":[1,[1]]}`), 0, func(err error) bool { return err != nil }},
		{"garbage", lines(nil, cols, `not json`), 0, func(err error) bool { return err != nil && !errors.Is(err, ErrTruncated) }},
		{"400", status(400, `{"error":"statement is not readonly"}`), 0, func(err error) bool {
			var api *APIError
			return errors.As(err, &api) && api.Status == 400 && api.Message == "statement is not readonly"
		}},
		{"500 text", status(500, "oops\n"), 0, func(err error) bool {
			var api *APIError
			return errors.As(err, &api) && api.Status == 500 && api.Message == "oops"
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			for name, cl := range clients(t, f.srv.URL) {
				f.on("POST /v1/queries", c.step)
				_, rows, err := cl.QueryAll(testContext(t), Stmt("SELECT a FROM t"))
				if len(rows) != c.rows || !c.check(err) {
					t.Errorf("%s: %d rows, err %v", name, len(rows), err)
				}
			}
		})
	}
}

func TestRowsIteration(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/queries", lines(nil, `{"columns":["a","b"]}`, `{"row":[1,[1,"x"]]}`, `{"row":[2,[9223372036854775807,[1,2]]]}`, `{"eoq":{"time":1e-7}}`))
	c, _ := New(f.srv.URL)
	rows, err := c.Query(testContext(t), Stmt("SELECT a, b FROM t WHERE a = ?", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if strings.Join(rows.Columns(), ",") != "a,b" {
		t.Errorf("columns %v", rows.Columns())
	}
	var got []string
	for rows.Next() {
		got = append(got, fmt.Sprintf("%#v", rows.Values()))
	}
	want := []string{`[]interface {}{1, "x"}`, `[]interface {}{9223372036854775807, []uint8{0x1, 0x2}}`}
	if rows.Err() != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rows %v, err %v", got, rows.Err())
	}
	if rows.Next() {
		t.Errorf("Next after the end")
	}
	rows.Close()
	if body := f.lastBody(); body != `{"query":"SELECT a, b FROM t WHERE a = ?","params":[0]}` {
		t.Errorf("request body %s", body)
	}
}

func TestExecAndErrors(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.on("POST /v1/transactions",
		status(200, `{"results":[{"rows_affected":1,"time":1e-5}],"time":0.1,"version":3,"actor_id":"d5f143e7ba65421c938c850ce78fc9f2"}`),
		status(500, `{"results":[{"error":"rusqlite: no such table: x (actor_id: None, version: None)"}],"time":0.0,"version":null,"actor_id":"d5f143e7ba65421c938c850ce78fc9f2"}`),
		status(400, `{"results":[{"error":"at least 1 statement is required"}],"time":0.0,"version":null,"actor_id":"d5f143e7ba65421c938c850ce78fc9f2"}`),
		status(401, ``),
		status(503, "max concurrency limit reached"),
		status(200, `{"results":`),
	)
	c, _ := New(f.srv.URL, WithToken("tok"))
	ctx := testContext(t)
	res, err := c.Exec(ctx, Stmt("INSERT INTO t VALUES (?)", 1))
	if err != nil || res.Version == nil || *res.Version != 3 || res.Results[0].RowsAffected != 1 {
		t.Fatalf("Exec: %+v %v", res, err)
	}
	wantErrs := []struct {
		status int
		msg    string
	}{
		{500, "rusqlite: no such table: x (actor_id: None, version: None)"},
		{400, "at least 1 statement is required"},
		{401, ""},
		{503, "max concurrency limit reached"},
	}
	for _, w := range wantErrs {
		_, err := c.Exec(ctx, Stmt("x"))
		var api *APIError
		if !errors.As(err, &api) || api.Status != w.status || api.Message != w.msg {
			t.Errorf("want %d %q, got %v", w.status, w.msg, err)
		}
	}
	if _, err := c.Exec(ctx, Stmt("x")); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Errorf("a malformed 200 body: %v", err)
	}
	if _, err := c.Exec(ctx, Stmt("x", make(chan int))); err == nil {
		t.Errorf("an unencodable parameter was sent")
	}
	f.on("POST /v1/transactions", status(400, `{"error":"x"}`))
	c.Exec(ctx)
	if last := f.lastBody(); last != "[]" {
		t.Errorf("Exec without statements sent %s, want []", last)
	}
}

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.WriteHeader(404)
	}))
	defer srv.Close()
	c, _ := New(srv.URL, WithToken("tok"), WithHTTP1())
	ctx := testContext(t)
	c.Exec(ctx, Stmt("x"))
	c.Resubscribe(ctx, "00000000-0000-4000-8000-000000000000", SubscribeOptions{})
	want := []string{"POST Bearer tok application/json", "GET Bearer tok "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for name, c := range clients(t, "http://"+addr) {
		_, err := c.Exec(testContext(t), Stmt("x"))
		var u *Unreachable
		if !errors.As(err, &u) || u.Addr != "http://"+addr || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := New("http://" + addr)
	if _, err := c.Exec(ctx, Stmt("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestSubscribeRequests(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	hdr := map[string]string{"corro-query-id": "11111111-1111-4111-8111-111111111111", "corro-query-hash": "0123456789abcdef"}
	f.on("POST /v1/subscriptions", lines(hdr, `{"columns":["a"]}`, `{"eoq":{"time":0.0,"change_id":0}}`), lines(hdr), lines(hdr))
	f.on("GET /v1/subscriptions/", status(404, `{"error":"could not find subscription with id x"}`), status(400, "Invalid URL: UUID parsing failed"))
	c, _ := New(f.srv.URL)
	ctx := testContext(t)
	s, err := c.Subscribe(ctx, Stmt("SELECT a FROM t"), SubscribeOptions{})
	if err != nil || s.ID != hdr["corro-query-id"] || s.Hash != hdr["corro-query-hash"] {
		t.Fatalf("Subscribe: %+v %v", s, err)
	}
	for _, want := range []EventKind{EventColumns, EventEOQ} {
		if ev, err := s.Next(); err != nil || ev.Kind != want || want == EventEOQ && (!ev.HasChangeID || ev.ChangeID != 0) {
			t.Errorf("event %+v %v", ev, err)
		}
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v", err)
	}
	s.Close()
	s, _ = c.Subscribe(ctx, Stmt("q"), SubscribeOptions{From: 7, SkipRows: true})
	s.Close()
	s, _ = c.Subscribe(ctx, Stmt("q"), SubscribeOptions{SkipRows: true})
	s.Close()
	_, err = c.Resubscribe(ctx, "some id/with slash", SubscribeOptions{From: 3})
	var api *APIError
	if !errors.Is(err, ErrSubscriptionNotFound) || !errors.As(err, &api) || api.Status != 404 {
		t.Errorf("Resubscribe 404: %v", err)
	}
	if _, err := c.Resubscribe(ctx, "x", SubscribeOptions{}); errors.Is(err, ErrSubscriptionNotFound) || !errors.As(err, &api) || api.Status != 400 {
		t.Errorf("Resubscribe 400: %v", err)
	}
	want := []string{
		"POST /v1/subscriptions?",
		"POST /v1/subscriptions?from=7&skip_rows=true",
		"POST /v1/subscriptions?skip_rows=true",
		"GET /v1/subscriptions/some id/with slash?from=3",
		"GET /v1/subscriptions/x?",
	}
	if got := f.requests(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("requests\n%q\nwant\n%q", got, want)
	}
}
