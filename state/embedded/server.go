// Package embedded is uc's single-node state: SQLite in the data directory,
// served over the subset of Corrosion's HTTP API that uc uses, with the same
// wire format, headers and change-id semantics
// (shared/design/corrosion-api.md). Controllers cannot tell it from a real
// Corrosion agent.
package embedded

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

// Options configure a Server.
type Options struct {
	// DataDir holds the database file, state.db.
	DataDir string
	// Schema is applied at start, as Corrosion applies db.schema_paths.
	Schema []string
	// Token, when set, is the bearer token every request must carry.
	Token  string
	Subs   SubOptions
	Logger *slog.Logger
}

// Server is the embedded state. It implements http.Handler.
type Server struct {
	db    *DB
	subs  *subManager
	token string
	log   *slog.Logger
	mux   *http.ServeMux
	limit map[string]chan struct{}
}

// Open opens the database in opts.DataDir and applies the schema.
func Open(ctx context.Context, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	db, err := OpenDB(ctx, filepath.Join(opts.DataDir, "state.db"))
	if err != nil {
		return nil, err
	}
	for _, script := range opts.Schema {
		if err := db.ApplySchema(ctx, script); err != nil {
			db.Close()
			return nil, err
		}
	}
	s := &Server{db: db, token: opts.Token, log: log, subs: newSubManager(db, opts.Subs, log)}
	s.routes()
	return s, nil
}

// DB is the underlying database, for in-process schema changes.
func (s *Server) DB() *DB { return s.db }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.limit = map[string]chan struct{}{}
	s.mux.Handle("POST /v1/transactions", s.limited("transactions", 128, s.handleTransactions))
	s.mux.Handle("POST /v1/queries", s.limited("queries", 128, s.handleQuery))
	s.mux.Handle("POST /v1/subscriptions", s.limited("subscriptions", 128, s.handleSubscribe))
	s.mux.Handle("GET /v1/subscriptions/{id}", s.limited("subscription", 128, s.handleResubscribe))
	s.mux.Handle("GET /v1/health", s.limited("health", 4, s.handleHealth))
	s.mux.Handle("POST /v1/table_stats", s.limited("table_stats", 4, s.handleTableStats))
}

// limited caps in-flight requests per route; streams stop counting once
// their headers are out, as in Corrosion.
func (s *Server) limited(name string, n int, h func(http.ResponseWriter, *http.Request, func())) http.Handler {
	sem := make(chan struct{}, n)
	s.limit[name] = sem
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
		default:
			http.Error(w, "max concurrency limit reached", http.StatusServiceUnavailable)
			return
		}
		released := false
		release := func() {
			if !released {
				released = true
				<-sem
			}
		}
		defer release()
		h(w, r, release)
	})
}

// ServeHTTP checks the bearer token and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve runs the matcher and serves HTTP/1.1 and h2c on ln until ctx is
// done; then it closes the database.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	matcherDone := make(chan struct{})
	go func() { defer close(matcherDone); s.subs.run(ctx) }()
	// net/http's own h2c (rather than x/net's h2c handler, which hijacks
	// connections) keeps HTTP/2 connections under the server, so that
	// Shutdown and Close end them too; otherwise clients keep talking to a
	// stopped server over their pooled connections.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: s, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	<-matcherDone // ends every stream, so Shutdown need not wait for them
	// Shutdown sends HTTP/2 clients a GOAWAY and gives each idle one up to
	// a second to hang up, so that they do not send their next request down
	// a connection that is about to close.
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if srv.Shutdown(shutCtx) != nil {
		_ = srv.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, s.db.Close())
}

// decodeJSON applies axum's rejections: 415 without a JSON content type,
// 400 for malformed JSON, 422 for the wrong shape.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		http.Error(w, "Expected request with `Content-Type: application/json`", http.StatusUnsupportedMediaType)
		return false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	if string(bytes.TrimSpace(body)) == "null" {
		// encoding/json reads null as "no change"; serde refuses it.
		http.Error(w, "Failed to deserialize the JSON body into the target type: invalid type: null", http.StatusUnprocessableEntity)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(body) {
			http.Error(w, "Failed to parse the request body as JSON: "+err.Error(), http.StatusBadRequest)
		} else {
			http.Error(w, "Failed to deserialize the JSON body into the target type: "+err.Error(), http.StatusUnprocessableEntity)
		}
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleTransactions(w http.ResponseWriter, r *http.Request, _ func()) {
	ctx, cancel, ok := withTimeoutParam(w, r, 0)
	if !ok {
		return
	}
	defer cancel()
	var stmts []corrosion.Statement
	if !decodeJSON(w, r, &stmts) {
		return
	}
	start := time.Now()
	fail := func(status int, msg string) {
		writeJSON(w, status, corrosion.ExecResult{
			Results: []corrosion.StatementResult{{Error: msg}},
			Time:    time.Since(start).Seconds(), ActorID: s.db.ActorID(),
		})
	}
	if len(stmts) == 0 {
		fail(http.StatusBadRequest, "at least 1 statement is required")
		return
	}
	results, version, err := s.db.Transaction(ctx, stmts)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, corrosion.ExecResult{
		Results: results, Time: time.Since(start).Seconds(), Version: version, ActorID: s.db.ActorID(),
	})
}

// withTimeoutParam applies `?timeout=<secs>`; def 0 means no timeout. A
// value that is not a number of seconds is a 400, as axum's Query extractor
// answers.
func withTimeoutParam(w http.ResponseWriter, r *http.Request, def time.Duration) (context.Context, context.CancelFunc, bool) {
	d := def
	if v := r.URL.Query().Get("timeout"); v != "" {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Failed to deserialize query string: timeout: invalid digit found in string", http.StatusBadRequest)
			return nil, nil, false
		}
		d = time.Duration(secs) * time.Second
	}
	if d <= 0 {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, true
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, _ func()) {
	ctx, cancel, ok := withTimeoutParam(w, r, 60*time.Second)
	if !ok {
		return
	}
	defer cancel()
	var stmt corrosion.Statement
	if !decodeJSON(w, r, &stmt) {
		return
	}
	if err := s.db.CheckReadOnly(ctx, stmt.Query); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := newEventWriter(w)
	rowID := int64(0)
	err := s.db.Query(ctx, stmt, func(cols []string) error {
		return out.write(corrosion.Event{Kind: corrosion.EventColumns, Columns: cols})
	}, func(vals []any) error {
		rowID++
		return out.write(corrosion.Event{Kind: corrosion.EventRow, RowID: rowID, Values: vals})
	})
	switch {
	case err != nil && !out.started:
		// Binding, execution and pool errors; preparing was checked above.
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	case err != nil:
		_ = out.write(corrosion.Event{Kind: corrosion.EventError, Error: err.Error()})
	default:
		_ = out.write(corrosion.Event{Kind: corrosion.EventEOQ})
	}
	out.flush()
}

func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request, release func()) {
	var stmt corrosion.Statement
	if !decodeJSON(w, r, &stmt) {
		return
	}
	from, skipRows, ok := streamParams(w, r)
	if !ok {
		return
	}
	sub, err := s.subs.subscribe(r.Context(), stmt, from > 0)
	switch {
	case errors.Is(err, errShuttingDown):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.stream(w, r, sub, from, skipRows, release)
}

func (s *Server) handleResubscribe(w http.ResponseWriter, r *http.Request, release func()) {
	id, ok := parseUUID(r.PathValue("id"))
	if !ok {
		http.Error(w, "Invalid URL: UUID parsing failed", http.StatusBadRequest)
		return
	}
	from, skipRows, ok := streamParams(w, r)
	if !ok {
		return
	}
	sub := s.subs.get(id)
	if sub == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "could not find subscription with id " + id})
		return
	}
	s.stream(w, r, sub, from, skipRows, release)
}

// parseUUID accepts the forms Rust's uuid crate parses (hyphenated, simple,
// braced, urn:uuid:, any case) and returns the canonical lowercase
// hyphenated form that subscription ids have.
func parseUUID(s string) (string, bool) {
	s = strings.TrimPrefix(s, "urn:uuid:")
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	switch len(s) {
	case 36:
		for _, i := range []int{8, 13, 18, 23} {
			if s[i] != '-' {
				return "", false
			}
		}
		s = strings.ReplaceAll(s, "-", "")
	case 32:
	default:
		return "", false
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return "", false
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

func streamParams(w http.ResponseWriter, r *http.Request) (from uint64, skipRows, ok bool) {
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "Failed to deserialize query string: from: "+err.Error(), http.StatusBadRequest)
			return 0, false, false
		}
		from = n
	}
	switch q.Get("skip_rows") {
	case "", "false":
	case "true":
		skipRows = true
	default:
		http.Error(w, "Failed to deserialize query string: skip_rows: expected `true` or `false`", http.StatusBadRequest)
		return 0, false, false
	}
	return from, skipRows, true
}

// stream sends the snapshot or the replay, then live changes, until the
// client leaves, the listener is dropped for lagging, or the server stops.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, sub *subscription, from uint64, skipRows bool, release func()) {
	first, l, err := sub.attach(from, skipRows)
	w.Header().Set("corro-query-id", sub.id)
	w.Header().Set("corro-query-hash", sub.hash)
	out := newEventWriter(w)
	if err != nil {
		_ = out.write(corrosion.Event{Kind: corrosion.EventError, Error: err.Error()})
		out.flush()
		return
	}
	defer sub.detach(l)
	release()
	for _, ev := range first {
		if out.write(ev) != nil {
			return
		}
	}
	out.start()
	for {
		if len(l.ch) == 0 {
			out.flush()
		}
		select {
		case <-r.Context().Done():
			return
		case ev, open := <-l.ch:
			if !open || out.write(ev) != nil {
				out.flush()
				return
			}
		}
	}
}

// eventWriter writes NDJSON events; headers go out with the first event.
type eventWriter struct {
	w       http.ResponseWriter
	enc     *json.Encoder
	started bool
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	return &eventWriter{w: w, enc: json.NewEncoder(w)}
}

func (e *eventWriter) start() {
	if !e.started {
		e.started = true
		e.w.Header()["Content-Type"] = nil // Corrosion's streams have none; do not sniff one
		e.w.WriteHeader(http.StatusOK)
	}
}

func (e *eventWriter) write(ev corrosion.Event) error {
	e.start()
	return e.enc.Encode(ev)
}

func (e *eventWriter) flush() {
	e.start()
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// handleHealth answers 200 when the database answers. Unlike Corrosion's,
// it has no replication lag to report, so it never fails an idle node.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ func()) {
	var one int
	if err := s.db.read.QueryRowContext(r.Context(), "SELECT 1").Scan(&one); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"response": map[string]any{
		"gaps": 0, "members": 1, "p99_lag": 0.0, "queue_size": 0,
	}})
}

func (s *Server) handleTableStats(w http.ResponseWriter, r *http.Request, _ func()) {
	var req struct {
		Tables []string `json:"tables"`
	}
	if !decodeJSON(w, r, &req) {
		return
	}
	total, invalid := int64(0), []string{}
	for _, t := range req.Tables {
		var n int64
		err := s.db.read.QueryRowContext(r.Context(), fmt.Sprintf("SELECT count(*) FROM %s", quoteIdent(t))).Scan(&n)
		if err != nil || isInternal(t) {
			invalid = append(invalid, t)
			continue
		}
		total += n
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_row_count": total, "invalid_tables": invalid})
}
