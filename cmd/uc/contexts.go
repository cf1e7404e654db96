package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/monorepo"
)

func newContextsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contexts",
		Short: "Work on an image monorepo (see uc apply --contexts)",
	}
	cmd.AddCommand(newCascadeCmd(g))
	return cmd
}

func newCascadeCmd(g *globals) *cobra.Command {
	var dryRun bool
	var projectName string
	cmd := &cobra.Command{
		Use:   "cascade DIR [--dry-run]",
		Short: "Raise the patch version of every descendant of a changed image",
		Long: `Raise the patch version in info.edn of every image that descends (through
FROM lines) from an image whose files differ from what the last uc apply
shipped, unless its version was already raised since. The plan is printed
first; --dry-run prints it and changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, contexts, err := monorepo.Read(cmd.Context(), monorepo.LoadOptions{Dir: args[0], ProjectName: projectName})
			if err != nil {
				return err
			}
			store, err := g.store()
			if err != nil {
				return err
			}
			builds, err := store.ListBuilds(cmd.Context(), "")
			if err != nil {
				return explain(err)
			}
			applied := map[string]api.BuildSpec{}
			for _, b := range builds {
				if b.Spec.Project == p.Name {
					applied[b.Spec.Name] = b.Spec
				}
			}
			if len(applied) == 0 {
				return fmt.Errorf("project %s was never applied: nothing to compare its images with (uc apply --contexts %s first)", p.Name, args[0])
			}
			return cascade(cmd, monorepo.Cascade(p, contexts, applied), dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().StringVarP(&projectName, "project-name", "p", "", "the project as applied (default: the directory's name)")
	return cmd
}

func cascade(cmd *cobra.Command, bumps []monorepo.Bump, dryRun bool) error {
	out := cmd.OutOrStdout()
	if len(bumps) == 0 {
		fmt.Fprintln(out, "nothing to raise: no image descends from a changed one with its applied version")
		return nil
	}
	for _, b := range bumps {
		fmt.Fprintln(out, b)
	}
	if dryRun {
		return nil
	}
	for _, b := range bumps {
		if err := b.Write(); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "raised %d versions; uc apply --contexts builds them\n", len(bumps))
	return nil
}
