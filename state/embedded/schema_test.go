package embedded

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
)

func openTestDB(t *testing.T) *DB {
	t.Helper()
	db, err := OpenDB(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func userTables(t *testing.T, db *DB) []string {
	t.Helper()
	_, rows, err := db.queryAll(context.Background(),
		"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '__corro%' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r[0].(string))
	}
	return out
}

func TestSchemaRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		script string
		table  string // SchemaError.Table
		reason string // substring of the reason
	}{
		{"integer primary key", "CREATE TABLE a (id INTEGER PRIMARY KEY)", "a", "primary key column id must be declared NOT NULL"},
		{"nullable composite key", "CREATE TABLE a (x TEXT, y TEXT NOT NULL, PRIMARY KEY (x, y))", "a", "primary key column x must be declared NOT NULL"},
		{"not null without default", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL)", "a", "NOT NULL column n needs a DEFAULT"},
		{"unique column", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, n TEXT UNIQUE)", "a", "UNIQUE"},
		{"unique table constraint", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, n TEXT, UNIQUE (n))", "a", "UNIQUE"},
		{"unique index", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, n TEXT); CREATE UNIQUE INDEX a_n ON a (n)", "a", "UNIQUE index a_n"},
		{"references", "CREATE TABLE p (id TEXT NOT NULL PRIMARY KEY); CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, p TEXT REFERENCES p (id))", "a", "REFERENCES"},
		{"foreign key", "CREATE TABLE p (id TEXT NOT NULL PRIMARY KEY); CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, p TEXT, FOREIGN KEY (p) REFERENCES p (id))", "a", "foreign keys"},
		{"autoincrement", "CREATE TABLE a (id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT)", "a", "AUTOINCREMENT"},
		{"no primary key", "CREATE TABLE a (id TEXT NOT NULL DEFAULT '', n TEXT)", "a", "a primary key is required"},
		{"temp table", "CREATE TEMP TABLE a (id TEXT NOT NULL PRIMARY KEY)", "a", "TEMP"},
		{"temporary table", "CREATE TEMPORARY TABLE IF NOT EXISTS a (id TEXT NOT NULL PRIMARY KEY)", "a", "TEMP"},
		{"as select", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY); CREATE TABLE b AS SELECT * FROM a", "b", "AS SELECT"},
		{"drop index without if exists", "DROP INDEX a_n", "", "DROP INDEX a_n needs IF EXISTS"},
		{"drop an index the script creates", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY, n TEXT); CREATE INDEX a_n ON a (n); DROP INDEX IF EXISTS a_n", "", "a_n"},
		{"alter table", "ALTER TABLE items ADD COLUMN x TEXT", "items", "ALTER TABLE"},
		{"drop table", "DROP TABLE IF EXISTS items", "items", "DROP TABLE"},
		{"view", "CREATE VIEW v AS SELECT 1", "", "only CREATE TABLE"},
		{"trigger", "CREATE TRIGGER tr AFTER INSERT ON items BEGIN SELECT 1; END", "", "only CREATE TABLE"},
		{"insert", "INSERT INTO items (id) VALUES (1)", "", "only CREATE TABLE"},
		{"invalid sql", "CREATE TABLE a (id TEXT NOT NULL PRIMARY KEY,)", "", "syntax error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := openTestDB(t)
			err := db.ApplySchema(context.Background(), c.script)
			var se *SchemaError
			if !errors.As(err, &se) {
				t.Fatalf("ApplySchema = %v, want a *SchemaError", err)
			}
			if se.Table != c.table || !strings.Contains(se.Reason, c.reason) {
				t.Errorf("SchemaError{Table: %q, Reason: %q}, want table %q and a reason with %q", se.Table, se.Reason, c.table, c.reason)
			}
			if c.table != "" && !strings.Contains(err.Error(), "table "+c.table) {
				t.Errorf("message %q does not name table %s", err, c.table)
			}
			if tables := userTables(t, db); len(tables) != 0 {
				t.Errorf("a refused script created %v", tables)
			}
		})
	}
}

func TestSchemaAllowed(t *testing.T) {
	t.Parallel()
	db := openTestDB(t)
	script := `
-- comments and odd spacing are fine
CREATE TABLE IF NOT EXISTS nodes (
    name   TEXT NOT NULL PRIMARY KEY,
    labels TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    upper_name TEXT GENERATED ALWAYS AS (upper(name)) VIRTUAL,
    size   INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0)
);
CREATE TABLE IF NOT EXISTS status (
    name TEXT NOT NULL,
    node TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (name, node)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS status_node ON status (node);
DROP INDEX IF EXISTS some_old_index;
`
	ctx := context.Background()
	for i := range 2 { // re-applying the same schema changes nothing
		if err := db.ApplySchema(ctx, script); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	if _, _, err := db.Transaction(ctx, []corrosion.Statement{stmt("INSERT INTO nodes (name) VALUES ('n1')")}); err != nil {
		t.Fatal(err)
	}
	_, rows, err := db.queryAll(ctx, "SELECT upper_name, labels, size FROM nodes")
	if err != nil || len(rows) != 1 || rows[0][0] != "N1" || rows[0][1] != "{}" || rows[0][2] != int64(0) {
		t.Errorf("nodes = %v, %v", rows, err)
	}
	if _, _, err := db.Transaction(ctx, []corrosion.Statement{stmt("INSERT INTO nodes (name, labels) VALUES ('n2', 'not json')")}); err == nil {
		t.Errorf("CHECK constraint was not applied")
	}
}

func TestSchemaMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	v1 := `CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL DEFAULT '');`
	refused := []struct {
		name   string
		script string
		reason string
	}{
		{"remove a column", `CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY)`, "column name would be removed"},
		{"change a column type", `CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY, name INTEGER NOT NULL DEFAULT 0)`, "column name would change"},
		{"change a default", `CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x')`, "column name would change"},
		{"extend the primary key", `CREATE TABLE things (id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', PRIMARY KEY (id, name))`, "column name would change"},
		{"add a key column", `CREATE TABLE things (id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', k TEXT NOT NULL DEFAULT '', PRIMARY KEY (id, k))`, "primary key"},
		{"refused table after a good one", `CREATE TABLE fresh (id TEXT NOT NULL PRIMARY KEY); CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY)`, "would be removed"},
		{"refused table before an index", `CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY); CREATE INDEX fresh_idx ON things (id)`, "would be removed"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := openTestDB(t)
			if err := db.ApplySchema(ctx, v1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.Transaction(ctx, []corrosion.Statement{stmt("INSERT INTO things (id, name) VALUES ('a', 'A')")}); err != nil {
				t.Fatal(err)
			}
			err := db.ApplySchema(ctx, c.script)
			var se *SchemaError
			if !errors.As(err, &se) || se.Table != "things" || !strings.Contains(se.Reason, c.reason) {
				t.Fatalf("ApplySchema = %v, want a refusal for table things with %q", err, c.reason)
			}
			if tables := userTables(t, db); len(tables) != 1 || tables[0] != "things" {
				t.Errorf("tables after a refused migration: %v", tables)
			}
			_, rows, err := db.queryAll(ctx, "SELECT * FROM things")
			if err != nil || len(rows) != 1 || len(rows[0]) != 2 || rows[0][1] != "A" {
				t.Errorf("things after a refused migration: %v %v", rows, err)
			}
			_, idx, _ := db.queryAll(ctx, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'fresh_idx'")
			if len(idx) != 0 {
				t.Errorf("index of a refused script was created")
			}
		})
	}
	t.Run("add columns", func(t *testing.T) {
		t.Parallel()
		db := openTestDB(t)
		if err := db.ApplySchema(ctx, v1); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.Transaction(ctx, []corrosion.Statement{stmt("INSERT INTO things (id, name) VALUES ('a', 'A')")}); err != nil {
			t.Fatal(err)
		}
		v2 := `CREATE TABLE things (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    note TEXT,                                   -- nullable
    size INTEGER NOT NULL DEFAULT 7,             -- defaulted
    spec TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(spec))
);
CREATE INDEX IF NOT EXISTS things_size ON things (size);`
		for i := range 2 {
			if err := db.ApplySchema(ctx, v2); err != nil {
				t.Fatalf("apply v2 (%d): %v", i+1, err)
			}
		}
		cols, rows, err := db.queryAll(ctx, "SELECT * FROM things")
		if err != nil || strings.Join(cols, ",") != "id,name,note,size,spec" || len(rows) != 1 ||
			rows[0][1] != "A" || rows[0][2] != nil || rows[0][3] != int64(7) || rows[0][4] != "{}" {
			t.Errorf("things after v2: %v %v %v", cols, rows, err)
		}
		// An index in a later script may refer to a table of an earlier one.
		if err := db.ApplySchema(ctx, "CREATE INDEX IF NOT EXISTS things_note ON things (note)"); err != nil {
			t.Errorf("index on an existing table: %v", err)
		}
	})
}

// TestSchemaOpen checks Options.Schema: a refused schema fails Open.
func TestSchemaOpen(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), Options{DataDir: t.TempDir(), Schema: []string{"CREATE TABLE a (id INTEGER PRIMARY KEY)"}, Logger: quietLogger()})
	var se *SchemaError
	if !errors.As(err, &se) || se.Table != "a" {
		t.Errorf("Open = %v, want a SchemaError for a", err)
	}
}

// TestDDLThroughTransactions holds DDL sent to /v1/transactions to the
// schema rules.
func TestDDLThroughTransactions(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct {
		name   string
		sql    []string
		status int
		errHas string
	}{
		{"integer primary key", []string{"CREATE TABLE a (id INTEGER PRIMARY KEY)"}, 500, "must be declared NOT NULL"},
		{"unique index", []string{"CREATE UNIQUE INDEX items_name ON items (name)"}, 500, "UNIQUE"},
		{"alter table", []string{"ALTER TABLE items ADD COLUMN x TEXT"}, 500, "ALTER TABLE"},
		{"drop table", []string{"DROP TABLE items"}, 500, "DROP TABLE"},
		{"drop index", []string{"DROP INDEX whatever"}, 500, "IF EXISTS"},
		{"refused ddl rolls back", []string{"INSERT INTO items (id) VALUES (77)", "CREATE TABLE b (id TEXT)"}, 500, "primary key"},
		{"new table", []string{"CREATE TABLE b (id TEXT NOT NULL PRIMARY KEY, n TEXT)", "INSERT INTO b (id) VALUES ('x')"}, 200, ""},
		{"index on a table of the same transaction", []string{"CREATE TABLE c (id TEXT NOT NULL PRIMARY KEY, n TEXT)", "CREATE INDEX c_n ON c (n)"}, 200, ""},
		{"index on an existing table", []string{"CREATE INDEX items_qty ON items (qty)"}, 200, ""},
		{"drop index if exists", []string{"DROP INDEX IF EXISTS items_qty"}, 200, ""},
	}
	for _, c := range cases {
		var stmts []corrosion.Statement
		for _, q := range c.sql {
			stmts = append(stmts, stmt(q))
		}
		r := call(t, http.MethodPost, s.URL+"/v1/transactions", stmts)
		if r.status != c.status || !strings.Contains(string(r.body), c.errHas) {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	if _, rows := s.query(t, stmt("SELECT count(*) FROM items WHERE id = 77")); rows[0][0] != int64(0) {
		t.Errorf("the insert of a refused transaction was kept")
	}
	if _, rows := s.query(t, stmt("SELECT id FROM b")); len(rows) != 1 {
		t.Errorf("table b: %v", rows)
	}
}

func TestSchemaTrailingComment(t *testing.T) {
	t.Parallel()
	script := "CREATE TABLE c (id TEXT NOT NULL PRIMARY KEY);\n-- the end\n/* really */\n"
	if _, err := planSchema(context.Background(), script); err != nil {
		t.Fatalf("a script ending in comments: got %v, want it accepted", err)
	}
}
