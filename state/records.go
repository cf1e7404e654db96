package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// BuildRecord is a build spec with every node's status of it.
type BuildRecord struct {
	Spec   api.BuildSpec     `json:"spec" yaml:"spec"`
	Meta   SpecMeta          `json:"meta" yaml:"meta"`
	Status []api.BuildStatus `json:"status" yaml:"status"`
}

// Current is the status written for this incarnation of the spec that
// observed the newest generation; ok is false when no node has reported.
func (r BuildRecord) Current() (st api.BuildStatus, ok bool) {
	for _, s := range r.Status {
		if s.SpecUID != r.Meta.UID {
			continue
		}
		if !ok || s.ObservedGeneration > st.ObservedGeneration ||
			(s.ObservedGeneration == st.ObservedGeneration && s.UpdatedAt.After(st.UpdatedAt)) {
			st, ok = s, true
		}
	}
	return st, ok
}

// ImageRecord is an image spec with every node's presence row for it.
type ImageRecord struct {
	Spec     api.ImageSpec       `json:"spec" yaml:"spec"`
	Meta     SpecMeta            `json:"meta" yaml:"meta"`
	Presence []api.ImagePresence `json:"presence" yaml:"presence"`
}

const specColumns = "name, uid, generation, spec, updated_at"

// ListBuilds returns build specs with their status, sorted by name. With a
// name it returns at most that one. The slice is never nil, so that an
// empty list encodes as [] rather than null.
func (s *Store) ListBuilds(ctx context.Context, name string) ([]BuildRecord, error) {
	out := []BuildRecord{}
	err := s.eachSpec(ctx, KindBuild, name, func(meta SpecMeta, body []byte) error {
		var r BuildRecord
		r.Meta = meta
		out = append(out, r)
		return json.Unmarshal(body, &out[len(out)-1].Spec)
	})
	if err != nil {
		return nil, err
	}
	statuses, err := s.buildStatuses(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Status = statuses[out[i].Spec.Name]
	}
	return out, nil
}

// GetBuild returns one build or ErrNotFound.
func (s *Store) GetBuild(ctx context.Context, name string) (BuildRecord, error) {
	recs, err := s.ListBuilds(ctx, name)
	if err != nil {
		return BuildRecord{}, err
	}
	if len(recs) == 0 {
		return BuildRecord{}, fmt.Errorf("build %s: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// ListImages returns image specs with their presence rows, sorted by name;
// like ListBuilds, never a nil slice.
func (s *Store) ListImages(ctx context.Context, name string) ([]ImageRecord, error) {
	out := []ImageRecord{}
	err := s.eachSpec(ctx, KindImage, name, func(meta SpecMeta, body []byte) error {
		out = append(out, ImageRecord{Meta: meta})
		return json.Unmarshal(body, &out[len(out)-1].Spec)
	})
	if err != nil {
		return nil, err
	}
	presence, err := s.presence(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Presence = presence[out[i].Spec.Name]
	}
	return out, nil
}

// GetImage returns one image or ErrNotFound.
func (s *Store) GetImage(ctx context.Context, name string) (ImageRecord, error) {
	recs, err := s.ListImages(ctx, name)
	if err != nil {
		return ImageRecord{}, err
	}
	if len(recs) == 0 {
		return ImageRecord{}, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// eachSpec calls fn for every spec of a kind (or the named one).
func (s *Store) eachSpec(ctx context.Context, kind, name string, fn func(SpecMeta, []byte) error) error {
	q := "SELECT " + specColumns + " FROM " + specTables[kind]
	stmt := corrosion.Stmt(q + " ORDER BY name")
	if name != "" {
		stmt = corrosion.Stmt(q+" WHERE name = ?", name)
	}
	_, rows, err := s.c.QueryAll(ctx, stmt)
	if err != nil {
		return fmt.Errorf("list %s specs: %w", kind, err)
	}
	for _, r := range rows {
		meta := SpecMeta{UID: corrosion.AsString(r[1]), Generation: corrosion.AsInt(r[2]), UpdatedAt: fromMillis(r[4])}
		if err := fn(meta, []byte(corrosion.AsString(r[3]))); err != nil {
			return fmt.Errorf("%s %s: decode spec: %w", kind, corrosion.AsString(r[0]), err)
		}
	}
	return nil
}

func (s *Store) buildStatuses(ctx context.Context, name string) (map[string][]api.BuildStatus, error) {
	q := "SELECT name, node, spec_uid, observed_generation, phase, digest, message, conditions, updated_at, detail FROM build_status"
	stmt := corrosion.Stmt(q + " ORDER BY name, node")
	if name != "" {
		stmt = corrosion.Stmt(q+" WHERE name = ? ORDER BY node", name)
	}
	_, rows, err := s.c.QueryAll(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("list build status: %w", err)
	}
	out := map[string][]api.BuildStatus{}
	for _, r := range rows {
		st := api.BuildStatus{Name: corrosion.AsString(r[0]), Node: corrosion.AsString(r[1]), SpecUID: corrosion.AsString(r[2]),
			ObservedGeneration: corrosion.AsInt(r[3]), Phase: corrosion.AsString(r[4]), Digest: corrosion.AsString(r[5]),
			Message: corrosion.AsString(r[6]), UpdatedAt: fromMillis(r[8])}
		if err := json.Unmarshal([]byte(corrosion.AsString(r[7])), &st.Conditions); err != nil {
			return nil, fmt.Errorf("build status %s on %s: conditions: %w", st.Name, st.Node, err)
		}
		if err := json.Unmarshal([]byte(corrosion.AsString(r[9])), &st.Detail); err != nil {
			return nil, fmt.Errorf("build status %s on %s: detail: %w", st.Name, st.Node, err)
		}
		out[st.Name] = append(out[st.Name], st)
	}
	return out, nil
}

func (s *Store) presence(ctx context.Context, image string) (map[string][]api.ImagePresence, error) {
	q := "SELECT image, node, spec_uid, observed_generation, state, digest, error, updated_at, detail FROM image_presence"
	stmt := corrosion.Stmt(q + " ORDER BY image, node")
	if image != "" {
		stmt = corrosion.Stmt(q+" WHERE image = ? ORDER BY node", image)
	}
	_, rows, err := s.c.QueryAll(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("list image presence: %w", err)
	}
	out := map[string][]api.ImagePresence{}
	for _, r := range rows {
		p := api.ImagePresence{Image: corrosion.AsString(r[0]), Node: corrosion.AsString(r[1]), SpecUID: corrosion.AsString(r[2]),
			ObservedGeneration: corrosion.AsInt(r[3]), State: corrosion.AsString(r[4]), Digest: corrosion.AsString(r[5]),
			Error: corrosion.AsString(r[6]), UpdatedAt: fromMillis(r[7])}
		if err := json.Unmarshal([]byte(corrosion.AsString(r[8])), &p.Detail); err != nil {
			return nil, fmt.Errorf("presence of %s on %s: detail: %w", p.Image, p.Node, err)
		}
		out[p.Image] = append(out[p.Image], p)
	}
	return out, nil
}

// PutBuildStatus writes a node's status of a build. The write is skipped
// when nothing but the timestamp would change.
func (s *Store) PutBuildStatus(ctx context.Context, st api.BuildStatus) error {
	conds, err := json.Marshal(nonNilSlice(st.Conditions))
	if err != nil {
		return err
	}
	detail, err := json.Marshal(st.Detail)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO build_status
  (name, node, spec_uid, observed_generation, phase, digest, message, conditions, detail, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name, node) DO UPDATE SET spec_uid = excluded.spec_uid,
  observed_generation = excluded.observed_generation, phase = excluded.phase, digest = excluded.digest,
  message = excluded.message, conditions = excluded.conditions, detail = excluded.detail,
  updated_at = excluded.updated_at
WHERE (build_status.spec_uid, build_status.observed_generation, build_status.phase, build_status.digest,
       build_status.message, build_status.conditions, build_status.detail)
  IS NOT (excluded.spec_uid, excluded.observed_generation, excluded.phase, excluded.digest,
       excluded.message, excluded.conditions, excluded.detail)`,
		st.Name, st.Node, st.SpecUID, st.ObservedGeneration, st.Phase, st.Digest, st.Message,
		string(conds), string(detail), stamp(st.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("write build status %s on %s: %w", st.Name, st.Node, err)
	}
	return nil
}

// PutPresence writes a node's presence row for an image, skipping no-ops.
func (s *Store) PutPresence(ctx context.Context, p api.ImagePresence) error {
	detail, err := json.Marshal(p.Detail)
	if err != nil {
		return err
	}
	_, err = s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO image_presence
  (image, node, spec_uid, observed_generation, state, digest, error, detail, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (image, node) DO UPDATE SET spec_uid = excluded.spec_uid,
  observed_generation = excluded.observed_generation, state = excluded.state,
  digest = excluded.digest, error = excluded.error, detail = excluded.detail, updated_at = excluded.updated_at
WHERE (image_presence.spec_uid, image_presence.observed_generation, image_presence.state,
       image_presence.digest, image_presence.error, image_presence.detail)
  IS NOT (excluded.spec_uid, excluded.observed_generation, excluded.state, excluded.digest, excluded.error, excluded.detail)`,
		p.Image, p.Node, p.SpecUID, p.ObservedGeneration, p.State, p.Digest, p.Error, string(detail), stamp(p.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("write presence of %s on %s: %w", p.Image, p.Node, err)
	}
	return nil
}

func stamp(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UnixMilli()
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// DeleteBuildStatus removes a node's own status row of a build.
func (s *Store) DeleteBuildStatus(ctx context.Context, name, node string) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM build_status WHERE name = ? AND node = ?", name, node))
	if err != nil {
		return fmt.Errorf("delete build status %s on %s: %w", name, node, err)
	}
	return nil
}

// DeletePresence removes a node's own presence row of an image.
func (s *Store) DeletePresence(ctx context.Context, image, node string) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM image_presence WHERE image = ? AND node = ?", image, node))
	if err != nil {
		return fmt.Errorf("delete presence of %s on %s: %w", image, node, err)
	}
	return nil
}

// WantedDigest is the digest nodes must hold for an image spec to be
// satisfied. For a built image it is the build's result for the spec's
// current generation; ready is false while that build has not succeeded
// (an older digest on the nodes does not count). For an external image it
// is the digest its tag was resolved to for this generation (ready false
// until resolved), or the digest the user pinned.
func (s *Store) WantedDigest(ctx context.Context, img ImageRecord) (digest string, ready bool, err error) {
	if img.Spec.Build != "" {
		res, ready, err := s.BuildResult(ctx, img.Spec.Build)
		return res.Digest, ready, err
	}
	if _, dg, pinned := strings.Cut(img.Spec.Image, "@"); pinned {
		return dg, true, nil
	}
	res, ok, err := s.Resolution(ctx, img.Spec.Name, img.Meta.UID, img.Meta.Generation)
	if err != nil || !ok {
		return "", false, err
	}
	// A tag that does not exist is settled too: the nodes' rows say failed.
	return res.Digest, true, nil
}

// BuildResult is the status that built the current generation of a build
// spec; ready is false until that build has succeeded.
func (s *Store) BuildResult(ctx context.Context, name string) (api.BuildStatus, bool, error) {
	b, err := s.GetBuild(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return api.BuildStatus{}, false, nil
	}
	if err != nil {
		return api.BuildStatus{}, false, err
	}
	cur, ok := b.Current()
	if !ok || cur.Phase != api.BuildSucceeded || cur.ObservedGeneration != b.Meta.Generation {
		return api.BuildStatus{}, false, nil
	}
	return cur, true, nil
}
