package embedded

import (
	"context"
	"database/sql"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
)

func TestParamIndexes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sql   string
		slots []string
	}{
		{"SELECT 1", nil},
		{"SELECT ?, ?", []string{"", ""}},
		{"SELECT ?2, ?1", []string{"?1", "?2"}},
		{"SELECT ?3", []string{"", "", "?3"}},
		{"SELECT :a, ?, :a, @b, $c", []string{":a", "", "@b", "$c"}},
		{"SELECT ?2, ?", []string{"", "?2", ""}},
		{"SELECT ':a', \"?\", x'3f' -- ?\n, ?", []string{""}},
		{"SELECT :a, :A", []string{":a", ":A"}},
	}
	for _, c := range cases {
		_, slots := paramIndexes(lex(c.sql))
		if !reflect.DeepEqual(slots, c.slots) {
			t.Errorf("%q: slots %q, want %q", c.sql, slots, c.slots)
		}
	}
}

// TestParamNumberingMatchesSQLite binds each slot with its own index and
// checks that SQLite agrees about which marker is which.
func TestParamNumberingMatchesSQLite(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	cases := []string{
		"SELECT ?, ?, ?",
		"SELECT ?2, ?1, ?",
		"SELECT :a, ?, :a, @b, $c, ?",
		"SELECT ?3, :x, ?",
	}
	for _, q := range cases {
		toks := lex(q)
		_, slots := paramIndexes(toks)
		params := make([]any, len(slots))
		for i := range params {
			params[i] = int64(i + 1)
		}
		_, rows, err := queryStmt(db, corrosion.Statement{Query: q, Params: params})
		if err != nil {
			t.Errorf("%q: %v", q, err)
			continue
		}
		// Each marker's value is its index; compare with our numbering.
		indexes, _ := paramIndexes(toks)
		var want []any
		for i := range toks {
			if idx, ok := indexes[i]; ok {
				want = append(want, int64(idx))
			}
		}
		if !reflect.DeepEqual(rows[0], want) {
			t.Errorf("%q: SQLite bound %v, we numbered %v", q, rows[0], want)
		}
	}
}

func queryStmt(db *DB, st corrosion.Statement) ([]string, [][]any, error) {
	var cols []string
	var out [][]any
	err := db.Query(context.Background(), st,
		func(c []string) error { cols = c; return nil },
		func(r []any) error { out = append(out, r); return nil })
	return cols, out, err
}

func TestExpandSQL(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		stmt corrosion.Statement
		want string
		err  bool
	}{
		{"no params", corrosion.Stmt("SELECT * FROM t"), "SELECT * FROM t", false},
		{"kinds", corrosion.Stmt("SELECT ?, ?, ?, ?, ?, ?", nil, int64(-3), "it's", []byte{0xab, 1}, 1.0, []byte{}),
			"SELECT NULL, -3, 'it''s', x'ab01', 1.0, x''", false},
		{"reals", corrosion.Stmt("SELECT ?, ?, ?, ?", 0.1, 1e20, 2.5e-7, 1e15), "SELECT 0.1, 1.0e+20, 2.5e-07, 1.0e+15", false},
		{"numbered", corrosion.Stmt("SELECT ?2, ?1", int64(1), int64(2)), "SELECT 2, 1", false},
		{"positional into named", corrosion.Stmt("SELECT :a, ?, :a", int64(1), int64(2)), "SELECT 1, 2, 1", false},
		{"named", corrosion.Statement{Query: "SELECT :a, @b, :a, $c", NamedParams: map[string]any{":a": int64(1), "@b": "x", ":unused": int64(9)}},
			"SELECT 1, 'x', 1, NULL", false},
		{"missing positional is NULL", corrosion.Stmt("SELECT ?, ?", int64(1)), "SELECT 1, NULL", false},
		{"too many", corrosion.Stmt("SELECT ?", int64(1), int64(2)), "", true},
		{"markers in strings stay", corrosion.Stmt("SELECT '?', ? -- ?", int64(5)), "SELECT '?', 5 -- ?", false},
	}
	for _, c := range cases {
		got, err := expandSQL(c.stmt)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: expandSQL = %q, %v; want %q (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}

// TestSQLiteRealMatchesPrintf compares our "%!.15g" with SQLite's own.
func TestSQLiteRealMatchesPrintf(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	values := []float64{0, 1, -1, 0.5, 0.1, 0.1 + 0.2, 1.0 / 3, 100, 1e14, 1e15, 1e16, 123456789012345678, 1e20, 1e100, 1e-4, 1e-5,
		2.5e-300, -7.25, math.MaxFloat64, math.SmallestNonzeroFloat64, 9007199254740993, 299792458.0, 6.02214076e23}
	for _, v := range values {
		var want string
		if err := db.QueryRow("SELECT printf('%!.15g', ?)", v).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := sqliteReal(v); got != want {
			t.Errorf("sqliteReal(%v) = %q, SQLite prints %q", v, got, want)
		}
	}
}

func TestBindArgs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		stmt corrosion.Statement
		err  string
	}{
		{"exact", corrosion.Stmt("SELECT ?, ?", 1, 2), ""},
		{"too few", corrosion.Stmt("SELECT ?, ?", 1), "Wrong number of parameters"},
		{"too many", corrosion.Stmt("SELECT ?", 1, 2), "Wrong number of parameters"},
		{"none for none", corrosion.Statement{Query: "SELECT 1"}, ""},
		{"none for one", corrosion.Statement{Query: "SELECT ?"}, "Wrong number of parameters"},
		{"unknown name", corrosion.Statement{Query: "SELECT :a", NamedParams: map[string]any{":a": 1, ":b": 2}}, "Invalid parameter name: :b"},
		{"name without sigil", corrosion.Statement{Query: "SELECT :a", NamedParams: map[string]any{"a": 1}}, "Invalid parameter name: a"},
		{"missing name", corrosion.Statement{Query: "SELECT :a, :b", NamedParams: map[string]any{":a": 1}}, ""},
	}
	for _, c := range cases {
		_, err := bindArgs(c.stmt, lex(c.stmt.Query))
		if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}

func TestPlanSubscription(t *testing.T) {
	t.Parallel()
	pks := func(table string) ([]string, error) {
		switch strings.ToLower(table) {
		case "items":
			return []string{"id"}, nil
		case "tags":
			return []string{"item_id", "tag"}, nil
		}
		return nil, &SchemaError{Table: table, Reason: "not found"}
	}
	cases := []struct {
		sql  string
		want string
		err  string
	}{
		{"SELECT name FROM items", `SELECT "items"."id", name FROM items`, ""},
		{"select DISTINCT name FROM items i WHERE i.qty > 0", `select DISTINCT "i"."id", name FROM items i WHERE i.qty > 0`, ""},
		{"SELECT i.name, t.tag FROM items AS i LEFT JOIN tags t ON t.item_id = i.id ORDER BY 1",
			`SELECT "i"."id", "t"."item_id", "t"."tag", i.name, t.tag FROM items AS i LEFT JOIN tags t ON t.item_id = i.id ORDER BY 1`, ""},
		{"SELECT * FROM items, tags USING (id)", `SELECT "items"."id", "tags"."item_id", "tags"."tag", * FROM items, tags USING (id)`, ""},
		{"SELECT * FROM main.items", `SELECT "items"."id", * FROM main.items`, ""},
		{"SELECT x FROM (SELECT 1 AS x) sub JOIN items ON 1", `SELECT "items"."id", x FROM (SELECT 1 AS x) sub JOIN items ON 1`, ""},
		{"SELECT 1", "", "at least 1 table"},
		{"SELECT value FROM json_each('[1]')", "", "at least 1 table"},
		{"INSERT INTO items VALUES (1)", "", "unsupported statement"},
		{"WITH x AS (SELECT 1) SELECT * FROM items", "", "unsupported statement"},
	}
	for _, c := range cases {
		plan, err := planSubscription(c.sql, pks)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.sql, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.sql, err)
		case plan.sql != c.want:
			t.Errorf("%q:\n got %s\nwant %s", c.sql, plan.sql, c.want)
		}
	}
}
