package main

import (
	"context"
	"errors"
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
	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
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
	return compose.Load(cmd.Context(), compose.LoadOptions{
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
	var dryRun, force bool
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "apply -f compose.yaml [--dry-run] [--wait] [--force]",
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
			p.Origin = projectOrigin(cmd.Context(), p.Files)
			// A git context's spec names the commit its ref points to now:
			// pinned before any check compares specs with the stored ones.
			if err := pinGitContexts(cmd, cf.fileName(), p); err != nil {
				return err
			}
			opts := state.ApplyOptions{DryRun: dryRun, Force: force}
			if dryRun {
				return explain(dryRunApply(cmd, g, &cf, p, opts))
			}
			return explain(apply(cmd, g, &cf, p, wait, opts))
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run every check a real apply runs, print the specs and what would change as YAML, and write nothing")
	cmd.Flags().BoolVar(&force, "force", false, "take over a project of the same name applied from somewhere else (its specs this file lacks are deleted)")
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

func apply(cmd *cobra.Command, g *globals, cf *composeFlags, p *api.Project, wf waitFlags, opts state.ApplyOptions) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	if _, err := checkState(cmd, store, cf, p, opts); err != nil {
		return err
	}
	limit, _ := units.RAMInBytes(cf.maxContextSize)
	if err := shipContexts(cmd, store, p, limit); err != nil {
		return err
	}
	res, err := store.ApplyProject(cmd.Context(), p, opts)
	if err != nil {
		return err
	}
	printChanges(cmd.OutOrStdout(), res)
	return waitForBuilds(cmd, store, p, wf)
}

// checkState runs every check of an apply that needs the state, and
// returns what the apply would change; it writes nothing. Apply and
// --dry-run share it, so that a passing dry run predicts the apply.
func checkState(cmd *cobra.Command, store *state.Store, cf *composeFlags, p *api.Project, opts state.ApplyOptions) (state.ApplyResult, error) {
	if err := checkNodes(cmd, store, cf.fileName(), p); err != nil {
		return state.ApplyResult{}, err
	}
	opts.DryRun = true
	return store.ApplyProject(cmd.Context(), p, opts)
}

// stateChecks are what a dry run cannot check without the state API.
const stateChecks = "that placement and x-uc-builder nodes exist, and what the apply would change or delete (another origin's specs included)"

// dryRunApply prints the specs, and what the apply would change when the
// state API answers; unreachable, it says which checks it could not run.
func dryRunApply(cmd *cobra.Command, g *globals, cf *composeFlags, p *api.Project, opts state.ApplyOptions) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	res, err := checkState(cmd, store, cf, p, opts)
	var unreachable *corrosion.Unreachable
	if errors.As(err, &unreachable) {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: dry run without the state: %v; not checked: %s\n", err, stateChecks)
		return printDryRun(cmd.OutOrStdout(), p, nil)
	}
	if err != nil {
		return err
	}
	return printDryRun(cmd.OutOrStdout(), p, res.Changes)
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

func printDryRun(w io.Writer, p *api.Project, changes []state.Change) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	defer enc.Close()
	// A struct, not a map, so that the project comes first.
	return enc.Encode(struct {
		Project string          `yaml:"project"`
		Origin  string          `yaml:"origin,omitempty"`
		Notes   []string        `yaml:"notes,omitempty"`
		Builds  []api.BuildSpec `yaml:"builds"`
		Images  []api.ImageSpec `yaml:"images"`
		Changes []state.Change  `yaml:"changes,omitempty"`
	}{p.Name, p.Origin, p.Notes, p.Builds, p.Images, changes})
}

func printChanges(w io.Writer, res state.ApplyResult) {
	for _, c := range res.Changes {
		fmt.Fprintf(w, "%s %s %s\n", c.Kind, c.Name, c.Action)
	}
	if !res.Wrote() {
		fmt.Fprintln(w, "nothing changed")
	}
}
