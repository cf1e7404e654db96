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

// storedSpec is a spec as stored: its canonical body and where it was
// applied from.
type storedSpec struct {
	body, origin string
}

// ApplyOptions change how ApplyProject writes.
type ApplyOptions struct {
	// DryRun only reports what the apply would do.
	DryRun bool
	// Force takes over specs that were applied from another origin.
	Force bool
}

// OriginConflict is an apply that would change or delete specs another
// place applied under the same project name.
type OriginConflict struct {
	Project     string
	Origin      string   // where this apply comes from
	OtherOrigin string   // where the specs were applied from
	Changes     []Change // what this apply would do to them
}

func (e *OriginConflict) Error() string {
	var what []string
	for _, c := range e.Changes {
		verb := "change"
		if c.Action == Deleted {
			verb = "delete"
		}
		what = append(what, verb+" "+c.Kind+" "+c.Name)
	}
	return fmt.Sprintf("project %s was applied from %s; this apply, from %s, would %s (use --force to take the project over, or --project-name to apply under another name)",
		e.Project, e.OtherOrigin, e.Origin, strings.Join(what, ", "))
}

// ApplyProject makes the project's specs exactly p's, in one transaction:
// new specs are created, changed ones get a new generation, specs of the
// project that p no longer has are deleted, and unchanged ones are not
// written at all. Specs applied from another origin are changed or deleted
// only with Force (an *OriginConflict otherwise, also on a dry run). A
// build into a repository another project owns is refused, Force or not
// (a *RepositoryConflict).
func (s *Store) ApplyProject(ctx context.Context, p *api.Project, opts ApplyOptions) (ApplyResult, error) {
	desired, err := encodeProject(p)
	if err != nil {
		return ApplyResult{}, err
	}
	existing, err := s.projectSpecs(ctx, p.Name)
	if err != nil {
		return ApplyResult{}, err
	}
	plan := planApply(desired, existing, p.Name, p.Origin, time.Now())
	if c := plan.conflict(p.Name, p.Origin); c != nil && !opts.Force {
		return plan.result, c
	}
	if err := s.checkRepositories(ctx, p); err != nil {
		return plan.result, err
	}
	if opts.DryRun || len(plan.stmts) == 0 {
		return plan.result, nil
	}
	if _, err := s.c.Exec(ctx, plan.stmts...); err != nil {
		return ApplyResult{}, fmt.Errorf("apply project %s: %w", p.Name, err)
	}
	return plan.result, nil
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
func (s *Store) projectSpecs(ctx context.Context, project string) (map[string]storedSpec, error) {
	out := map[string]storedSpec{}
	for kind, table := range specTables {
		_, rows, err := s.c.QueryAll(ctx, corrosion.Stmt("SELECT name, spec, origin FROM "+table+" WHERE project = ?", project))
		if err != nil {
			return nil, fmt.Errorf("read %s specs of project %s: %w", kind, project, err)
		}
		for _, r := range rows {
			out[kind+"/"+corrosion.AsString(r[0])] = storedSpec{canonical(kind, corrosion.AsString(r[1])), corrosion.AsString(r[2])}
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

// applyPlan is what an apply does: the result to report, the statements
// to run, and the origin of each spec it changes or deletes.
type applyPlan struct {
	result  ApplyResult
	stmts   []corrosion.Statement
	touched map[Change]string
}

// conflict is the first other origin whose specs the plan changes or
// deletes, with every change it makes to that origin's specs.
func (p applyPlan) conflict(project, origin string) *OriginConflict {
	var c *OriginConflict
	for _, ch := range p.result.Changes {
		other, ok := p.touched[ch]
		if !ok || other == "" || other == origin {
			continue
		}
		if c == nil {
			c = &OriginConflict{Project: project, Origin: cmp.Or(origin, "an unknown place"), OtherOrigin: other}
		}
		if other == c.OtherOrigin {
			c.Changes = append(c.Changes, ch)
		}
	}
	return c
}

func planApply(desired []desiredSpec, existing map[string]storedSpec, project, origin string, now time.Time) applyPlan {
	plan := applyPlan{touched: map[Change]string{}}
	for _, d := range desired {
		old, ok := existing[d.kind+"/"+d.name]
		delete(existing, d.kind+"/"+d.name)
		action := Created
		switch {
		case ok && old.body == d.body:
			action = Unchanged
		case ok:
			action = Configured
		}
		ch := Change{d.kind, d.name, action}
		plan.result.Changes = append(plan.result.Changes, ch)
		if action == Configured {
			plan.touched[ch] = old.origin
		}
		if action != Unchanged || old.origin != origin {
			plan.stmts = append(plan.stmts, upsertSpec(specTables[d.kind], d.name, project, d.body, origin, now))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(existing)) {
		kind, name, _ := strings.Cut(key, "/")
		ch := Change{kind, name, Deleted}
		plan.result.Changes = append(plan.result.Changes, ch)
		plan.touched[ch] = existing[key].origin
		plan.stmts = append(plan.stmts, deleteSpec(kind, name)...)
	}
	slices.SortStableFunc(plan.result.Changes, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	return plan
}

// upsertSpec bumps the generation only when the body really changes, and
// writes nothing otherwise (no gossip for a no-op). A new origin alone is
// recorded without a new generation: nothing to reconcile.
func upsertSpec(table, name, project, body, origin string, now time.Time) corrosion.Statement {
	return corrosion.Stmt(`INSERT INTO `+table+` (name, project, uid, generation, spec, updated_at, origin) VALUES (?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, project = excluded.project, origin = excluded.origin,
  generation = CASE WHEN `+table+`.spec IS NOT excluded.spec OR `+table+`.project IS NOT excluded.project
    THEN `+table+`.generation + 1 ELSE `+table+`.generation END,
  updated_at = excluded.updated_at
WHERE `+table+`.spec IS NOT excluded.spec OR `+table+`.project IS NOT excluded.project OR `+table+`.origin IS NOT excluded.origin`,
		name, project, newUID(), body, now.UnixMilli(), origin)
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
	plan := planApply(nil, existing, project, "", time.Now())
	if len(plan.stmts) == 0 {
		return plan.result, nil
	}
	if _, err := s.c.Exec(ctx, plan.stmts...); err != nil {
		return ApplyResult{}, fmt.Errorf("delete project %s: %w", project, err)
	}
	return plan.result, nil
}

// deleteSpec deletes a spec, and the status rows of a build that uc
// build wrote off the cluster: no node owns them to clean them up.
func deleteSpec(kind, name string) []corrosion.Statement {
	stmts := []corrosion.Statement{corrosion.Stmt("DELETE FROM "+specTables[kind]+" WHERE name = ?", name)}
	if kind == KindBuild {
		stmts = append(stmts, corrosion.Stmt("DELETE FROM build_status WHERE name = ? AND node LIKE ?", name, api.LocalBuilderPrefix+"%"))
	}
	return stmts
}

// DeleteSpec deletes one build or image spec; ErrNotFound if absent.
func (s *Store) DeleteSpec(ctx context.Context, kind, name string) error {
	_, ok := specTables[kind]
	if !ok {
		return fmt.Errorf("unknown kind %q (want build or image)", kind)
	}
	res, err := s.c.Exec(ctx, deleteSpec(kind, name)...)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, name, err)
	}
	if res.Results[0].RowsAffected == 0 {
		return fmt.Errorf("%s %s: %w", kind, name, ErrNotFound)
	}
	return nil
}
