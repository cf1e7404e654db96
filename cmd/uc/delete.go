package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
)

func newDeleteCmd(g *globals) *cobra.Command {
	var cf composeFlags
	cmd := &cobra.Command{
		Use:   "delete build|image NAME | delete -f compose.yaml",
		Short: "Delete one spec, or every spec of a Compose project",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(cf.files) > 0 {
				if len(args) > 0 {
					return errors.New("give either -f or KIND NAME, not both")
				}
				return explain(deleteProject(cmd, g, &cf))
			}
			if len(args) != 2 {
				return errors.New("usage: uc delete build|image NAME, or uc delete -f compose.yaml")
			}
			return explain(deleteOne(cmd, g, args[0], args[1]))
		},
	}
	cf.register(cmd)
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

func deleteProject(cmd *cobra.Command, g *globals, cf *composeFlags) error {
	// Only the project's name: its build contexts may be gone already.
	project, err := api.LoadProjectName(cmd.Context(), api.LoadOptions{
		Files: cf.files, ProjectName: cf.projectName, Profiles: cf.profiles,
	})
	if err != nil {
		return err
	}
	store, err := g.store()
	if err != nil {
		return err
	}
	res, err := store.DeleteProject(cmd.Context(), project)
	if err != nil {
		return err
	}
	printChanges(cmd.OutOrStdout(), res)
	return nil
}
