package embedded

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/test/harness/poll"
)

var actorIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestTransactionSuccessShape(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	r := call(t, http.MethodPost, s.URL+"/v1/transactions", []corrosion.Statement{
		stmt("INSERT INTO items (id, name) VALUES (?, ?)", 1, "a"),
		stmt("INSERT INTO items (id, name) VALUES (?, ?), (?, ?)", 2, "b", 3, "c"),
	})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var raw map[string]json.RawMessage
	r.json(t, &raw)
	for _, k := range []string{"results", "time", "version", "actor_id"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("response lacks %q: %s", k, r.body)
		}
	}
	if _, ok := raw["error"]; ok {
		t.Errorf("200 response has an error: %s", r.body)
	}
	var res corrosion.ExecResult
	r.json(t, &res)
	if len(res.Results) != 2 || res.Results[0].RowsAffected != 1 || res.Results[1].RowsAffected != 2 {
		t.Errorf("results = %+v, want rows_affected 1 and 2", res.Results)
	}
	for i, sr := range res.Results {
		if sr.Error != "" || sr.Time < 0 {
			t.Errorf("result %d = %+v", i, sr)
		}
	}
	if res.Version == nil || *res.Version < 1 {
		t.Errorf("version = %v, want a positive db_version", res.Version)
	}
	if !actorIDRe.MatchString(res.ActorID) {
		t.Errorf("actor_id %q is not 32 lowercase hex characters", res.ActorID)
	}
}

func TestTransactionVersion(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	v1 := s.exec(t, stmt("INSERT INTO items (id) VALUES (1)")).Version
	steps := []struct {
		name    string
		stmts   []corrosion.Statement
		changes bool
	}{
		{"no-op update", []corrosion.Statement{stmt("UPDATE items SET name = 'x' WHERE 0")}, false},
		{"delete of nothing", []corrosion.Statement{stmt("DELETE FROM items WHERE id = 999")}, false},
		{"ordinary index", []corrosion.Statement{stmt("CREATE INDEX IF NOT EXISTS items_name ON items (name)")}, false},
		{"update", []corrosion.Statement{stmt("UPDATE items SET name = 'y' WHERE id = 1")}, true},
		{"insert and delete", []corrosion.Statement{stmt("INSERT INTO items (id) VALUES (2)"), stmt("DELETE FROM items WHERE id = 2")}, true},
	}
	last := *v1
	for _, st := range steps {
		res := s.exec(t, st.stmts...)
		switch {
		case !st.changes && res.Version != nil:
			t.Errorf("%s: version = %d, want null", st.name, *res.Version)
		case st.changes && res.Version == nil:
			t.Errorf("%s: version is null, want > %d", st.name, last)
		case st.changes && *res.Version <= last:
			t.Errorf("%s: version = %d, want > %d", st.name, *res.Version, last)
		case st.changes:
			last = *res.Version
		}
	}
}

func TestTransactionErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name) VALUES (1, 'one')"))
	cases := []struct {
		name   string
		body   string
		status int
		errHas string
	}{
		{"empty array", `[]`, 400, "at least 1 statement is required"},
		{"missing table", `["INSERT INTO items (id) VALUES (100)", "INSERT INTO nope VALUES (1)"]`, 500, "no such table"},
		{"constraint", `["INSERT INTO items (id) VALUES (100)", "INSERT INTO items (id) VALUES (1)"]`, 500, "UNIQUE constraint"},
		{"select", `["INSERT INTO items (id) VALUES (100)", "SELECT * FROM items"]`, 500, ""},
		{"returning", `["INSERT INTO items (id) VALUES (100) RETURNING id"]`, 500, ""},
		{"syntax", `["INSERT INTO items (id) VALUES (100)", "INSER INTO items"]`, 500, "syntax error"},
		{"unknown named param", `[["INSERT INTO items (id) VALUES (:id)", {":id": 100, ":nope": 1}]]`, 500, ":nope"},
		{"too few params", `[["INSERT INTO items (id, name) VALUES (?, ?)", [100]]]`, 500, ""},
		{"too many params", `[["INSERT INTO items (id) VALUES (?)", [100, 101]]]`, 500, ""},
		{"two statements in one", `["INSERT INTO items (id) VALUES (100); INSERT INTO items (id) VALUES (101)"]`, 500, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, http.MethodPost, s.URL+"/v1/transactions", c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var raw map[string]json.RawMessage
			r.json(t, &raw)
			if string(raw["version"]) != "null" {
				t.Errorf("version = %s, want null", raw["version"])
			}
			var res corrosion.ExecResult
			r.json(t, &res)
			if len(res.Results) != 1 || res.Results[0].Error == "" || !strings.Contains(res.Results[0].Error, c.errHas) {
				t.Errorf("results = %+v, want one error containing %q", res.Results, c.errHas)
			}
			if !actorIDRe.MatchString(res.ActorID) {
				t.Errorf("actor_id %q", res.ActorID)
			}
		})
	}
	// Every failed transaction was rolled back as a whole.
	_, rows := s.query(t, stmt("SELECT id, name FROM items ORDER BY id"))
	if len(rows) != 1 || rows[0][0] != int64(1) || rows[0][1] != "one" {
		t.Errorf("items after failed transactions = %v, want only [1 one]", rows)
	}
}

func TestTransactionEmptyArrayBody(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	r := call(t, http.MethodPost, s.URL+"/v1/transactions", `[]`)
	var body struct {
		Results []map[string]any `json:"results"`
		Time    *float64         `json:"time"`
		Version *int64           `json:"version"`
		ActorID string           `json:"actor_id"`
	}
	r.json(t, &body)
	if r.status != 400 || len(body.Results) != 1 || body.Results[0]["error"] != "at least 1 statement is required" ||
		len(body.Results[0]) != 1 || body.Time == nil || body.Version != nil || body.ActorID != s.DB().ActorID() {
		t.Errorf("got %d %s", r.status, r.body)
	}
}

func TestTransactionParams(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct {
		name string
		body string
		id   int64
		want string // name column afterwards
	}{
		{"bare string", `"INSERT INTO items (id, name) VALUES (1, 'bare')"`, 1, "bare"},
		{"object positional", `{"query":"INSERT INTO items (id, name) VALUES (?, ?)","params":[2,"pos"]}`, 2, "pos"},
		{"object named colon", `{"query":"INSERT INTO items (id, name) VALUES (:id, :n)","named_params":{":id":3,":n":"colon"}}`, 3, "colon"},
		{"tuple named at", `["INSERT INTO items (id, name) VALUES (@id, @n)",{"@id":4,"@n":"at"}]`, 4, "at"},
		{"tuple named dollar", `["INSERT INTO items (id, name) VALUES ($id, $n)",{"$id":5,"$n":"dollar"}]`, 5, "dollar"},
		{"tuple positional", `["INSERT INTO items (id, name) VALUES (?, ?)",[6,"tuple"]]`, 6, "tuple"},
		{"numbered", `["INSERT INTO items (id, name) VALUES (?2, ?1)",["numbered",7]]`, 7, "numbered"},
		{"params win over named", `{"query":"INSERT INTO items (id, name) VALUES (?, ?)","params":[8,"params"],"named_params":{":x":1}}`, 8, "params"},
		{"positional binds named markers", `["INSERT INTO items (id, name) VALUES (:id, :n)",[9,"by index"]]`, 9, "by index"},
		{"repeated name", `["INSERT INTO items (id, name, qty) VALUES (:id, 'rep', :id)",{":id":10}]`, 10, "rep"},
		{"named not supplied is NULL", `["INSERT INTO items (id, note) VALUES (:id, :note)",{":id":11}]`, 11, ""},
	}
	for _, c := range cases {
		r := call(t, http.MethodPost, s.URL+"/v1/transactions", "["+c.body+"]")
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
			continue
		}
		_, rows := s.query(t, stmt("SELECT name FROM items WHERE id = ?", c.id))
		if len(rows) != 1 || rows[0][0] != c.want {
			t.Errorf("%s: name = %v, want %q", c.name, rows, c.want)
		}
	}
}

// TestTransactionParamKinds stores each JSON parameter kind in an untyped
// context and checks the SQLite type it was bound as.
func TestParamKinds(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct {
		param    string
		typ      string
		rawValue string // the value as the response writes it
	}{
		{`null`, "null", `null`},
		{`true`, "integer", `1`},
		{`false`, "integer", `0`},
		{`42`, "integer", `42`},
		{`-7`, "integer", `-7`},
		{`9223372036854775807`, "integer", `9223372036854775807`},
		{`-9223372036854775808`, "integer", `-9223372036854775808`},
		{`9223372036854775808`, "real", `9.223372036854776e+18`},
		{`18446744073709551615`, "real", `1.8446744073709552e+19`},
		{`1.5`, "real", `1.5`},
		{`1.0`, "real", `1.0`},
		{`1e3`, "real", `1000.0`},
		{`-0`, "real", `-0.0`},
		{`"text"`, "text", `"text"`},
		{`""`, "text", `""`},
		{`[1,2,255]`, "blob", `[1,2,255]`},
		{`[]`, "blob", `[]`},
		{`[256]`, "text", `"[256]"`},
		{`[1,"a"]`, "text", `"[1,\"a\"]"`},
		{`[1.0]`, "text", `"[1.0]"`},
		{`{"a":1}`, "text", `"{\"a\":1}"`},
	}
	for _, c := range cases {
		body := `["SELECT typeof(?1), ?1", [` + c.param + `]]`
		r := call(t, http.MethodPost, s.URL+"/v1/queries", body)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", c.param, r.status, r.body)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
		want := `{"row":[1,["` + c.typ + `",` + c.rawValue + `]]}`
		if len(lines) != 3 || lines[1] != want {
			t.Errorf("%s: got %q, want row %s", c.param, r.body, want)
		}
	}
}

func TestTransactionBearerToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{token: "s3cret"})
	body := `["INSERT INTO items (id) VALUES (1)"]`
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		auth   string
		status int
	}{
		{"no token", "POST", "/v1/transactions", body, "", 401},
		{"wrong token", "POST", "/v1/transactions", body, "Bearer nope", 401},
		{"not bearer", "POST", "/v1/transactions", body, "s3cret", 401},
		{"query without token", "POST", "/v1/queries", `"SELECT 1"`, "", 401},
		{"subscription without token", "GET", "/v1/subscriptions/00000000-0000-4000-8000-000000000000", nil, "", 401},
		{"health without token", "GET", "/v1/health", nil, "", 401},
		{"right token", "POST", "/v1/transactions", body, "Bearer s3cret", 200},
		{"health with token", "GET", "/v1/health", nil, "Bearer s3cret", 200},
	}
	for _, c := range cases {
		r := call(t, c.method, s.URL+c.path, c.body, "Authorization", c.auth)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, r.status, c.status)
		}
		if c.status == 401 && len(r.body) != 0 {
			t.Errorf("%s: 401 body %q, want empty", c.name, r.body)
		}
	}
}

func TestFrameworkRejections(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct {
		name   string
		path   string
		body   string
		ctype  string
		status int
	}{
		{"tx no content type", "/v1/transactions", `["SELECT 1"]`, "", 415},
		{"tx text content type", "/v1/transactions", `["SELECT 1"]`, "text/plain", 415},
		{"tx json with charset", "/v1/transactions", `["INSERT INTO items (id) VALUES (1)"]`, "application/json; charset=utf-8", 200},
		{"tx +json suffix", "/v1/transactions", `["INSERT INTO items (id) VALUES (2)"]`, "application/vnd.api+json", 200},
		{"tx malformed", "/v1/transactions", `["SELECT 1"`, "application/json", 400},
		{"tx empty body", "/v1/transactions", ``, "application/json", 400},
		{"tx trailing garbage", "/v1/transactions", `[] x`, "application/json", 400},
		{"tx object not array", "/v1/transactions", `{"query":"SELECT 1"}`, "application/json", 422},
		{"tx number statement", "/v1/transactions", `[1]`, "application/json", 422},
		{"tx null", "/v1/transactions", `null`, "application/json", 422},
		{"tx bad timeout", "/v1/transactions?timeout=soon", `["INSERT INTO items (id) VALUES (3)"]`, "application/json", 400},
		{"tx timeout", "/v1/transactions?timeout=5", `["INSERT INTO items (id) VALUES (4)"]`, "application/json", 200},
		{"query null", "/v1/queries", `null`, "application/json", 422},
		{"query bad timeout", "/v1/queries?timeout=-1", `"SELECT 1"`, "application/json", 400},
		{"query no timeout", "/v1/queries?timeout=0", `"SELECT 1"`, "application/json", 200},
		{"tx tuple of three", "/v1/transactions", `[["SELECT 1", [], 3]]`, "application/json", 422},
		{"query no content type", "/v1/queries", `"SELECT 1"`, "", 415},
		{"query malformed", "/v1/queries", `{"query":`, "application/json", 400},
		{"query wrong shape", "/v1/queries", `["SELECT 1"]`, "application/json", 422},
		{"sub no content type", "/v1/subscriptions", `"SELECT id FROM items"`, "", 415},
		{"sub malformed", "/v1/subscriptions", `"SELECT`, "application/json", 400},
		{"sub wrong shape", "/v1/subscriptions", `42`, "application/json", 422},
	}
	for _, c := range cases {
		r := call(t, http.MethodPost, s.URL+c.path, c.body, "Content-Type", c.ctype)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	r := call(t, http.MethodGet, s.URL+"/v1/health", nil)
	var body struct {
		Response map[string]json.Number `json:"response"`
	}
	r.json(t, &body)
	if r.status != 200 || body.Response == nil {
		t.Fatalf("health: %d %s", r.status, r.body)
	}
	for _, k := range []string{"gaps", "members", "p99_lag", "queue_size"} {
		if _, ok := body.Response[k]; !ok {
			t.Errorf("health response lacks %s: %s", k, r.body)
		}
	}
}

func TestTableStats(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id) VALUES (1), (2)"), stmt("INSERT INTO tags VALUES (1, 'x')"))
	r := call(t, http.MethodPost, s.URL+"/v1/table_stats", `{"tables":["items","tags","nope"]}`)
	var body struct {
		Total   int64    `json:"total_row_count"`
		Invalid []string `json:"invalid_tables"`
	}
	r.json(t, &body)
	if r.status != 200 || body.Total != 3 || len(body.Invalid) != 1 || body.Invalid[0] != "nope" {
		t.Errorf("table_stats: %d %s", r.status, r.body)
	}
}

// TestTransactionRowStatements follows rusqlite's execute: a statement that
// produces a row fails the transaction, one that produces none is fine.
func TestTransactionRowStatements(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id) VALUES (1)"))
	cases := []struct {
		sql    string
		status int
		rows   int64
	}{
		{"SELECT * FROM items", 500, 0},
		{"SELECT * FROM items WHERE 0", 200, -1},
		{"VALUES (1)", 500, 0},
		{"PRAGMA user_version", 500, 0},
		{"INSERT INTO items (id) VALUES (5) RETURNING id", 500, 0},
		{"UPDATE items SET name = 'x' WHERE id = 999 RETURNING id", 200, 0},
		{"WITH v(x) AS (VALUES (9), (10)) INSERT INTO items (id) SELECT x FROM v", 200, 2},
		{"WITH v(x) AS (VALUES (11)) SELECT x FROM v", 500, 0},
	}
	for _, c := range cases {
		r := call(t, http.MethodPost, s.URL+"/v1/transactions", []corrosion.Statement{stmt(c.sql)})
		if r.status != c.status {
			t.Errorf("%s: %d %s", c.sql, r.status, r.body)
			continue
		}
		var res corrosion.ExecResult
		r.json(t, &res)
		if c.status == 200 && c.rows >= 0 && res.Results[0].RowsAffected != c.rows {
			t.Errorf("%s: rows_affected %d, want %d", c.sql, res.Results[0].RowsAffected, c.rows)
		}
	}
	_, rows := s.query(t, stmt("SELECT id FROM items ORDER BY id"))
	if len(rows) != 3 || rows[0][0] != int64(1) || rows[1][0] != int64(9) || rows[2][0] != int64(10) {
		t.Errorf("items = %v, want 1, 9, 10", rows)
	}
}

// TestConcurrencyLimit holds table_stats' 4 slots with requests whose bodies
// never end: the next request gets a 503.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	var writers []*io.PipeWriter
	done := make(chan error, 4)
	// Fresh connections: a pooled one left by another test's server on a
	// reused port would fail, and a pipe body cannot be retried.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 4 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/table_stats", pr)
		req.Header.Set("Content-Type", "application/json")
		go func() {
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		pw.Write([]byte(`{"tables":`)) // the handler now waits for the rest
	}
	var last reply
	poll.Eventually(t, "a 503", func() bool {
		last = call(t, http.MethodPost, s.URL+"/v1/table_stats", `{"tables":[]}`)
		return last.status == http.StatusServiceUnavailable
	})
	if !strings.Contains(string(last.body), "max concurrency limit reached") {
		t.Errorf("503 body %q", last.body)
	}
	if r := call(t, http.MethodPost, s.URL+"/v1/transactions", `["INSERT INTO items (id) VALUES (1)"]`); r.status != 200 {
		t.Errorf("other routes have their own limit: %d", r.status)
	}
	for _, pw := range writers {
		pw.Write([]byte(`["items"]}`))
		pw.Close()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Errorf("a request holding a slot failed: %v", err)
		}
	}
	if r := call(t, http.MethodPost, s.URL+"/v1/table_stats", `{"tables":[]}`); r.status != 200 {
		t.Errorf("after the slots freed up: %d", r.status)
	}
}
