package state

import (
	"fmt"
	"strings"
)

// schemaTables lists each table's columns, in declaration order, from the
// CREATE TABLE statements of a schema script. CheckSchema needs only that
// list, and parsing it here keeps SQLite (the embedded state) out of this
// package, which the uc CLI links. It understands what uc's schema.sql
// uses; a test checks that it agrees with the embedded state's parser,
// which also checks the schema against Corrosion's rules.
func schemaTables(script string) (map[string][]string, error) {
	toks := sqlTokens(script)
	out := map[string][]string{}
	for i := 0; i+2 < len(toks); i++ {
		if !keyword(toks[i], "CREATE") || !keyword(toks[i+1], "TABLE") {
			continue
		}
		j := i + 2
		if keyword(toks[j], "IF") {
			j += 3 // IF NOT EXISTS
		}
		if j+1 >= len(toks) || toks[j+1] != "(" {
			return nil, fmt.Errorf("schema: CREATE TABLE at token %d: want a name and a column list", i)
		}
		cols, end := columnNames(toks, j+2)
		out[unquote(toks[j])] = cols
		i = end
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("schema: no CREATE TABLE statement")
	}
	return out, nil
}

// columnNames reads a column list from just after its "(" and returns the
// column names and the index of the closing ")". Each item at depth zero
// starts with its column's name, or with a table constraint's keyword.
func columnNames(toks []string, from int) (cols []string, end int) {
	depth, start := 0, true
	for i := from; i < len(toks); i++ {
		switch t := toks[i]; {
		case t == "(":
			depth++
		case t == ")" && depth == 0:
			return cols, i
		case t == ")":
			depth--
		case t == "," && depth == 0:
			start = true
		case start:
			start = false
			if !tableConstraint(t) {
				cols = append(cols, unquote(t))
			}
		}
	}
	return cols, len(toks)
}

func tableConstraint(t string) bool {
	for _, kw := range []string{"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"} {
		if keyword(t, kw) {
			return true
		}
	}
	return false
}

func keyword(t, kw string) bool { return strings.EqualFold(t, kw) }

// sqlTokens splits SQL into words, quoted names or strings (quotes kept),
// and single punctuation characters, dropping comments and white space.
func sqlTokens(src string) []string {
	var out []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case strings.HasPrefix(src[i:], "--"):
			i += lineEnd(src[i:])
		case strings.HasPrefix(src[i:], "/*"):
			i += commentEnd(src[i:])
		case strings.ContainsRune("'\"`[", rune(c)):
			n := quotedLen(src[i:])
			out = append(out, src[i:i+n])
			i += n
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isWordByte(c):
			n := 1
			for i+n < len(src) && isWordByte(src[i+n]) {
				n++
			}
			out = append(out, src[i:i+n])
			i += n
		default:
			out = append(out, src[i:i+1])
			i++
		}
	}
	return out
}

func lineEnd(s string) int {
	if n := strings.IndexByte(s, '\n'); n >= 0 {
		return n + 1
	}
	return len(s)
}

func commentEnd(s string) int {
	if n := strings.Index(s[2:], "*/"); n >= 0 {
		return n + 4
	}
	return len(s)
}

// quotedLen is the length of the quoted token s starts with; a doubled
// closing quote inside it is an escaped quote.
func quotedLen(s string) int {
	closing := s[0]
	if closing == '[' {
		closing = ']'
	}
	for i := 1; i < len(s); i++ {
		if s[i] != closing {
			continue
		}
		if closing != ']' && i+1 < len(s) && s[i+1] == closing {
			i++
			continue
		}
		return i + 1
	}
	return len(s)
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// unquote is the name a (possibly quoted) identifier token names.
func unquote(t string) string {
	if t == "" || !strings.ContainsRune("\"`[", rune(t[0])) {
		return t
	}
	closing := t[0]
	if closing == '[' {
		return strings.TrimSuffix(t[1:], "]")
	}
	inner := strings.TrimSuffix(t[1:], string(closing))
	return strings.ReplaceAll(inner, string([]byte{closing, closing}), string(closing))
}
