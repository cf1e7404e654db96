package state

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// SpecMeta is what the store keeps beside a spec's body.
type SpecMeta struct {
	UID        string    `json:"uid" yaml:"uid"`
	Generation int64     `json:"generation" yaml:"generation"`
	UpdatedAt  time.Time `json:"updated_at" yaml:"updated_at"`
}

// Spec kinds, as they appear in apply results and CLI arguments.
const (
	KindBuild = "build"
	KindImage = "image"
)

// specTables maps a kind to its table.
var specTables = map[string]string{KindBuild: "build_specs", KindImage: "image_specs"}

// Apply actions.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
	Deleted    = "deleted"
)

// Change is what an apply did (or would do) to one spec.
type Change struct {
	Kind   string `json:"kind" yaml:"kind"`
	Name   string `json:"name" yaml:"name"`
	Action string `json:"action" yaml:"action"`
}

// ApplyResult lists one change per spec, sorted by kind and name.
type ApplyResult struct {
	Changes []Change `json:"changes" yaml:"changes"`
}

// Wrote reports whether the apply changed anything.
func (r ApplyResult) Wrote() bool {
	return slices.ContainsFunc(r.Changes, func(c Change) bool { return c.Action != Unchanged })
}

// desiredSpec is one spec to write, already encoded.
type desiredSpec struct {
	kind, name, body string
}

// ApplyProject makes the project's specs exactly p's, in one transaction:
// new specs are created, changed ones get a new generation, specs of the
// project that p no longer has are deleted, and unchanged ones are not
// written at all. With dryRun it only reports what it would do.
func (s *Store) ApplyProject(ctx context.Context, p *api.Project, dryRun bool) (ApplyResult, error) {
	desired, err := encodeProject(p)
	if err != nil {
		return ApplyResult{}, err
	}
	existing, err := s.projectSpecs(ctx, p.Name)
	if err != nil {
		return ApplyResult{}, err
	}
	res, stmts := planApply(desired, existing, p.Name, time.Now())
	if dryRun || len(stmts) == 0 {
		return res, nil
	}
	if _, err := s.c.Exec(ctx, stmts...); err != nil {
		return ApplyResult{}, fmt.Errorf("apply project %s: %w", p.Name, err)
	}
	return res, nil
}

func encodeProject(p *api.Project) ([]desiredSpec, error) {
	var out []desiredSpec
	for _, b := range p.Builds {
		body, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		out = append(out, desiredSpec{KindBuild, b.Name, string(body)})
	}
	for _, i := range p.Images {
		body, err := json.Marshal(i)
		if err != nil {
			return nil, err
		}
		out = append(out, desiredSpec{KindImage, i.Name, string(body)})
	}
	return out, nil
}

// projectSpecs returns the project's stored specs, keyed by kind/name, with
// bodies re-encoded so that formatting differences are not changes.
func (s *Store) projectSpecs(ctx context.Context, project string) (map[string]string, error) {
	out := map[string]string{}
	for kind, table := range specTables {
		_, rows, err := s.c.QueryAll(ctx, corrosion.Stmt("SELECT name, spec FROM "+table+" WHERE project = ?", project))
		if err != nil {
			return nil, fmt.Errorf("read %s specs of project %s: %w", kind, project, err)
		}
		for _, r := range rows {
			out[kind+"/"+corrosion.AsString(r[0])] = canonical(kind, corrosion.AsString(r[1]))
		}
	}
	return out, nil
}

func canonical(kind, body string) string {
	var v any = &api.BuildSpec{}
	if kind == KindImage {
		v = &api.ImageSpec{}
	}
	if json.Unmarshal([]byte(body), v) != nil {
		return body
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func planApply(desired []desiredSpec, existing map[string]string, project string, now time.Time) (ApplyResult, []corrosion.Statement) {
	var res ApplyResult
	var stmts []corrosion.Statement
	for _, d := range desired {
		old, ok := existing[d.kind+"/"+d.name]
		delete(existing, d.kind+"/"+d.name)
		action := Created
		switch {
		case ok && old == d.body:
			action = Unchanged
		case ok:
			action = Configured
		}
		res.Changes = append(res.Changes, Change{d.kind, d.name, action})
		if action != Unchanged {
			stmts = append(stmts, upsertSpec(specTables[d.kind], d.name, project, d.body, now))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(existing)) {
		kind, name, _ := strings.Cut(key, "/")
		res.Changes = append(res.Changes, Change{kind, name, Deleted})
		stmts = append(stmts, corrosion.Stmt("DELETE FROM "+specTables[kind]+" WHERE name = ?", name))
	}
	slices.SortStableFunc(res.Changes, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	return res, stmts
}

// upsertSpec bumps the generation only when the body really changes, and
// writes nothing otherwise (no gossip for a no-op).
func upsertSpec(table, name, project, body string, now time.Time) corrosion.Statement {
	return corrosion.Stmt(`INSERT INTO `+table+` (name, project, uid, generation, spec, updated_at) VALUES (?, ?, ?, 1, ?, ?)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, project = excluded.project,
  generation = `+table+`.generation + 1, updated_at = excluded.updated_at
WHERE `+table+`.spec IS NOT excluded.spec OR `+table+`.project IS NOT excluded.project`,
		name, project, newUID(), body, now.UnixMilli())
}

func newUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// DeleteProject deletes every spec of a project in one transaction.
func (s *Store) DeleteProject(ctx context.Context, project string) (ApplyResult, error) {
	existing, err := s.projectSpecs(ctx, project)
	if err != nil {
		return ApplyResult{}, err
	}
	res, stmts := planApply(nil, existing, project, time.Now())
	if len(stmts) == 0 {
		return res, nil
	}
	if _, err := s.c.Exec(ctx, stmts...); err != nil {
		return ApplyResult{}, fmt.Errorf("delete project %s: %w", project, err)
	}
	return res, nil
}

// DeleteSpec deletes one build or image spec; ErrNotFound if absent.
func (s *Store) DeleteSpec(ctx context.Context, kind, name string) error {
	table, ok := specTables[kind]
	if !ok {
		return fmt.Errorf("unknown kind %q (want build or image)", kind)
	}
	res, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM "+table+" WHERE name = ?", name))
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	if res.Results[0].RowsAffected == 0 {
		return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
	}
	return nil
}
