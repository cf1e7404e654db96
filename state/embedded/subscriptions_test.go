package embedded

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/test/harness/poll"
)

var (
	uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hashRe = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func subscribeURL(base string, query string) string {
	if query == "" {
		return base + "/v1/subscriptions"
	}
	return base + "/v1/subscriptions?" + query
}

func TestSubscriptionNew(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name, qty) VALUES (1, 'a', 1), (2, 'b', 2)"))
	q := stmt("SELECT name, qty FROM items WHERE qty > ?", 0)
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), q)
	if sub.status != 200 {
		t.Fatalf("status %d", sub.status)
	}
	if ct := sub.header.Get("Content-Type"); ct != "" {
		t.Errorf("a subscription stream has Content-Type %q; Corrosion sends none", ct)
	}
	id, hash := sub.header.Get("corro-query-id"), sub.header.Get("corro-query-hash")
	if !uuidRe.MatchString(id) || !hashRe.MatchString(hash) {
		t.Errorf("headers id=%q hash=%q", id, hash)
	}
	if want := queryHash("SELECT name, qty FROM items WHERE qty > 0"); hash != want {
		t.Errorf("hash %s, want seahash of the expanded SQL %s", hash, want)
	}
	cols, rows, eoq := sub.snapshot(t)
	if !reflect.DeepEqual(cols, []string{"name", "qty"}) {
		t.Errorf("columns %v", cols)
	}
	wantRows := []corrosion.Event{
		{Kind: corrosion.EventRow, RowID: 1, Values: []any{"a", int64(1)}},
		{Kind: corrosion.EventRow, RowID: 2, Values: []any{"b", int64(2)}},
	}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("rows %+v", rows)
	}
	if !eoq.HasChangeID || eoq.ChangeID != 0 {
		t.Errorf("eoq %+v, want change_id 0", eoq)
	}
}

// TestSubscriptionChanges walks through insert, update and delete semantics
// and checks that change ids are contiguous from 1.
func TestSubscriptionChanges(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name, qty) VALUES (1, 'a', 1), (2, 'b', 2)"))
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT name, qty FROM items WHERE qty > 0"))
	sub.snapshot(t)
	type change struct {
		typ   corrosion.ChangeType
		rowid int64
		vals  []any
	}
	steps := []struct {
		name string
		sql  string
		want []change
	}{
		{"insert", "INSERT INTO items (id, name, qty) VALUES (3, 'c', 3)", []change{{"insert", 3, []any{"c", int64(3)}}}},
		{"update selected", "UPDATE items SET name = 'A' WHERE id = 1", []change{{"update", 1, []any{"A", int64(1)}}}},
		// An unselected column changes: nothing is sent, so the next
		// change must be the following step's.
		{"update unselected", "UPDATE items SET note = 'n' WHERE id = 1", nil},
		{"same value", "UPDATE items SET name = 'A' WHERE id = 1", nil},
		{"leave result", "UPDATE items SET qty = 0, name = 'gone' WHERE id = 2", []change{{"delete", 2, []any{"b", int64(2)}}}},
		{"enter result", "UPDATE items SET qty = 5 WHERE id = 2", []change{{"insert", 4, []any{"gone", int64(5)}}}},
		{"delete", "DELETE FROM items WHERE id = 3", []change{{"delete", 3, []any{"c", int64(3)}}}},
		{"other table", "INSERT INTO tags VALUES (1, 'x')", nil},
		{"two rows", "UPDATE items SET qty = qty + 10", []change{{"update", 1, []any{"A", int64(11)}}, {"update", 4, []any{"gone", int64(15)}}}},
	}
	nextID := uint64(1)
	for _, st := range steps {
		s.exec(t, stmt(st.sql))
		var got []change
		for range st.want {
			ev := sub.change(t)
			if ev.ChangeID != nextID {
				t.Fatalf("%s: change id %d, want %d", st.name, ev.ChangeID, nextID)
			}
			nextID++
			got = append(got, change{ev.Change, ev.RowID, ev.Values})
		}
		if len(got) > 1 {
			// Order within one batch is not specified.
			if got[0].rowid > got[1].rowid {
				got[0], got[1] = got[1], got[0]
			}
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
}

func TestSubscriptionJoin(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')"), stmt("INSERT INTO tags VALUES (1, 'x')"))
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""),
		stmt("SELECT i.name, t.tag FROM items AS i JOIN tags t ON t.item_id = i.id"))
	if sub.status != 200 {
		t.Fatalf("status %d", sub.status)
	}
	cols, rows, _ := sub.snapshot(t)
	if !reflect.DeepEqual(cols, []string{"name", "tag"}) || len(rows) != 1 || !reflect.DeepEqual(rows[0].Values, []any{"a", "x"}) {
		t.Fatalf("snapshot %v %+v", cols, rows)
	}
	s.exec(t, stmt("INSERT INTO tags VALUES (1, 'y'), (2, 'z')"))
	got := map[string]bool{}
	for range 2 {
		ev := sub.change(t)
		if ev.Change != corrosion.ChangeInsert {
			t.Errorf("want inserts, got %+v", ev)
		}
		got[ev.Values[0].(string)+ev.Values[1].(string)] = true
	}
	if !got["ay"] || !got["bz"] {
		t.Errorf("inserted rows %v", got)
	}
	s.exec(t, stmt("UPDATE items SET name = 'B' WHERE id = 2"))
	if ev := sub.change(t); ev.Change != corrosion.ChangeUpdate || !reflect.DeepEqual(ev.Values, []any{"B", "z"}) {
		t.Errorf("want update of the joined row, got %+v", ev)
	}
	s.exec(t, stmt("DELETE FROM tags WHERE item_id = 2"))
	if ev := sub.change(t); ev.Change != corrosion.ChangeDelete || !reflect.DeepEqual(ev.Values, []any{"B", "z"}) {
		t.Errorf("want delete of the joined row, got %+v", ev)
	}
}

func TestSubscriptionDedup(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, name) VALUES (1, 'a')"))
	first := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT id, name FROM items WHERE id = ?", 1))
	first.snapshot(t)
	id := first.header.Get("corro-query-id")
	s.exec(t, stmt("UPDATE items SET name = 'b' WHERE id = 1"))
	first.change(t)

	cases := []struct {
		name string
		stmt corrosion.Statement
		same bool
	}{
		{"same params", stmt("SELECT id, name FROM items WHERE id = ?", 1), true},
		{"literal equal to the expansion", stmt("SELECT id, name FROM items WHERE id = 1"), true},
		{"other param value", stmt("SELECT id, name FROM items WHERE id = ?", 2), false},
		{"whitespace", stmt("SELECT id,  name FROM items WHERE id = ?", 1), false},
		{"float param", stmt("SELECT id, name FROM items WHERE id = ?", 1.0), false},
	}
	for _, c := range cases {
		sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), c.stmt)
		if sub.status != 200 {
			t.Fatalf("%s: status %d", c.name, sub.status)
		}
		got := sub.header.Get("corro-query-id")
		if (got == id) != c.same {
			t.Errorf("%s: id %s vs first %s, want same=%v", c.name, got, id, c.same)
		}
		_, rows, eoq := sub.snapshot(t)
		switch {
		case c.same && (eoq.ChangeID != 1 || len(rows) != 1 || rows[0].RowID != 1 || rows[0].Values[1] != "b"):
			t.Errorf("%s: existing snapshot rows %+v eoq %+v, want current rows and change_id 1", c.name, rows, eoq)
		case !c.same && eoq.ChangeID != 0:
			t.Errorf("%s: new subscription eoq %+v", c.name, eoq)
		}
		sub.close()
	}
}

func TestSubscriptionResume(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	q := stmt("SELECT id, qty FROM items")
	first := open(t, http.MethodPost, subscribeURL(s.URL, ""), q)
	first.snapshot(t)
	id := first.header.Get("corro-query-id")
	for i := 1; i <= 5; i++ {
		s.exec(t, stmt("INSERT INTO items (id, qty) VALUES (?, ?)", i, i))
	}
	for range 5 {
		first.change(t)
	}
	first.close()

	get := func(query string) *stream {
		u := s.URL + "/v1/subscriptions/" + id
		if query != "" {
			u += "?" + query
		}
		return open(t, http.MethodGet, u, nil)
	}
	t.Run("GET without from is a snapshot", func(t *testing.T) {
		sub := get("")
		if sub.status != 200 || sub.header.Get("corro-query-id") != id || !hashRe.MatchString(sub.header.Get("corro-query-hash")) {
			t.Fatalf("status %d headers %v", sub.status, sub.header)
		}
		_, rows, eoq := sub.snapshot(t)
		if len(rows) != 5 || eoq.ChangeID != 5 {
			t.Errorf("rows %d eoq %+v", len(rows), eoq)
		}
	})
	t.Run("from=0 is a snapshot", func(t *testing.T) {
		_, rows, eoq := get("from=0").snapshot(t)
		if len(rows) != 5 || eoq.ChangeID != 5 {
			t.Errorf("rows %d eoq %+v", len(rows), eoq)
		}
	})
	for _, method := range []string{"GET", "POST"} {
		t.Run(method+" from=2 replays then streams live", func(t *testing.T) {
			var sub *stream
			if method == "GET" {
				sub = get("from=2")
			} else {
				sub = open(t, http.MethodPost, subscribeURL(s.URL, "from=2"), q)
			}
			if sub.status != 200 {
				t.Fatalf("status %d", sub.status)
			}
			for want := uint64(3); want <= 5; want++ {
				if ev := sub.change(t); ev.ChangeID != want || ev.RowID != int64(want) {
					t.Fatalf("replayed %+v, want change %d", ev, want)
				}
			}
			s.exec(t, stmt("UPDATE items SET qty = qty + 1 WHERE id = 1"))
			ev := sub.change(t)
			if ev.Change != corrosion.ChangeUpdate || ev.RowID != 1 || ev.ChangeID < 6 {
				t.Errorf("live change %+v", ev)
			}
		})
	}
	t.Run("skip_rows", func(t *testing.T) {
		sub := get("skip_rows=true")
		s.exec(t, stmt("INSERT INTO items (id, qty) VALUES (100, 1)"))
		// No snapshot: only changes, possibly an earlier update still in
		// flight when the stream attached, then the insert.
		for {
			ev := sub.next(t)
			if ev.Kind != corrosion.EventChange {
				t.Fatalf("event with skip_rows: %+v", ev)
			}
			if ev.Change == corrosion.ChangeInsert && ev.Values[0] == int64(100) {
				break
			}
		}
	})
}

func TestSubscriptionSkipRowsNew(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id) VALUES (1)"))
	sub := open(t, http.MethodPost, subscribeURL(s.URL, "skip_rows=true"), stmt("SELECT id FROM items"))
	if sub.status != 200 || !uuidRe.MatchString(sub.header.Get("corro-query-id")) {
		t.Fatalf("status %d", sub.status)
	}
	s.exec(t, stmt("INSERT INTO items (id) VALUES (2)"))
	ev := sub.next(t)
	if ev.Kind != corrosion.EventChange || ev.ChangeID != 1 || ev.RowID != 2 {
		t.Errorf("first event %+v, want change 1 for rowid 2", ev)
	}
}

func TestSubscriptionErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	existing := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT id FROM items"))
	existing.snapshot(t)
	id := existing.header.Get("corro-query-id")
	cases := []struct {
		name   string
		method string
		url    string
		body   any
		status int
		errHas string
	}{
		{"from without subscription", "POST", subscribeURL(s.URL, "from=3"), stmt("SELECT name FROM items"), 400, "a `from` query param was supplied, but no existing subscription found"},
		{"table not in schema", "POST", subscribeURL(s.URL, ""), stmt("SELECT * FROM nope"), 400, "table not found in schema: nope"},
		{"joined table not in schema", "POST", subscribeURL(s.URL, ""), stmt("SELECT * FROM items JOIN nope ON nope.id = items.id"), 400, "table not found in schema: nope"},
		{"not a select", "POST", subscribeURL(s.URL, ""), stmt("DELETE FROM items"), 400, "unsupported statement"},
		{"IN table", "POST", subscribeURL(s.URL, ""), stmt("SELECT id FROM items WHERE id IN tags"), 400, "IN tags"},
		{"no table", "POST", subscribeURL(s.URL, ""), stmt("SELECT 1"), 400, "at least 1 table is required"},
		{"syntax", "POST", subscribeURL(s.URL, ""), stmt("SELECT id FROM items WHERE"), 400, ""},
		{"bad skip_rows", "POST", subscribeURL(s.URL, "skip_rows=yes"), stmt("SELECT id FROM items"), 400, ""},
		{"bad from", "GET", s.URL + "/v1/subscriptions/" + id + "?from=-1", nil, 400, ""},
		{"unknown id", "GET", s.URL + "/v1/subscriptions/00000000-0000-4000-8000-000000000000", nil, 404, ""},
		{"not a uuid", "GET", s.URL + "/v1/subscriptions/not-a-uuid", nil, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, c.method, c.url, c.body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.errHas != "" {
				var body struct{ Error string }
				r.json(t, &body)
				if !strings.Contains(body.Error, c.errHas) {
					t.Errorf("error %q, want %q", body.Error, c.errHas)
				}
			}
		})
	}
	t.Run("404 body", func(t *testing.T) {
		unknown := "00000000-0000-4000-8000-000000000000"
		r := call(t, "GET", s.URL+"/v1/subscriptions/"+unknown, nil)
		if r.header.Get("Content-Type") != "application/json" || strings.TrimSpace(string(r.body)) != `{"error":"could not find subscription with id `+unknown+`"}` {
			t.Errorf("404: %v %s", r.header, r.body)
		}
	})
}

func TestSubscriptionUUIDForms(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT id FROM items"))
	sub.snapshot(t)
	id := sub.header.Get("corro-query-id")
	for _, form := range []string{strings.ToUpper(id), strings.ReplaceAll(id, "-", "")} {
		r := open(t, "GET", s.URL+"/v1/subscriptions/"+form, nil)
		if r.status != 200 || r.header.Get("corro-query-id") != id {
			t.Errorf("GET %s: %d %v", form, r.status, r.header)
		}
	}
}

// TestSubscriptionPurged resumes from a change id the server has deleted:
// the answer is a 200 followed by an error line.
func TestSubscriptionPurged(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{subs: SubOptions{Retain: 2, PurgeEvery: 10 * time.Millisecond}})
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT id FROM items"))
	sub.snapshot(t)
	id := sub.header.Get("corro-query-id")
	for i := 1; i <= 10; i++ {
		s.exec(t, stmt("INSERT INTO items (id) VALUES (?)", i))
	}
	for range 10 {
		sub.change(t)
	}
	var purged corrosion.Event
	poll.Eventually(t, "a purged resume", func() bool {
		r := open(t, "GET", s.URL+"/v1/subscriptions/"+id+"?from=1", nil)
		defer r.close()
		if r.status != 200 {
			t.Fatalf("resume: status %d", r.status)
		}
		purged = r.next(t) // a replayed change until the purge, then the error
		if purged.Kind == corrosion.EventError {
			if _, err := r.nextErr(); err == nil {
				t.Errorf("the stream goes on after the error line")
			}
			return true
		}
		return false
	})
	if !strings.Contains(purged.Error, "subscription already deleted older changes, min change id: ") {
		t.Fatalf("purged resume: %+v", purged)
	}
	minID, err := strconv.Atoi(purged.Error[strings.LastIndex(purged.Error, " ")+1:])
	if err != nil || minID < 2 || minID > 8 {
		t.Errorf("min change id in %q", purged.Error)
	}
	// The newest changes are still there, and a snapshot always works.
	recent := open(t, "GET", s.URL+"/v1/subscriptions/"+id+"?from=9", nil)
	if ev := recent.change(t); ev.ChangeID != 10 {
		t.Errorf("from=9: %+v", ev)
	}
	_, rows, eoq := open(t, "GET", s.URL+"/v1/subscriptions/"+id, nil).snapshot(t)
	if len(rows) != 10 || eoq.ChangeID != 10 {
		t.Errorf("snapshot after purge: %d rows, eoq %+v", len(rows), eoq)
	}
}

// TestSubscriptionIdle drops a subscription nobody listens to.
func TestSubscriptionIdle(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{subs: SubOptions{IdleTimeout: 50 * time.Millisecond}})
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT id FROM items"))
	sub.snapshot(t)
	id := sub.header.Get("corro-query-id")
	sub.close()
	poll.Eventually(t, "the idle subscription to go", func() bool {
		return s.subs.get(id) == nil // a GET would attach and reset the idle clock
	})
	if r := call(t, "GET", s.URL+"/v1/subscriptions/"+id, nil); r.status != 404 {
		t.Errorf("GET after idle deletion: %d", r.status)
	}
}

func TestSeahash(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want uint64
	}{
		{"to be or not to be", 1988685042348123509},
	}
	for _, c := range cases {
		if got := seahash([]byte(c.in)); got != c.want {
			t.Errorf("seahash(%q) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := queryHash("to be or not to be"); got != "1b993a826f4ae575" {
		t.Errorf("queryHash = %s", got)
	}
}

// TestSubscriptionNumericEquality compares values as `IS NOT` does: 1 and
// 1.0 are the same value, '1' is not.
func TestSubscriptionNumericEquality(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	s.exec(t, stmt("INSERT INTO items (id, data) VALUES (1, 1)"))
	sub := open(t, http.MethodPost, subscribeURL(s.URL, ""), stmt("SELECT data FROM items"))
	sub.snapshot(t)
	s.exec(t, stmt("UPDATE items SET data = 1.0 WHERE id = 1")) // no change
	s.exec(t, stmt("UPDATE items SET data = '1' WHERE id = 1"))
	if ev := sub.change(t); ev.ChangeID != 1 || !reflect.DeepEqual(ev.Values, []any{"1"}) {
		t.Errorf("first change %+v, want the TEXT update as change 1", ev)
	}
}
