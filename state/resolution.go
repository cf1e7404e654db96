package state

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/corrosion"
)

// PutResolution records this node's resolution of an image's tag. It
// always writes: updated_at is when the tag was last checked, which a
// periodic refresh counts from. Nodes watch the other columns only.
func (s *Store) PutResolution(ctx context.Context, r api.ImageResolution) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt(`INSERT INTO image_resolution
  (image, node, spec_uid, observed_generation, ref, digest, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (image, node) DO UPDATE SET spec_uid = excluded.spec_uid, observed_generation = excluded.observed_generation,
  ref = excluded.ref, digest = excluded.digest, error = excluded.error, updated_at = excluded.updated_at`,
		r.Image, r.Node, r.SpecUID, r.ObservedGeneration, r.Ref, r.Digest, r.Error, stamp(r.UpdatedAt)))
	if err != nil {
		return fmt.Errorf("write resolution of %s by %s: %w", r.Image, r.Node, err)
	}
	return nil
}

// DeleteResolution removes this node's resolution row of a deleted image.
func (s *Store) DeleteResolution(ctx context.Context, image, node string) error {
	_, err := s.c.Exec(ctx, corrosion.Stmt("DELETE FROM image_resolution WHERE image = ? AND node = ?", image, node))
	return err
}

// RefreshImages asks for the named images' tags (every image's, when names
// is empty) to be resolved again: each gets a new generation without a
// spec change, so that its owner resolves the tag anew and every node
// pulls the digest it names now, like `kubectl rollout restart`. Built
// images and images pinned by digest have no tag to refresh; they are
// returned in skipped. One transaction.
func (s *Store) RefreshImages(ctx context.Context, names []string) (refreshed, skipped []string, err error) {
	imgs, err := s.ListImages(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	found := map[string]api.ImageSpec{}
	for _, img := range imgs {
		found[img.Spec.Name] = img.Spec
	}
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(found))
	}
	for _, name := range names {
		spec, ok := found[name]
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("image %s: %w", name, ErrNotFound)
		case spec.Build != "" || strings.Contains(spec.Image, "@"):
			skipped = append(skipped, name)
			continue
		}
		refreshed = append(refreshed, name)
	}
	if err := s.bumpGenerations(ctx, "image_specs", refreshed); err != nil {
		return nil, nil, fmt.Errorf("refresh images: %w", err)
	}
	return refreshed, skipped, nil
}

// bumpGenerations gives the named specs a new generation without a spec
// change, in one transaction.
func (s *Store) bumpGenerations(ctx context.Context, table string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	stmts := make([]corrosion.Statement, len(names))
	for i, name := range names {
		stmts[i] = corrosion.Stmt("UPDATE "+table+" SET generation = generation + 1, updated_at = ? WHERE name = ?", now, name)
	}
	_, err := s.c.Exec(ctx, stmts...)
	return err
}

// RefreshBuilds asks for the named builds' followed branches
// (x-uc-follow) to be resolved now: each gets a new generation without a
// spec change, which its owner answers by resolving the branch. Builds
// that follow no branch (their commit is pinned at apply) are returned in
// skipped. One transaction.
func (s *Store) RefreshBuilds(ctx context.Context, names []string) (refreshed, skipped []string, err error) {
	recs, err := s.ListBuilds(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	found := map[string]api.BuildSpec{}
	for _, b := range recs {
		found[b.Spec.Name] = b.Spec
	}
	for _, name := range names {
		spec, ok := found[name]
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("build %s: %w", name, ErrNotFound)
		case !spec.Follows():
			skipped = append(skipped, name)
			continue
		}
		refreshed = append(refreshed, name)
	}
	if err := s.bumpGenerations(ctx, "build_specs", refreshed); err != nil {
		return nil, nil, fmt.Errorf("refresh builds: %w", err)
	}
	return refreshed, skipped, nil
}
