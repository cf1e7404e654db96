package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/state"
)

func newRefreshCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh images|builds|syncs [NAME...]",
		Short: "Resolve image tags, or followed git branches (builds, syncs), again now",
		Long: `A tag is resolved to a digest once per spec generation, so that nodes never
disagree about what it means. When the tag has moved (a new nginx:1.27 patch,
a re-pushed :latest), "refresh images" resolves it again; every node then
pulls the new digest, and keeps the old one until it is pruned. Without
names, every image with a tag is refreshed. Follow with "uc wait images".

A build that follows a git branch (x-uc-follow) resolves it on its interval;
"refresh builds" has its owner resolve it now, and build a new commit. A push
webhook (ucd --webhook-listen) does the same on every push. Without names,
every followed build is refreshed. "refresh syncs" does the same for syncs
(uc sync add).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ok := refreshKinds[args[0]]
			if !ok {
				return fmt.Errorf("unknown kind %q: want images, builds or syncs", args[0])
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			refreshed, skipped, err := kind.refresh(store, cmd.Context(), args[1:])
			if errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("%w (see `uc get %ss`)", err, kind.name)
			}
			if err != nil {
				return explain(err)
			}
			out := cmd.OutOrStdout()
			for _, name := range refreshed {
				fmt.Fprintf(out, "%s %s refreshed\n", kind.name, name)
			}
			for _, name := range skipped {
				fmt.Fprintf(out, "%s %s %s\n", kind.name, name, kind.skipped)
			}
			return nil
		},
	}
}

type refreshKind struct {
	name    string
	skipped string
	refresh func(s *state.Store, ctx context.Context, names []string) (refreshed, skipped []string, err error)
}

var refreshKinds = map[string]refreshKind{}

func init() {
	images := refreshKind{name: "image", skipped: "has no tag to refresh (built by uc, or pinned by digest)", refresh: (*state.Store).RefreshImages}
	builds := refreshKind{name: "build", skipped: "follows no git branch (x-uc-follow): uc apply pins its commit", refresh: refreshBuilds}
	for _, k := range []string{"image", "images"} {
		refreshKinds[k] = images
	}
	for _, k := range []string{"build", "builds"} {
		refreshKinds[k] = builds
	}
	syncs := refreshKind{name: "sync", refresh: refreshSyncs}
	for _, k := range []string{"sync", "syncs"} {
		refreshKinds[k] = syncs
	}
}

// refreshBuilds refreshes the named builds, or every followed build.
func refreshBuilds(s *state.Store, ctx context.Context, names []string) ([]string, []string, error) {
	if len(names) == 0 {
		recs, err := s.ListBuilds(ctx, "")
		if err != nil {
			return nil, nil, err
		}
		for _, b := range recs {
			if b.Spec.Follows() {
				names = append(names, b.Spec.Name)
			}
		}
	}
	return s.RefreshBuilds(ctx, names)
}

// refreshSyncs refreshes the named syncs, or every sync.
func refreshSyncs(s *state.Store, ctx context.Context, names []string) ([]string, []string, error) {
	recs, err := s.ListSyncs(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.Spec.Name] = true
	}
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(known))
	}
	for _, n := range names {
		if !known[n] {
			return nil, nil, fmt.Errorf("sync %s: %w", n, state.ErrNotFound)
		}
	}
	return names, nil, s.RefreshSyncs(ctx, names)
}
