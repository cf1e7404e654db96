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

// maxParamIndex is SQLite's default SQLITE_MAX_VARIABLE_NUMBER.
const maxParamIndex = 32766

// paramIndexes numbers a statement's parameter markers as SQLite does: `?`
// takes the next index, `?NNN` index NNN, and a name the index it got where
// it first appeared. It returns the index of every marker token and, per
// index, the marker's name ("" for `?`, "?NNN" for numbered ones).
func paramIndexes(toks []token) (indexes map[int]int, slots []string) {
	indexes = map[int]int{}
	named := map[string]int{}
	for i, t := range toks {
		if t.kind != tokParam {
			continue
		}
		var idx int
		switch {
		case t.text == "?":
			idx = len(slots) + 1
		case t.text[0] == '?':
			n, err := strconv.Atoi(t.text[1:])
			if err != nil || n < 1 || n > maxParamIndex {
				continue // SQLite refuses it when preparing
			}
			idx = n
		case named[t.text] > 0:
			idx = named[t.text]
		default:
			idx = len(slots) + 1
			named[t.text] = idx
		}
		for len(slots) < idx {
			slots = append(slots, "")
		}
		if t.text != "?" {
			slots[idx-1] = t.text
		}
		indexes[i] = idx
	}
	return indexes, slots
}

// isNamed tells a name bound by name (":id", "@id", "$id") from a marker
// bound by position.
func isNamed(slot string) bool { return slot != "" && slot[0] != '?' }

// bindArgs turns a statement's parameters into database/sql arguments with
// rusqlite's rules, which Corrosion's transactions and queries use:
// positional parameters must match the statement's parameter count and bind
// by index (named markers included); named parameters bind by name, a name
// the statement lacks is an error and a name left out stays NULL.
func bindArgs(stmt corrosion.Statement, toks []token) ([]any, error) {
	_, slots := paramIndexes(toks)
	args := make([]any, len(slots))
	if stmt.NamedParams != nil && stmt.Params == nil {
		for name := range stmt.NamedParams {
			if !containsString(slots, name) {
				return nil, fmt.Errorf("Invalid parameter name: %s", name)
			}
		}
		for i, slot := range slots {
			if isNamed(slot) {
				args[i] = sql.Named(slot[1:], stmt.NamedParams[slot])
			}
		}
		return args, nil
	}
	if len(stmt.Params) != len(slots) {
		return nil, fmt.Errorf("Wrong number of parameters passed to query. Got %d, needed %d", len(stmt.Params), len(slots))
	}
	for i, slot := range slots {
		args[i] = stmt.Params[i]
		if isNamed(slot) {
			// The driver binds named markers by name only.
			args[i] = sql.Named(slot[1:], stmt.Params[i])
		}
	}
	return args, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// expandSQL substitutes every parameter with its SQL literal, as
// sqlite3_expanded_sql does: the result is a subscription's deduplication
// key. Corrosion binds positional parameters by index (too many is SQLite's
// range error) and named ones by name (unknown names are ignored); an
// unbound parameter becomes NULL.
func expandSQL(stmt corrosion.Statement) (string, error) {
	toks := lex(stmt.Query)
	indexes, slots := paramIndexes(toks)
	if len(stmt.Params) > len(slots) {
		return "", fmt.Errorf("column index out of range: %d parameters for %d markers", len(stmt.Params), len(slots))
	}
	return substituteParams(stmt.Query, toks, indexes, func(idx int) string {
		switch {
		case stmt.Params != nil:
			if idx <= len(stmt.Params) {
				return sqlLiteral(stmt.Params[idx-1])
			}
		case isNamed(slots[idx-1]):
			return sqlLiteral(stmt.NamedParams[slots[idx-1]])
		}
		return "NULL"
	}), nil
}

// substituteParams replaces each parameter marker of src with lit(index).
func substituteParams(src string, toks []token, indexes map[int]int, lit func(idx int) string) string {
	var b strings.Builder
	last := 0
	for i, t := range toks {
		idx, ok := indexes[i]
		if !ok {
			continue
		}
		b.WriteString(src[last:t.pos])
		b.WriteString(lit(idx))
		last = t.pos + len(t.text)
	}
	b.WriteString(src[last:])
	return b.String()
}

// sqlLiteral renders a bound value the way sqlite3_expanded_sql does.
func sqlLiteral(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return sqliteReal(x)
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []byte:
		return "x'" + hex.EncodeToString(x) + "'"
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	return sqlLiteral(fmt.Sprint(v))
}

// sqliteReal formats a REAL as SQLite's "%!.15g" does: 15 significant
// digits, and always a decimal point, so that the literal stays REAL
// (1.0, 1.0e+20, not 1 or 1e+20).
func sqliteReal(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', 15, 64)
	if strings.Contains(s, ".") {
		return s
	}
	if e := strings.IndexByte(s, 'e'); e >= 0 {
		return s[:e] + ".0" + s[e:]
	}
	return s + ".0"
}
