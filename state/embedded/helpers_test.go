package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

// testSchema is small but has every shape the tests need: a single-key
// table, a composite-key table and a table to join with.
const testSchema = `
CREATE TABLE items (
    id    INTEGER NOT NULL PRIMARY KEY,
    name  TEXT NOT NULL DEFAULT '',
    qty   INTEGER NOT NULL DEFAULT 0,
    note  TEXT,
    data  BLOB,
    price REAL
);
CREATE TABLE tags (
    item_id INTEGER NOT NULL,
    tag     TEXT NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE TABLE events (
    id  INTEGER NOT NULL PRIMARY KEY,
    at  DATETIME,
    day DATE
);
`

// testServer is an embedded server listening on loopback.
type testServer struct {
	*Server
	URL  string
	stop func() // stops the server and waits for Serve to return
}

type serverOpts struct {
	dir    string
	schema []string
	token  string
	subs   SubOptions
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.schema == nil {
		o.schema = []string{testSchema}
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Open(ctx, Options{DataDir: o.dir, Schema: o.schema, Token: o.token, Subs: o.subs, Logger: quietLogger()})
	if err != nil {
		cancel()
		t.Fatalf("Open: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	ts := &testServer{Server: srv, URL: "http://" + ln.Addr().String()}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10 s of cancel")
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// reply is a complete, non-streamed HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// call sends a request with a JSON body (unless body is nil) and reads the
// whole answer.
func call(t *testing.T, method, url string, body any, hdr ...string) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// exec runs statements through /v1/transactions and requires a 200.
func (s *testServer) exec(t *testing.T, stmts ...corrosion.Statement) corrosion.ExecResult {
	t.Helper()
	r := call(t, http.MethodPost, s.URL+"/v1/transactions", stmts)
	if r.status != http.StatusOK {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	var res corrosion.ExecResult
	r.json(t, &res)
	return res
}

// stream is an open NDJSON answer.
type stream struct {
	status int
	header http.Header
	body   io.ReadCloser
	dec    *json.Decoder
	cancel context.CancelFunc
}

// open starts a streaming request; the stream is closed at cleanup.
func open(t *testing.T, method, url string, body any) *stream {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{status: resp.StatusCode, header: resp.Header, body: resp.Body, dec: json.NewDecoder(resp.Body), cancel: cancel}
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.cancel(); s.body.Close() }

// next decodes one event; the request's deadline bounds the wait.
func (s *stream) next(t *testing.T) corrosion.Event {
	t.Helper()
	ev, err := s.nextErr()
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return ev
}

func (s *stream) nextErr() (corrosion.Event, error) {
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		return corrosion.Event{}, err
	}
	var ev corrosion.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return corrosion.Event{}, errors.New("bad event " + string(raw) + ": " + err.Error())
	}
	return ev, nil
}

// snapshot reads columns, rows and eoq.
func (s *stream) snapshot(t *testing.T) ([]string, []corrosion.Event, corrosion.Event) {
	t.Helper()
	cols := s.next(t)
	if cols.Kind != corrosion.EventColumns {
		t.Fatalf("want columns first, got %+v", cols)
	}
	var rows []corrosion.Event
	for {
		ev := s.next(t)
		switch ev.Kind {
		case corrosion.EventRow:
			rows = append(rows, ev)
		case corrosion.EventEOQ:
			return cols.Columns, rows, ev
		default:
			t.Fatalf("unexpected event in snapshot: %+v", ev)
		}
	}
}

// change reads one change event.
func (s *stream) change(t *testing.T) corrosion.Event {
	t.Helper()
	ev := s.next(t)
	if ev.Kind != corrosion.EventChange {
		t.Fatalf("want a change, got %+v", ev)
	}
	return ev
}

func stmt(q string, params ...any) corrosion.Statement { return corrosion.Stmt(q, params...) }

// query runs a statement through /v1/queries, requires a complete stream
// and returns its columns and row values.
func (s *testServer) query(t *testing.T, st corrosion.Statement) ([]string, [][]any) {
	t.Helper()
	r := call(t, http.MethodPost, s.URL+"/v1/queries", st)
	if r.status != http.StatusOK {
		t.Fatalf("query %q: %d %s", st.Query, r.status, r.body)
	}
	evs := decodeLines(t, r.body)
	if len(evs) < 2 || evs[0].Kind != corrosion.EventColumns || evs[len(evs)-1].Kind != corrosion.EventEOQ {
		t.Fatalf("query %q: malformed stream %s", st.Query, r.body)
	}
	var rows [][]any
	for _, ev := range evs[1 : len(evs)-1] {
		rows = append(rows, ev.Values)
	}
	return evs[0].Columns, rows
}

func decodeLines(t *testing.T, body []byte) []corrosion.Event {
	t.Helper()
	var out []corrosion.Event
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var ev corrosion.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}
