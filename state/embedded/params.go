package embedded

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ucplane/uc/state/corrosion"
)

// bindArgs turns a statement's parameters into database/sql arguments. As in
// Corrosion's transactions, a named parameter the SQL does not use is an
// error rather than silently ignored.
func bindArgs(stmt corrosion.Statement, toks []token) ([]any, error) {
	if stmt.Params != nil {
		return stmt.Params, nil
	}
	if stmt.NamedParams == nil {
		return nil, nil
	}
	used := map[string]bool{}
	for _, t := range toks {
		if t.kind == tokParam && t.text[0] != '?' {
			used[t.text] = true
		}
	}
	args := make([]any, 0, len(stmt.NamedParams))
	for name, v := range stmt.NamedParams {
		if !used[name] {
			return nil, fmt.Errorf("Invalid parameter name: %s", name)
		}
		args = append(args, sql.Named(name[1:], v))
	}
	return args, nil
}

// expandSQL substitutes every parameter with its SQL literal, like
// sqlite3_expanded_sql: the result is a subscription's deduplication key.
// An unbound parameter becomes NULL.
func expandSQL(stmt corrosion.Statement) string {
	src := stmt.Query
	var b strings.Builder
	last, next := 0, 1
	for _, t := range lex(src) {
		if t.kind != tokParam {
			continue
		}
		var v any
		switch {
		case t.text == "?":
			v = positional(stmt.Params, next)
			next++
		case t.text[0] == '?':
			n, _ := strconv.Atoi(t.text[1:])
			v = positional(stmt.Params, n)
			next = max(next, n+1)
		default:
			v = stmt.NamedParams[t.text]
		}
		b.WriteString(src[last:t.pos])
		b.WriteString(sqlLiteral(v))
		last = t.pos + len(t.text)
	}
	b.WriteString(src[last:])
	return b.String()
}

func positional(params []any, n int) any {
	if n >= 1 && n <= len(params) {
		return params[n-1]
	}
	return nil
}

// sqlLiteral renders a bound value the way SQLite quotes it.
func sqlLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "NULL"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []byte:
		return "X'" + strings.ToUpper(hex.EncodeToString(x)) + "'"
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	return sqlLiteral(fmt.Sprint(v))
}
