package corrosion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a Corrosion agent's HTTP API, or to uc's embedded state,
// which serves the same API.
type Client struct {
	base    string
	token   string
	http    *http.Client
	http1   bool
	caFile  string
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends `Authorization: Bearer <token>` on every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTP1 uses HTTP/1.1 on http:// addresses, without trying h2c first.
func WithHTTP1() Option { return func(c *Client) { c.http1 = true } }

// WithHTTPClient uses the given HTTP client as is.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithCAFile trusts the PEM certificates in path, besides the system's
// roots, on https:// addresses (a TLS-terminating proxy with a private CA).
// It has no effect on http:// addresses.
func WithCAFile(path string) Option { return func(c *Client) { c.caFile = path } }

// WithRequestTimeout bounds each request: a transaction or a query until its
// whole answer is read, a subscription until its stream starts (the stream
// then runs as long as it must). A request that runs out fails with a
// *Timeout. Zero means no bound.
func WithRequestTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for the API at baseURL, e.g. http://127.0.0.1:8080.
// On http:// it speaks h2c, as corro-client does, and falls back to
// HTTP/1.1 when the peer (say, a plain reverse proxy) does not speak h2c.
// On https:// TLS negotiates h2 or http/1.1 (ALPN).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("corrosion API address %q: want http://host:port or https://host:port", baseURL)
	}
	c := &Client{base: strings.TrimRight(u.String(), "/")}
	for _, o := range opts {
		o(c)
	}
	if c.http != nil {
		return c, nil
	}
	var tr http.RoundTripper
	switch {
	case u.Scheme == "https":
		roots, err := rootsWith(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("corrosion API %s: %w", c.base, err)
		}
		tr = stdTransport(roots)
	case c.http1:
		tr = stdTransport(nil)
	default:
		tr = newFallbackTransport()
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// Addr is the base URL the client talks to.
func (c *Client) Addr() string { return c.base }

// CloseIdleConnections closes the connections kept for reuse; open streams
// go on. Call it when done with the client: a server that shuts down
// gracefully waits (up to a second) for idle HTTP/2 clients to hang up.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// APIError is a non-200 answer from the API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("corrosion API: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("corrosion API: %d: %s", e.Status, e.Message)
}

// StreamError is an `{"error":…}` line inside a 200 stream; it ends the stream.
type StreamError struct{ Message string }

func (e *StreamError) Error() string { return "corrosion stream: " + e.Message }

var (
	// ErrSubscriptionNotFound is a 404 for a subscription id.
	ErrSubscriptionNotFound = errors.New("subscription not found")
	// ErrTruncated is a query stream that ended without eoq.
	ErrTruncated = errors.New("stream ended without eoq")
	// ErrMissedChange is a change id that did not follow the previous one.
	ErrMissedChange = errors.New("missed a subscription change")
)

// Unreachable wraps transport errors so callers can name the address.
type Unreachable struct {
	Addr string
	Err  error
}

func (e *Unreachable) Error() string {
	return fmt.Sprintf("state API %s is unreachable: %v", e.Addr, e.Err)
}
func (e *Unreachable) Unwrap() error { return e.Err }

// Timeout is a request the state API did not answer within the client's
// request timeout (WithRequestTimeout).
type Timeout struct {
	Addr  string
	After time.Duration
}

func (e *Timeout) Error() string {
	return fmt.Sprintf("state API %s did not answer within %s", e.Addr, e.After)
}

// bound limits one request to the client's request timeout. stop lifts the
// limit (on a stream once its headers are in); release ends the request.
type bound struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func (c *Client) bound(ctx context.Context) *bound {
	b := &bound{}
	b.ctx, b.cancel = context.WithCancelCause(ctx)
	if c.timeout > 0 {
		b.timer = time.AfterFunc(c.timeout, func() { b.cancel(&Timeout{Addr: c.base, After: c.timeout}) })
	}
	return b
}

func (b *bound) stop() {
	if b.timer != nil {
		b.timer.Stop()
	}
}

func (b *bound) release() {
	b.stop()
	b.cancel(nil)
}

// err names the timeout when it is what ended the request.
func (b *bound) err(err error) error {
	var to *Timeout
	if err != nil && errors.As(context.Cause(b.ctx), &to) {
		return to
	}
	return err
}

// IsPurged reports a resume whose `from` the server has already deleted.
func IsPurged(err error) bool {
	var se *StreamError
	return errors.As(err, &se) && strings.Contains(se.Message, "already deleted older changes")
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &Unreachable{Addr: c.base, Err: err}
	}
	return resp, nil
}

// apiError reads a non-200 body: `{"error":…}`, an ExecResult, or text.
func apiError(resp *http.Response) error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
	var single struct {
		Error string `json:"error"`
	}
	var exec ExecResult
	switch {
	case json.Unmarshal(b, &single) == nil && single.Error != "":
		e.Message = single.Error
	case json.Unmarshal(b, &exec) == nil && len(exec.Results) > 0 && exec.Results[0].Error != "":
		e.Message = exec.Results[0].Error
	}
	return e
}

// Exec runs statements in one transaction: all of them apply or none.
func (c *Client) Exec(ctx context.Context, stmts ...Statement) (*ExecResult, error) {
	if stmts == nil {
		stmts = []Statement{} // `[]`, not `null`, which Corrosion answers with a 422
	}
	b := c.bound(ctx)
	defer b.release()
	resp, err := c.do(b.ctx, http.MethodPost, "/v1/transactions", stmts)
	if err != nil {
		return nil, b.err(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, b.err(apiError(resp))
	}
	defer resp.Body.Close()
	var res ExecResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, b.err(fmt.Errorf("decode transaction response: %w", err))
	}
	return &res, nil
}

// Rows is a streaming query result. Call Next until it returns false, then Err.
type Rows struct {
	stream  *Stream
	columns []string
	values  []any
	err     error
	done    bool
}

// Query runs a read-only statement and streams its rows.
func (c *Client) Query(ctx context.Context, stmt Statement) (*Rows, error) {
	// The bound covers the whole answer: a query's rows are finite.
	b := c.bound(ctx)
	resp, err := c.do(b.ctx, http.MethodPost, "/v1/queries", stmt)
	if err != nil {
		b.release()
		return nil, b.err(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer b.release()
		return nil, b.err(apiError(resp))
	}
	r := &Rows{stream: newStream(resp, b)}
	ev, err := r.stream.Next()
	if err != nil {
		r.stream.Close()
		return nil, streamErr(err)
	}
	if ev.Kind != EventColumns {
		r.stream.Close()
		return nil, fmt.Errorf("query stream: want columns first, got event %d", ev.Kind)
	}
	r.columns = ev.Columns
	return r, nil
}

// streamErr turns an end of stream before eoq into ErrTruncated.
func streamErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// Columns names the result columns.
func (r *Rows) Columns() []string { return r.columns }

// Next advances to the next row.
func (r *Rows) Next() bool {
	if r.done {
		return false
	}
	ev, err := r.stream.Next()
	switch {
	case err != nil:
		r.err = streamErr(err)
	case ev.Kind == EventRow:
		r.values = ev.Values
		return true
	case ev.Kind == EventEOQ:
	default:
		r.err = fmt.Errorf("query stream: unexpected event %d", ev.Kind)
	}
	r.done = true
	r.stream.Close()
	return false
}

// Values are the current row's values.
func (r *Rows) Values() []any { return r.values }

// Err is the error that ended the stream, if any.
func (r *Rows) Err() error { return r.err }

// Close releases the stream; it is safe to call more than once.
func (r *Rows) Close() { r.done = true; r.stream.Close() }

// QueryAll runs a query and collects every row.
func (c *Client) QueryAll(ctx context.Context, stmt Statement) ([]string, [][]any, error) {
	rows, err := c.Query(ctx, stmt)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		out = append(out, rows.Values())
	}
	return rows.Columns(), out, rows.Err()
}

// Stream is an open NDJSON event stream of a query or a subscription.
type Stream struct {
	ID    string // corro-query-id
	Hash  string // corro-query-hash
	body  io.ReadCloser
	dec   *json.Decoder
	bound *bound
}

func newStream(resp *http.Response, b *bound) *Stream {
	return &Stream{
		ID:    resp.Header.Get("corro-query-id"),
		Hash:  resp.Header.Get("corro-query-hash"),
		body:  resp.Body,
		dec:   json.NewDecoder(resp.Body),
		bound: b,
	}
}

// Next returns the next event. An error line comes back as *StreamError; a
// silent end of the body as io.EOF.
func (s *Stream) Next() (Event, error) {
	var ev Event
	if err := s.dec.Decode(&ev); err != nil {
		return Event{}, s.bound.err(err)
	}
	if ev.Kind == EventError {
		return ev, &StreamError{Message: ev.Error}
	}
	return ev, nil
}

// Close ends the stream.
func (s *Stream) Close() error {
	err := s.body.Close()
	s.bound.release()
	return err
}

// SubscribeOptions are the query-string parameters of a subscription.
type SubscribeOptions struct {
	// From replays changes after this change id; 0 means a snapshot.
	From     uint64
	SkipRows bool
}

func (o SubscribeOptions) query() string {
	v := url.Values{}
	if o.From > 0 {
		v.Set("from", strconv.FormatUint(o.From, 10))
	}
	if o.SkipRows {
		v.Set("skip_rows", "true")
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// Subscribe opens (or attaches to) the subscription for stmt.
func (c *Client) Subscribe(ctx context.Context, stmt Statement, opts SubscribeOptions) (*Stream, error) {
	return c.openStream(ctx, http.MethodPost, "/v1/subscriptions"+opts.query(), stmt)
}

// Resubscribe attaches to an existing subscription by id.
func (c *Client) Resubscribe(ctx context.Context, id string, opts SubscribeOptions) (*Stream, error) {
	return c.openStream(ctx, http.MethodGet, "/v1/subscriptions/"+url.PathEscape(id)+opts.query(), nil)
}

func (c *Client) openStream(ctx context.Context, method, path string, body any) (*Stream, error) {
	// The bound covers the request until the stream starts; a subscription
	// then runs as long as its caller wants.
	b := c.bound(ctx)
	resp, err := c.do(b.ctx, method, path, body)
	if err != nil {
		b.release()
		return nil, b.err(err)
	}
	if resp.StatusCode == http.StatusOK {
		b.stop()
		return newStream(resp, b), nil
	}
	defer b.release()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %w", ErrSubscriptionNotFound, apiError(resp))
	}
	return nil, b.err(apiError(resp))
}
