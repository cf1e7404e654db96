package state

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/ucplane/uc/state/embedded"
)

// TestSchemaTablesAgreeWithEmbedded checks the small parser CheckSchema
// uses against the embedded state's, which asks SQLite itself.
func TestSchemaTablesAgreeWithEmbedded(t *testing.T) {
	t.Parallel()
	want, err := embedded.SchemaTables(context.Background(), Schema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := schemaTables(Schema)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("schemaTables = %v\nembedded.SchemaTables = %v", got, want)
	}
}

func TestSchemaTables(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, script string
		want         map[string][]string
	}{
		{"plain", "CREATE TABLE a (x TEXT, y INTEGER);", map[string][]string{"a": {"x", "y"}}},
		{"comments and constraints", `-- a, b (
/* c, d */ create table if not exists "t" (
    k TEXT NOT NULL DEFAULT 'a,(b' CHECK (json_valid(k)), -- e, f
    [v w] TEXT,
    PRIMARY KEY (k, "v w")
);
CREATE INDEX IF NOT EXISTS t_k ON t (k);`, map[string][]string{"t": {"k", "v w"}}},
		{"quoted quotes", "CREATE TABLE `odd``name` (\"a\"\"b\" TEXT)", map[string][]string{"odd`name": {`a"b`}}},
	} {
		got, err := schemaTables(tt.script)
		if err != nil || !maps.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: schemaTables = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := schemaTables("CREATE INDEX i ON t (x);"); err == nil {
		t.Error("a script without tables was accepted")
	}
}
