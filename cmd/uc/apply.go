package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

type composeFlags struct {
	files          []string
	projectName    string
	profiles       []string
	maxContextSize string
}

func (f *composeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "Compose file (repeatable)")
	cmd.Flags().StringVarP(&f.projectName, "project-name", "p", "", "project name (default: from the file or directory)")
	cmd.Flags().StringArrayVar(&f.profiles, "profile", nil, "Compose profile to enable (repeatable)")
	cmd.Flags().StringVar(&f.maxContextSize, "max-context-size", "1GiB", "refuse a local build context larger than this")
}

func (f *composeFlags) load(cmd *cobra.Command) (*api.Project, error) {
	limit, err := units.RAMInBytes(f.maxContextSize)
	if err != nil || limit <= 0 {
		return nil, fmt.Errorf("--max-context-size %q: want a size like 512MiB", f.maxContextSize)
	}
	return api.LoadCompose(cmd.Context(), api.LoadOptions{
		Files: f.files, ProjectName: f.projectName, Profiles: f.profiles, MaxContextSize: limit,
	})
}

// fileName names the Compose file in error messages.
func (f *composeFlags) fileName() string {
	if len(f.files) == 0 {
		return "compose.yaml"
	}
	return filepath.Base(f.files[0])
}

func newApplyCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var dryRun bool
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "apply -f compose.yaml",
		Short: "Record a Compose project's BuildSpecs and ImageSpecs as desired state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := cf.load(cmd)
			if err != nil {
				return err
			}
			for _, w := range p.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			for _, n := range p.Notes {
				fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
			}
			if dryRun {
				return printDryRun(cmd.OutOrStdout(), p)
			}
			return explain(apply(cmd, g, &cf, p, wait))
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the specs as YAML and write nothing")
	cmd.Flags().BoolVar(&wait.enabled, "wait", false, "wait for the project's builds, one progress line each; non-zero if one fails")
	cmd.Flags().DurationVar(&wait.timeout, "timeout", 30*time.Minute, "with --wait: give up after this long")
	return cmd
}

// waitFlags are apply's --wait and --timeout.
type waitFlags struct {
	enabled bool
	timeout time.Duration
}

// waitForBuilds follows the project's builds until each has built its
// current generation.
func waitForBuilds(cmd *cobra.Command, store *state.Store, p *api.Project, wf waitFlags) error {
	if !wf.enabled || len(p.Builds) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), wf.timeout)
	defer cancel()
	w := waiter{store: store, out: cmd.OutOrStdout(), seen: map[string]string{}}
	for _, b := range p.Builds {
		w.builds = append(w.builds, b.Name)
	}
	return w.run(ctx)
}

func apply(cmd *cobra.Command, g *globals, cf *composeFlags, p *api.Project, wf waitFlags) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	if err := checkNodes(cmd, store, cf.fileName(), p); err != nil {
		return err
	}
	limit, _ := units.RAMInBytes(cf.maxContextSize)
	if err := shipContexts(cmd, store, cf.fileName(), p, limit); err != nil {
		return err
	}
	res, err := store.ApplyProject(cmd.Context(), p, false)
	if err != nil {
		return err
	}
	printChanges(cmd.OutOrStdout(), res)
	return waitForBuilds(cmd, store, p, wf)
}

// checkNodes refuses placements that name nodes the cluster does not know.
func checkNodes(cmd *cobra.Command, store *state.Store, file string, p *api.Project) error {
	nodes, err := store.ListNodes(cmd.Context())
	if err != nil {
		return err
	}
	known := make([]string, 0, len(nodes))
	for _, n := range nodes {
		known = append(known, n.Name)
	}
	for _, b := range p.Builds {
		if n := b.Builder.Node; n != "" && !slices.Contains(known, n) {
			return fmt.Errorf("%s: services.%s.x-uc-builder: unknown node %q (known nodes: %s)", file, b.Service, n, orNone(known))
		}
	}
	for _, img := range p.Images {
		for _, name := range img.Placement.NodeNames() {
			if !slices.Contains(known, name) {
				return fmt.Errorf("%s: services.%s.%s: unknown node %q (known nodes: %s)",
					file, img.Service, placementField(img.Placement), name, orNone(known))
			}
		}
	}
	return nil
}

func placementField(p api.Placement) string {
	if len(p.Nodes) > 0 {
		return "x-machines"
	}
	return "deploy.placement.constraints"
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none registered yet"
	}
	return strings.Join(names, ", ")
}

func printDryRun(w io.Writer, p *api.Project) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	defer enc.Close()
	// A struct, not a map, so that the project comes first.
	return enc.Encode(struct {
		Project string          `yaml:"project"`
		Builds  []api.BuildSpec `yaml:"builds"`
		Images  []api.ImageSpec `yaml:"images"`
	}{p.Name, p.Builds, p.Images})
}

func printChanges(w io.Writer, res state.ApplyResult) {
	for _, c := range res.Changes {
		fmt.Fprintf(w, "%s %s %s\n", c.Kind, c.Name, c.Action)
	}
	if !res.Wrote() {
		fmt.Fprintln(w, "nothing changed")
	}
}
