package embedded

import (
	"context"
	"net/http"
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
