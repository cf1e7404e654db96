// Package state is uc's desired and observed state over Corrosion: the
// schema, and a typed store that every controller and the CLI use. The
// store speaks only Corrosion's HTTP API, so it works the same against a
// Corrosion agent and against the embedded state (state/embedded).
package state

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ucplane/uc/state/corrosion"
)

// Schema is the state schema. On Corrosion it goes into db.schema_paths;
// the embedded state applies it itself.
//
//go:embed schema.sql
var Schema string

// ErrNotFound is returned for a spec or node that does not exist.
var ErrNotFound = errors.New("not found")

// Store reads and writes uc's tables through the Corrosion API.
// Its reads are fresh: each one is a request. Controllers read through a
// Cache instead, and use the store's reads only where a decision must not
// rest on a copy that may lag (see Cache).
type Store struct {
	Reader
	c *corrosion.Client
}

// NewStore returns a store over the given client.
func NewStore(c *corrosion.Client) *Store { return &Store{Reader: Reader{apiRows{c}}, c: c} }

// Client is the underlying Corrosion client.
func (s *Store) Client() *corrosion.Client { return s.c }

// CheckSchema verifies that every table and column uc needs exists. On a
// real Corrosion agent the schema is loaded from files, so a missing piece
// means a node runs an older schema file; the error says what is missing.
func (s *Store) CheckSchema(ctx context.Context) error {
	want, err := schemaTables(Schema)
	if err != nil {
		return fmt.Errorf("uc's own schema is invalid: %w", err)
	}
	var missing []string
	for _, table := range slices.Sorted(maps.Keys(want)) {
		have, err := s.columns(ctx, table)
		if err != nil {
			return err
		}
		if have == nil {
			missing = append(missing, "table "+table)
			continue
		}
		for _, col := range want[table] {
			if !slices.Contains(have, col) {
				missing = append(missing, table+"."+col)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("state schema is missing %s: add `ucd schema` output to Corrosion's db.schema_paths and run `corrosion reload`", strings.Join(missing, ", "))
	}
	return nil
}

// columns lists a table's columns, or nil when the table does not exist.
func (s *Store) columns(ctx context.Context, table string) ([]string, error) {
	_, rows, err := s.c.QueryAll(ctx, corrosion.Stmt("SELECT name FROM pragma_table_info(?)", table))
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	var cols []string
	for _, r := range rows {
		cols = append(cols, corrosion.AsString(r[0]))
	}
	return cols, nil
}
