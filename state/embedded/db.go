package embedded

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"

	"github.com/ucplane/uc/state/corrosion"
)

// metaTable holds the embedded state's own bookkeeping. The __corro_ prefix
// marks it internal, as Corrosion's own tables are.
const metaTable = "__corro_uc_meta"

// DB is the embedded state's SQLite database: one writer connection that
// runs transactions the way Corrosion does (IMMEDIATE, all or nothing), and
// a pool of read-only connections for queries and subscriptions.
type DB struct {
	write   *sql.DB
	wconn   *sql.Conn
	read    *sql.DB
	writeMu sync.Mutex
	actorID string

	// touched collects the tables the current write transaction changed; the
	// pre-update hook fills it while writeMu is held.
	touched map[string]bool
	// onCommit is told which tables a committed transaction changed.
	onCommit func(tables []string)
}

// OpenDB opens (or creates) the database file at path.
func OpenDB(ctx context.Context, path string) (*DB, error) {
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	db := &DB{write: write, touched: map[string]bool{}}
	if err := db.init(ctx, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + path + "?" + q.Encode()
}

func (db *DB) init(ctx context.Context, path string) error {
	db.write.SetMaxOpenConns(1)
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("open state database %s: %w", path, err)
	}
	db.wconn = conn
	err = conn.Raw(func(dc any) error {
		hooks, ok := dc.(sqlite.HookRegisterer)
		if !ok {
			return errors.New("sqlite driver offers no update hook")
		}
		hooks.RegisterPreUpdateHook(func(d sqlite.SQLitePreUpdateData) { db.touched[d.TableName] = true })
		return nil
	})
	if err != nil {
		return err
	}
	if db.read, err = sql.Open("sqlite", dsn(path, true)); err != nil {
		return err
	}
	db.read.SetMaxOpenConns(8)
	return db.loadMeta(ctx)
}

func (db *DB) loadMeta(ctx context.Context) error {
	create := "CREATE TABLE IF NOT EXISTS " + metaTable + " (key TEXT NOT NULL PRIMARY KEY, value)"
	if _, err := db.wconn.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("create %s: %w", metaTable, err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	insert := "INSERT INTO " + metaTable + " (key, value) VALUES ('actor_id', ?), ('db_version', 0) ON CONFLICT DO NOTHING"
	if _, err := db.wconn.ExecContext(ctx, insert, hex.EncodeToString(id)); err != nil {
		return err
	}
	clear(db.touched)
	return db.wconn.QueryRowContext(ctx, "SELECT value FROM "+metaTable+" WHERE key = 'actor_id'").Scan(&db.actorID)
}

// ActorID identifies this database the way Corrosion's actor id does.
func (db *DB) ActorID() string { return db.actorID }

// Close closes every connection.
func (db *DB) Close() error {
	var errs []error
	if db.wconn != nil {
		errs = append(errs, db.wconn.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

// TxError is a failed transaction; nothing of it was applied.
type TxError struct {
	Index int // 0-based statement index
	Err   error
}

func (e *TxError) Error() string { return e.Err.Error() }
func (e *TxError) Unwrap() error { return e.Err }

// Transaction runs stmts in one IMMEDIATE transaction. version is the new
// db_version, or nil when no replicated row changed.
func (db *DB) Transaction(ctx context.Context, stmts []corrosion.Statement) ([]corrosion.StatementResult, *int64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	clear(db.touched)
	if _, err := db.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, nil, &TxError{Err: err}
	}
	results, version, err := db.runStatements(ctx, stmts)
	if err != nil {
		_, _ = db.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, nil, err
	}
	if _, err := db.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = db.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return nil, nil, &TxError{Err: err}
	}
	db.notify()
	return results, version, nil
}

func (db *DB) runStatements(ctx context.Context, stmts []corrosion.Statement) ([]corrosion.StatementResult, *int64, error) {
	results := make([]corrosion.StatementResult, len(stmts))
	for i, stmt := range stmts {
		start := time.Now()
		n, err := db.execOne(ctx, stmt)
		if err != nil {
			return nil, nil, &TxError{Index: i, Err: err}
		}
		results[i] = corrosion.StatementResult{RowsAffected: n, Time: time.Since(start).Seconds()}
	}
	version, err := db.bumpVersion(ctx)
	if err != nil {
		return nil, nil, &TxError{Err: err}
	}
	return results, version, nil
}

// execOne runs one statement as rusqlite's execute does: several
// statements in one string are an error, and so is a statement that
// produces a row (a SELECT or a RETURNING that finds nothing succeeds).
func (db *DB) execOne(ctx context.Context, stmt corrosion.Statement) (int64, error) {
	if parts := splitStatements(stmt.Query); len(parts) > 1 {
		return 0, errors.New("Multiple statements provided")
	}
	toks := lex(stmt.Query)
	if isDDL(toks) {
		if err := db.checkDDL(ctx, stmt.Query); err != nil {
			return 0, err
		}
	}
	args, err := bindArgs(stmt, toks)
	if err != nil {
		return 0, err
	}
	if mayReturnRows(toks) {
		return db.execRows(ctx, stmt.Query, args)
	}
	res, err := db.wconn.ExecContext(ctx, stmt.Query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// mayReturnRows tells statements that can produce rows; database/sql's
// Exec would silently discard them.
func mayReturnRows(toks []token) bool {
	switch firstKeyword(toks) {
	case "SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN":
		return true
	}
	return hasKeyword(toks, "RETURNING")
}

// execRows steps a statement that may produce rows: a row is an error, as
// in rusqlite; otherwise the count is sqlite3_changes(), as rusqlite returns.
func (db *DB) execRows(ctx context.Context, query string, args []any) (int64, error) {
	rows, err := db.wconn.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	gotRow := rows.Next()
	err = errors.Join(rows.Err(), rows.Close())
	switch {
	case gotRow:
		return 0, errors.New("Execute returned results - did you mean to call query?")
	case err != nil:
		return 0, err
	}
	var n int64
	err = db.wconn.QueryRowContext(ctx, "SELECT changes()").Scan(&n)
	return n, err
}

func isDDL(toks []token) bool {
	switch firstKeyword(toks) {
	case "CREATE", "DROP", "ALTER":
		return true
	}
	return false
}

// checkDDL holds DDL sent through /v1/transactions to the same rules as a
// schema file. Corrosion would run it locally without replicating it; here it
// is refused when Corrosion's schema loader would refuse it.
func (db *DB) checkDDL(ctx context.Context, stmt string) error {
	plan, err := planSchemaOn(ctx, stmt, db.wconn)
	if err != nil {
		return err
	}
	for _, t := range plan.tables {
		existing, err := tableColumns(ctx, db.wconn, t.name)
		if err != nil {
			return err
		}
		if _, err := planMigration(t, existing); err != nil {
			return err
		}
	}
	return nil
}

// bumpVersion advances db_version when a replicated (non-internal) table
// changed in this transaction.
func (db *DB) bumpVersion(ctx context.Context) (*int64, error) {
	if len(db.changedTables()) == 0 {
		return nil, nil
	}
	var v int64
	q := "UPDATE " + metaTable + " SET value = value + 1 WHERE key = 'db_version' RETURNING value"
	if err := db.wconn.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return nil, fmt.Errorf("bump db_version: %w", err)
	}
	return &v, nil
}

func (db *DB) changedTables() []string {
	var out []string
	for t := range db.touched {
		if !isInternal(t) {
			out = append(out, t)
		}
	}
	return out
}

func isInternal(table string) bool {
	return strings.HasPrefix(table, "__corro_") || strings.HasPrefix(table, "crsql_") || strings.HasPrefix(table, "sqlite_")
}

func (db *DB) notify() {
	tables := db.changedTables()
	if len(tables) > 0 && db.onCommit != nil {
		db.onCommit(tables)
	}
}

// ApplySchema checks a schema script against Corrosion's rules and applies
// it as Corrosion's schema loader does: new tables are created, existing
// ones gain new columns, indexes are created or dropped. A refused script
// changes nothing.
func (db *DB) ApplySchema(ctx context.Context, script string) error {
	plan, err := planSchemaOn(ctx, script, db.read)
	if err != nil {
		return err
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var ddl []string
	for _, t := range plan.tables {
		existing, err := tableColumns(ctx, db.wconn, t.name)
		if err != nil {
			return err
		}
		m, err := planMigration(t, existing)
		if err != nil {
			return err
		}
		if m.create != "" {
			ddl = append(ddl, m.create)
		}
		ddl = append(ddl, m.addColumns...)
	}
	return db.execScript(ctx, append(ddl, plan.others...))
}

func (db *DB) execScript(ctx context.Context, stmts []string) error {
	if _, err := db.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.wconn.ExecContext(ctx, s); err != nil {
			_, _ = db.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("apply schema %q: %w", abbreviate(s), err)
		}
	}
	_, err := db.wconn.ExecContext(ctx, "COMMIT")
	clear(db.touched)
	return err
}

// primaryKey returns a table's primary-key columns in key order.
func (db *DB) primaryKey(ctx context.Context, table string) ([]string, error) {
	cols, err := tableColumns(ctx, db.read, table)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table not found in schema: %s", table)
	}
	keys := make([]string, 0, 2)
	for pk := 1; ; pk++ {
		found := false
		for _, c := range cols {
			if c.pk == pk {
				keys, found = append(keys, c.name), true
			}
		}
		if !found {
			break
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("table %s has no primary key", table)
	}
	return keys, nil
}

// Query runs a read-only statement and calls emit for each row.
func (db *DB) Query(ctx context.Context, stmt corrosion.Statement, columns func([]string) error, row func([]any) error) error {
	toks := lex(stmt.Query)
	args, err := bindArgs(stmt, toks)
	if err != nil {
		return err
	}
	rows, err := db.read.QueryContext(ctx, stmt.Query, args...)
	if err != nil {
		return err
	}
	defer func() { rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if hasTimeColumn(rows) {
		rows.Close()
		if rows, err = db.read.QueryContext(ctx, hideDeclTypes(stmt.Query, len(cols)), args...); err != nil {
			return err
		}
	}
	if err := columns(cols); err != nil {
		return err
	}
	return scanRows(rows, len(cols), row)
}

// hasTimeColumn reports a result column declared DATE, DATETIME or
// TIMESTAMP. The driver turns TEXT from such columns into time.Time, which
// loses the stored text; Corrosion returns the text as it is.
func hasTimeColumn(rows *sql.Rows) bool {
	types, err := rows.ColumnTypes()
	if err != nil {
		return false
	}
	for _, ct := range types {
		switch ct.DatabaseTypeName() {
		case "DATE", "DATETIME", "TIMESTAMP":
			return true
		}
	}
	return false
}

// hideDeclTypes wraps a query so that its result columns are expressions
// (unary plus is a no-op on every value) and carry no declared type.
func hideDeclTypes(query string, n int) string {
	names := make([]string, n)
	exprs := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("c%d", i)
		exprs[i] = "+c" + fmt.Sprint(i)
	}
	return fmt.Sprintf("WITH __corro_q(%s) AS (%s\n) SELECT %s FROM __corro_q",
		strings.Join(names, ", "), strings.TrimRight(strings.TrimSpace(query), ";"), strings.Join(exprs, ", "))
}

// errNotReadOnly is /v1/queries' refusal of a statement that writes.
var errNotReadOnly = errors.New("statement is not readonly")

// PrepareError is a statement SQLite could not prepare.
type PrepareError struct{ Err error }

func (e *PrepareError) Error() string { return e.Err.Error() }
func (e *PrepareError) Unwrap() error { return e.Err }

// CheckReadOnly prepares a query as Corrosion does before streaming it: a
// statement SQLite cannot prepare is a *PrepareError, one that writes is
// errNotReadOnly. sqlite3_stmt_readonly is not reachable through
// database/sql, so its verdict is read off the statement's bytecode, by the
// same rule: a write transaction, VACUUM, a checkpoint or a journal-mode
// change make a statement a writer.
func (db *DB) CheckReadOnly(ctx context.Context, query string) error {
	if len(splitStatements(query)) > 1 {
		return &PrepareError{errors.New("Multiple statements provided")}
	}
	toks := lex(query)
	indexes, _ := paramIndexes(toks)
	target := substituteParams(query, toks, indexes, func(int) string { return "NULL" })
	if firstKeyword(toks) == "EXPLAIN" {
		// EXPLAIN cannot be explained; SQLite judges the statement inside.
		target = strings.TrimSpace(target[toks[0].pos+len(toks[0].text):])
		if t := lex(target); len(t) > 1 && t[0].upper() == "QUERY" && t[1].upper() == "PLAN" {
			target = target[t[1].pos+len(t[1].text):]
		}
	}
	rows, err := db.read.QueryContext(ctx, "EXPLAIN "+target)
	if err != nil {
		return &PrepareError{err}
	}
	defer rows.Close()
	for rows.Next() {
		var addr, p1, p2 int64
		var opcode string
		var rest [4]any
		if err := rows.Scan(&addr, &opcode, &p1, &p2, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			return err
		}
		switch opcode {
		case "Transaction":
			if p2 != 0 {
				return errNotReadOnly
			}
		case "Vacuum", "Checkpoint", "JournalMode":
			return errNotReadOnly
		}
	}
	if err := rows.Err(); err != nil {
		return &PrepareError{err}
	}
	return nil
}

func scanRows(rows *sql.Rows, n int, row func([]any) error) error {
	for rows.Next() {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i, v := range vals {
			vals[i] = normalize(v)
			if s, ok := vals[i].(string); ok && !utf8.ValidString(s) {
				// JSON cannot carry it; Corrosion fails the row too.
				return fmt.Errorf("column %d: invalid utf-8 sequence in TEXT value", i)
			}
		}
		if err := row(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// normalize maps driver values onto the five SQLite storage classes.
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// queryAll collects a query's rows; the matcher uses it.
func (db *DB) queryAll(ctx context.Context, query string) ([]string, [][]any, error) {
	var cols []string
	var out [][]any
	err := db.Query(ctx, corrosion.Statement{Query: query},
		func(c []string) error { cols = c; return nil },
		func(r []any) error { out = append(out, r); return nil })
	return cols, out, err
}
