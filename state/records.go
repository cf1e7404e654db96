package state

import (
	"context"
	"encoding/json"
	"fmt"
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
// A part of a split multi-platform build is not the build's status.
func (r BuildRecord) Current() (st api.BuildStatus, ok bool) {
	for _, s := range r.Status {
		if s.SpecUID != r.Meta.UID || s.Detail.Part != "" {
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
