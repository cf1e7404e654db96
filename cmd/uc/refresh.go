package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/state"
)

func newRefreshCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh images [NAME...]",
		Short: "Resolve image tags again, so that every node pulls what they name now",
		Long: `A tag is resolved to a digest once per spec generation, so that nodes never
disagree about what it means. When the tag has moved (a new nginx:1.27 patch,
a re-pushed :latest), refresh resolves it again; every node then pulls the new
digest, and keeps the old one until it is pruned. Without names, every image
with a tag is refreshed. Follow with "uc wait images".`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.imagesStore(args)
			if err != nil {
				return explain(err)
			}
			refreshed, skipped, err := store.RefreshImages(cmd.Context(), args[1:])
			if errors.Is(err, state.ErrNotFound) {
				return fmt.Errorf("%w (see `uc get images`)", err)
			}
			if err != nil {
				return explain(err)
			}
			out := cmd.OutOrStdout()
			for _, name := range refreshed {
				fmt.Fprintf(out, "image %s refreshed\n", name)
			}
			for _, name := range skipped {
				fmt.Fprintf(out, "image %s has no tag to refresh (built by uc, or pinned by digest)\n", name)
			}
			return nil
		},
	}
}
