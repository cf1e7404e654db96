package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/state/apply"
)

func newDeleteCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "delete build|image NAME | delete -f compose.yaml [--force]",
		Short: "Delete one spec, or every spec of a Compose project",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(cf.files) > 0 {
				if len(args) > 0 {
					return errors.New("give either -f or KIND NAME, not both")
				}
				return explain(deleteProject(cmd, g, &cf, force))
			}
			if len(args) != 2 {
				return errors.New("usage: uc delete build|image NAME, or uc delete -f compose.yaml")
			}
			return explain(deleteOne(cmd, g, args[0], args[1]))
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "with -f: delete a project of the same name applied from somewhere else")
	return cmd
}

func deleteOne(cmd *cobra.Command, g *globals, kind, name string) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	if err := store.DeleteSpec(cmd.Context(), kind, name); err != nil {
		return notFound(err, kind, name)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s deleted\n", kind, name)
	return nil
}

// deleteProject applies an empty project from this file's origin: every
// spec goes, and specs another origin applied under the same name are
// refused without --force, as apply refuses them. Only the project's name
// is read: its build contexts may be gone already.
func deleteProject(cmd *cobra.Command, g *globals, cf *composeFlags, force bool) error {
	opts := cf.options()
	opts.Force = force
	p, err := apply.LoadName(cmd.Context(), opts)
	if err != nil {
		return err
	}
	store, err := g.store()
	if err != nil {
		return err
	}
	res, err := apply.Delete(cmd.Context(), store, p, opts)
	if err != nil {
		return err
	}
	printChanges(cmd.OutOrStdout(), res)
	return nil
}
