package embedded

import (
	"strings"
	"testing"

	"github.com/ucplane/uc/state/corrosion"
)

// FuzzLex: the lexer reads any text without panicking; its tokens are
// pieces of the source, in order and without overlap; every identifier can
// be read; and the readers built on it (statement splitting, the
// subscription matcher) never panic either. Seeds: testdata/fuzz/FuzzLex,
// with the inputs that crashed it.
func FuzzLex(f *testing.F) {
	pks := func(table string) ([]string, error) { return []string{"id"}, nil }
	f.Fuzz(func(t *testing.T, src string) {
		last := 0
		for _, tok := range lex(src) {
			if tok.pos < last || tok.pos+len(tok.text) > len(src) || src[tok.pos:tok.pos+len(tok.text)] != tok.text || tok.text == "" {
				t.Fatalf("token %+v is not the next piece of %q (after offset %d)", tok, src, last)
			}
			last = tok.pos + len(tok.text)
			_ = tok.ident()
		}
		for _, stmt := range splitStatements(src) {
			if strings.Trim(stmt, sqlSpace) == "" {
				t.Fatalf("splitStatements(%q) gave an empty statement", src)
			}
		}
		_, _ = planSubscription(src, pks)
	})
}

// FuzzExpandSQL: parameter numbering, binding and expansion never panic;
// a statement with a value for every marker expands, and one without
// markers stays as it is. Seeds: testdata/fuzz/FuzzExpandSQL.
func FuzzExpandSQL(f *testing.F) {
	f.Fuzz(func(t *testing.T, query string, i int64, s string, r float64, b []byte, named bool) {
		values := []any{i, s, r, b, nil}
		stmt := corrosion.Statement{Query: query}
		toks := lex(query)
		_, slots := paramIndexes(toks)
		if named {
			stmt.NamedParams = map[string]any{}
			for k, slot := range slots {
				if isNamed(slot) {
					stmt.NamedParams[slot] = values[k%len(values)]
				}
			}
		} else {
			for k := range slots {
				stmt.Params = append(stmt.Params, values[k%len(values)])
			}
		}
		_, _ = bindArgs(stmt, toks)
		expanded, err := expandSQL(stmt)
		if err != nil {
			t.Fatalf("expandSQL(%q) with a value per marker: %v", query, err)
		}
		if len(slots) == 0 && expanded != query {
			t.Fatalf("expandSQL(%q) without markers changed it to %q", query, expanded)
		}
	})
}
