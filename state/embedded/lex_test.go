package embedded

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestUnterminatedQuotes: a query or schema whose quoted identifier never
// closes is refused, not a panic in the lexer (found by FuzzLex: a
// subscription to `SELECT * FROM "` dropped the connection).
func TestUnterminatedQuotes(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	for _, q := range []string{`SELECT * FROM "`, "SELECT * FROM [", "SELECT * FROM `", `SELECT * FROM "items`} {
		r := call(t, http.MethodPost, s.URL+"/v1/subscriptions", stmt(q))
		if r.status != http.StatusBadRequest {
			t.Errorf("subscribe %q: got %d %s, want 400", q, r.status, r.body)
		}
		if err := s.DB().ApplySchema(context.Background(), "CREATE TABLE "+q[len("SELECT * FROM "):]); err == nil {
			t.Errorf("schema with %q applied", q)
		}
	}
}

// TestComments: comments end where SQLite ends them. Found by FuzzLex and
// FuzzExpandSQL: a `/*` at the very end panicked the lexer (any query or
// subscription ending so dropped its connection), and `/**/` swallowed the
// rest of the statement.
func TestComments(t *testing.T) {
	t.Parallel()
	cases := []struct{ src, want string }{
		{"/**/SELECT 1", "SELECT 1"},
		{"SELECT /**/ 1 /* x */", "SELECT 1"},
		{"SELECT 1 /*", "SELECT 1"},
		{"SELECT 1 --", "SELECT 1"},
		{"SELECT 1 -- x\n, 2", "SELECT 1 , 2"},
		{"SELECT [a]], 1", "SELECT [a] ] , 1"},
	}
	for _, c := range cases {
		var texts []string
		for _, tok := range lex(c.src) {
			texts = append(texts, tok.text)
		}
		if got := strings.Join(texts, " "); got != c.want {
			t.Errorf("lex(%q) = %q, want %q", c.src, got, c.want)
		}
	}
	s := startServer(t, serverOpts{})
	for q, want := range map[string]int{"SELECT 1 /*": http.StatusBadRequest, "SELECT 1 /* x": http.StatusOK, "/**/SELECT 1": http.StatusOK} {
		// call fails the test if the server drops the connection.
		if r := call(t, http.MethodPost, s.URL+"/v1/queries", stmt(q)); r.status != want {
			t.Errorf("query %q: got %d %s, want %d", q, r.status, r.body, want)
		}
	}
}

// TestSplitStatementsIllegalByte: a vertical tab is not white space to
// SQLite: a piece holding one is a statement (which SQLite refuses), not an
// empty one. Found by FuzzLex.
func TestSplitStatementsIllegalByte(t *testing.T) {
	t.Parallel()
	got := splitStatements("SELECT 1;\v;\n")
	if want := []string{"SELECT 1", "\v"}; !slices.Equal(got, want) {
		t.Errorf("splitStatements = %q, want %q", got, want)
	}
}
