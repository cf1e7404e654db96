package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// SchemaError is a schema Corrosion would refuse, with the reason.
type SchemaError struct {
	Table  string
	Reason string
}

func (e *SchemaError) Error() string {
	if e.Table == "" {
		return "schema refused: " + e.Reason
	}
	return fmt.Sprintf("schema refused: table %s: %s", e.Table, e.Reason)
}

// column is one row of PRAGMA table_info.
type column struct {
	name    string
	typ     string
	notNull bool
	dflt    sql.NullString
	pk      int
}

// tableDef is a CREATE TABLE statement and what SQLite made of it.
type tableDef struct {
	name    string
	sql     string
	columns []column
}

// schemaPlan is a checked schema script, ready to apply.
type schemaPlan struct {
	tables []tableDef
	others []string // CREATE INDEX and DROP INDEX IF EXISTS statements

	created map[string]bool // indexes the script creates
	dropped []string        // indexes the script drops
}

// planSchema checks a schema script against Corrosion's and cr-sqlite's
// rules (shared/design/corrosion-api.md §5) without touching the database:
// the tables are created in a scratch in-memory SQLite and inspected there.
func planSchema(ctx context.Context, script string) (*schemaPlan, error) {
	return planSchemaOn(ctx, script, nil)
}

// planSchemaOn is planSchema for a script applied to the live database: an
// index on a table the script does not define is checked against the live
// table's definition.
func planSchemaOn(ctx context.Context, script string, live querier) (*schemaPlan, error) {
	scratch, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		return nil, err
	}
	defer scratch.Close()
	scratch.SetMaxOpenConns(1)
	plan := &schemaPlan{created: map[string]bool{}}
	for _, stmt := range splitStatements(script) {
		if err := plan.add(ctx, scratch, live, stmt); err != nil {
			return nil, err
		}
	}
	for _, idx := range plan.dropped {
		if plan.created[strings.ToLower(idx)] {
			return nil, &SchemaError{Reason: fmt.Sprintf("index %s is both created and dropped by the schema", idx)}
		}
	}
	return plan, nil
}

func (p *schemaPlan) add(ctx context.Context, scratch *sql.DB, live querier, stmt string) error {
	toks := lex(stmt)
	kind, err := ddlKind(toks)
	if err != nil {
		return err
	}
	switch kind {
	case "INDEX":
		p.created[strings.ToLower(nameAfter(toks, "INDEX"))] = true
		if err := copyLiveTable(ctx, scratch, live, indexTable(toks)); err != nil {
			return err
		}
	case "DROP":
		p.dropped = append(p.dropped, nameAfter(toks, "INDEX"))
	}
	if _, err := scratch.ExecContext(ctx, stmt); err != nil {
		return &SchemaError{Reason: fmt.Sprintf("%v in %q", err, abbreviate(stmt))}
	}
	if kind != "TABLE" {
		p.others = append(p.others, stmt)
		return nil
	}
	def, err := inspectTable(ctx, scratch, tableName(toks))
	if err != nil {
		return err
	}
	def.sql = stmt
	p.tables = append(p.tables, def)
	return nil
}

// copyLiveTable creates a live table in the scratch database, unless the
// script already defined it there.
func copyLiveTable(ctx context.Context, scratch *sql.DB, live querier, table string) error {
	if live == nil || table == "" {
		return nil
	}
	if cols, err := tableColumns(ctx, scratch, table); err != nil || len(cols) > 0 {
		return err
	}
	rows, err := live.QueryContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE", table)
	if err != nil {
		return err
	}
	var create string
	if rows.Next() {
		err = rows.Scan(&create)
	}
	rows.Close()
	if err != nil || create == "" {
		return err
	}
	_, err = scratch.ExecContext(ctx, create)
	return err
}

// ddlKind allows only CREATE TABLE, CREATE INDEX and DROP INDEX IF EXISTS.
func ddlKind(toks []token) (string, error) {
	words := make([]string, 0, 4)
	for _, t := range toks[:min(4, len(toks))] {
		words = append(words, t.upper())
	}
	stmt := strings.Join(words, " ")
	switch {
	case strings.HasPrefix(stmt, "CREATE TEMP"), strings.HasPrefix(stmt, "CREATE TEMPORARY"):
		return "", &SchemaError{Table: nameAfter(toks, "TABLE"), Reason: "TEMP tables are not allowed"}
	case strings.HasPrefix(stmt, "CREATE UNIQUE INDEX"):
		return "", &SchemaError{Table: indexTable(toks), Reason: fmt.Sprintf("UNIQUE index %s is not allowed (Corrosion cannot enforce uniqueness across nodes)", nameAfter(toks, "INDEX"))}
	case strings.HasPrefix(stmt, "CREATE TABLE"):
		if hasKeyword(toks, "AUTOINCREMENT") {
			return "", &SchemaError{Table: tableName(toks), Reason: "AUTOINCREMENT is not allowed"}
		}
		if i := topLevelKeyword(toks, "AS"); i >= 0 && i+1 < len(toks) && toks[i+1].upper() == "SELECT" {
			return "", &SchemaError{Table: tableName(toks), Reason: "CREATE TABLE … AS SELECT is not allowed"}
		}
		return "TABLE", nil
	case strings.HasPrefix(stmt, "CREATE INDEX"):
		return "INDEX", nil
	case strings.HasPrefix(stmt, "DROP INDEX IF EXISTS"):
		return "DROP", nil
	case strings.HasPrefix(stmt, "DROP INDEX"):
		return "", &SchemaError{Reason: fmt.Sprintf("DROP INDEX %s needs IF EXISTS", nameAfter(toks, "INDEX"))}
	case strings.HasPrefix(stmt, "ALTER TABLE"), strings.HasPrefix(stmt, "DROP TABLE"):
		return "", &SchemaError{Table: nameAfter(toks, "TABLE"), Reason: fmt.Sprintf("%s is not allowed; change the CREATE TABLE statement instead (only additive changes)", strings.Join(words[:2], " "))}
	}
	return "", &SchemaError{Reason: fmt.Sprintf("only CREATE TABLE, CREATE INDEX and DROP INDEX IF EXISTS are allowed, got %q", abbreviate(strings.Join(words, " ")))}
}

// nameAfter returns the object name that follows keyword kw, skipping
// `IF [NOT] EXISTS` and a schema qualifier.
func nameAfter(toks []token, kw string) string {
	i := 0
	for i < len(toks) && toks[i].upper() != kw {
		i++
	}
	i++
	for i < len(toks) && (toks[i].upper() == "IF" || toks[i].upper() == "NOT" || toks[i].upper() == "EXISTS") {
		i++
	}
	if i+2 < len(toks) && toks[i+1].text == "." {
		i += 2
	}
	if i < len(toks) {
		return toks[i].ident()
	}
	return ""
}

// indexTable is the table of `CREATE [UNIQUE] INDEX … ON table (…)`.
func indexTable(toks []token) string {
	for i, t := range toks {
		if t.upper() == "ON" && i+1 < len(toks) {
			return toks[i+1].ident()
		}
	}
	return ""
}

// tableName finds the name in `CREATE TABLE [IF NOT EXISTS] [schema.]name`.
func tableName(toks []token) string { return nameAfter(toks, "TABLE") }

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// inspectTable reads a table's columns and enforces the CRR rules.
func inspectTable(ctx context.Context, db *sql.DB, name string) (tableDef, error) {
	cols, err := tableColumns(ctx, db, name)
	if err != nil {
		return tableDef{}, err
	}
	def := tableDef{name: name, columns: cols}
	hasPK := false
	for _, c := range cols {
		switch {
		case c.pk > 0 && !c.notNull:
			return def, &SchemaError{Table: name, Reason: fmt.Sprintf("primary key column %s must be declared NOT NULL", c.name)}
		case c.pk == 0 && c.notNull && !c.dflt.Valid:
			return def, &SchemaError{Table: name, Reason: fmt.Sprintf("NOT NULL column %s needs a DEFAULT", c.name)}
		}
		hasPK = hasPK || c.pk > 0
	}
	if !hasPK {
		return def, &SchemaError{Table: name, Reason: "a primary key is required"}
	}
	if err := checkNoForeignKeys(ctx, db, name); err != nil {
		return def, err
	}
	return def, checkNoUnique(ctx, db, name)
}

// querier is a *sql.DB or a *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tableColumns returns a table's columns, or none if it does not exist.
func tableColumns(ctx context.Context, q querier, name string) ([]column, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)", name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.dflt, &c.pk); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func checkNoForeignKeys(ctx context.Context, db *sql.DB, name string) error {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_list(?)", name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &SchemaError{Table: name, Reason: "REFERENCES (foreign keys) are not allowed"}
	}
	return nil
}

func checkNoUnique(ctx context.Context, db *sql.DB, name string) error {
	var n int
	q := "SELECT count(*) FROM pragma_index_list(?) WHERE \"unique\" = 1 AND origin != 'pk'"
	if err := db.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &SchemaError{Table: name, Reason: "UNIQUE constraints are not allowed (Corrosion cannot enforce uniqueness across nodes)"}
	}
	return nil
}

// migration is what applying a checked table to an existing database takes.
type migration struct {
	create     string   // CREATE TABLE when the table is new
	addColumns []string // ALTER TABLE … ADD COLUMN statements otherwise
}

// planMigration compares a table with its existing definition. Only
// additive changes are allowed, as on Corrosion: new nullable or defaulted
// columns. Removing or changing a column, or touching the key, is refused.
func planMigration(def tableDef, existing []column) (migration, error) {
	if len(existing) == 0 {
		return migration{create: def.sql}, nil
	}
	next := map[string]column{}
	for _, c := range def.columns {
		next[c.name] = c
	}
	for _, old := range existing {
		c, ok := next[old.name]
		if !ok {
			return migration{}, &SchemaError{Table: def.name, Reason: fmt.Sprintf("column %s would be removed; only additive changes are allowed", old.name)}
		}
		if c != old {
			return migration{}, &SchemaError{Table: def.name, Reason: fmt.Sprintf("column %s would change; only additive changes are allowed", old.name)}
		}
		delete(next, old.name)
	}
	return addedColumns(def, next)
}

func addedColumns(def tableDef, added map[string]column) (migration, error) {
	var m migration
	defs := columnDefinitions(def.sql)
	for _, c := range def.columns { // keep declaration order
		if _, ok := added[c.name]; !ok {
			continue
		}
		if c.pk > 0 {
			return m, &SchemaError{Table: def.name, Reason: fmt.Sprintf("column %s would change the primary key", c.name)}
		}
		text, ok := defs[c.name]
		if !ok {
			return m, &SchemaError{Table: def.name, Reason: fmt.Sprintf("cannot find the definition of new column %s", c.name)}
		}
		m.addColumns = append(m.addColumns, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", quoteIdent(def.name), text))
	}
	return m, nil
}

// columnDefinitions maps column names to their source text inside a
// CREATE TABLE statement's parentheses.
func columnDefinitions(create string) map[string]string {
	toks := lex(create)
	open := -1
	for i, t := range toks {
		if t.text == "(" {
			open = i
			break
		}
	}
	out := map[string]string{}
	if open < 0 {
		return out
	}
	start, depth := open+1, 0
	for i := open + 1; i < len(toks); i++ {
		switch toks[i].text {
		case "(":
			depth++
		case ")", ",":
			if depth > 0 {
				if toks[i].text == ")" {
					depth--
				}
				continue
			}
			if start < i && !isTableConstraint(toks[start]) {
				out[toks[start].ident()] = create[toks[start].pos:toks[i].pos]
			}
			start = i + 1
			if toks[i].text == ")" {
				return out
			}
		}
	}
	return out
}

func isTableConstraint(t token) bool {
	switch t.upper() {
	case "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN":
		return true
	}
	return false
}
