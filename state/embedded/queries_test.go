package embedded

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
)

func TestQueryStream(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name, qty) VALUES (10, 'a', 1), (20, 'b', 2), (30, 'c', 3)"))
	r := call(t, http.MethodPost, s.URL+"/v1/queries", stmt("SELECT id, name FROM items WHERE qty > ? ORDER BY id", 0))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "" && !strings.Contains(ct, "json") {
		t.Errorf("Content-Type %q", ct)
	}
	lines := strings.Split(string(r.body), "\n")
	want := []string{
		`{"columns":["id","name"]}`,
		`{"row":[1,[10,"a"]]}`,
		`{"row":[2,[20,"b"]]}`,
		`{"row":[3,[30,"c"]]}`,
	}
	if len(lines) != 6 || !reflect.DeepEqual(lines[:4], want) || lines[5] != "" {
		t.Fatalf("stream:\n%s", r.body)
	}
	evs := decodeLines(t, r.body)
	if eoq := evs[4]; eoq.Kind != corrosion.EventEOQ || eoq.HasChangeID || !strings.HasPrefix(lines[4], `{"eoq":{"time":`) {
		t.Errorf("eoq line %q", lines[4])
	}
}

func TestQueryValues(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO events (id, at, day) VALUES (1, '2024-01-02 03:04:05', '2024-01-02'), (2, 'later', 'not a date')"),
		stmt("INSERT INTO items (id, data, price) VALUES (1, x'00ff', 2)"))
	cases := []struct {
		name string
		sql  string
		want string // the row line
	}{
		{"integers", "SELECT 0, -1, 9223372036854775807, -9223372036854775808", `{"row":[1,[0,-1,9223372036854775807,-9223372036854775808]]}`},
		{"reals", "SELECT 1.0, 0.5, 2e20, 1e-7, -0.0, 100.0", `{"row":[1,[1.0,0.5,2e+20,1e-07,-0.0,100.0]]}`},
		{"infinity is null", "SELECT 9e999, -9e999", `{"row":[1,[null,null]]}`},
		{"null and text", `SELECT NULL, '', 'a"b', 'ü'`, `{"row":[1,[null,"","a\"b","ü"]]}`},
		{"blobs", "SELECT x'0102', x'', zeroblob(2)", `{"row":[1,[[1,2],[],[0,0]]]}`},
		{"real column keeps REAL", "SELECT price, data FROM items", `{"row":[1,[2.0,[0,255]]]}`},
		{"date columns keep their text", "SELECT at, day FROM events", `{"row":[1,["2024-01-02 03:04:05","2024-01-02"]]}`},
		{"date columns through a view", "SELECT e.at FROM (SELECT at FROM events) AS e", `{"row":[1,["2024-01-02 03:04:05"]]}`},
		{"date columns keep the order", "WITH e AS (SELECT * FROM events) SELECT at, day, ? FROM e ORDER BY id DESC -- last", `{"row":[1,["later","not a date",null]]}`},
	}
	for _, c := range cases {
		st := stmt(c.sql)
		if strings.Contains(c.sql, "?") {
			st = stmt(c.sql, nil)
		}
		r := call(t, http.MethodPost, s.URL+"/v1/queries", st)
		lines := strings.Split(string(r.body), "\n")
		if r.status != 200 || len(lines) < 2 || lines[1] != c.want {
			t.Errorf("%s: got %d %s\nwant row %s", c.name, r.status, r.body, c.want)
		}
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	notReadonly := `{"error":"statement is not readonly"}`
	cases := []struct {
		name   string
		stmt   corrosion.Statement
		status int
		body   string // exact body, or a substring of the error when it starts without '{'
	}{
		{"insert", stmt("INSERT INTO items (id) VALUES (1)"), 400, notReadonly},
		{"delete", stmt("DELETE FROM items"), 400, notReadonly},
		{"update lower case", stmt("update items set name = 'x'"), 400, notReadonly},
		{"create", stmt("CREATE TABLE x (id INTEGER NOT NULL PRIMARY KEY)"), 400, notReadonly},
		{"with insert", stmt("WITH v(x) AS (SELECT 1) INSERT INTO items (id) SELECT x FROM v"), 400, notReadonly},
		{"pragma set", stmt("PRAGMA user_version = 5"), 400, notReadonly},
		{"syntax", stmt("SELEC 1"), 400, "syntax error"},
		{"syntax in select", stmt("SELECT FROM WHERE"), 400, "syntax error"},
		{"unknown table", stmt("SELECT * FROM nope"), 400, "no such table"},
		{"unknown column", stmt("SELECT nope FROM items"), 400, "no such column"},
		{"two statements", stmt("SELECT 1; SELECT 2"), 400, ""},
		{"missing param", stmt("SELECT ?, ?", 1), 500, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, http.MethodPost, s.URL+"/v1/queries", c.stmt)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			var body struct{ Error string }
			r.json(t, &body)
			if strings.HasPrefix(c.body, "{") {
				if strings.TrimSpace(string(r.body)) != c.body {
					t.Errorf("body %s, want %s", r.body, c.body)
				}
			} else if body.Error == "" || !strings.Contains(body.Error, c.body) {
				t.Errorf("error %q, want it to contain %q", body.Error, c.body)
			}
		})
	}
	// Nothing was written by the refused statements.
	if _, rows := s.query(t, stmt("SELECT count(*) FROM items")); rows[0][0] != int64(0) {
		t.Errorf("items were written: %v", rows)
	}
}

func TestQueryReadonlyStatements(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	for _, q := range []string{
		"SELECT 1",
		"VALUES (1), (2)",
		"WITH x AS (SELECT 'a' AS v) SELECT replace(v, 'a', 'b') FROM x",
		"SELECT name FROM pragma_table_info('items')",
		"PRAGMA user_version",
		"EXPLAIN QUERY PLAN SELECT * FROM items",
		"SELECT * FROM __corro_uc_meta",
	} {
		r := call(t, http.MethodPost, s.URL+"/v1/queries", stmt(q))
		if r.status != 200 || !strings.Contains(string(r.body), `{"eoq":`) {
			t.Errorf("%q: %d %s", q, r.status, r.body)
		}
	}
}

// TestQueryErrorAfterHeaders checks an error raised while rows stream: it
// ends the stream as an error line, without eoq.
func TestQueryErrorAfterHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct{ sql, errHas string }{
		{"SELECT 1 UNION ALL SELECT abs(-9223372036854775807 - 1)", "overflow"},
		{"SELECT 'ok' UNION ALL SELECT CAST(x'61ff' AS TEXT)", "utf-8"},
	}
	for _, c := range cases {
		r := call(t, http.MethodPost, s.URL+"/v1/queries", stmt(c.sql))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		evs := decodeLines(t, r.body)
		last := evs[len(evs)-1]
		if evs[0].Kind != corrosion.EventColumns || evs[1].Kind != corrosion.EventRow || last.Kind != corrosion.EventError || !strings.Contains(last.Error, c.errHas) {
			t.Errorf("stream:\n%s", r.body)
		}
		for _, ev := range evs {
			if ev.Kind == corrosion.EventEOQ {
				t.Errorf("stream has eoq after an error:\n%s", r.body)
			}
		}
	}
}
