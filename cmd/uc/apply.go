package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/apply"
	"github.com/ucplane/uc/state/corrosion"
)

type composeFlags struct {
	files          []string
	projectName    string
	profiles       []string
	maxContextSize string
	contexts       string
	buildOn        string
}

func (f *composeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "Compose or Bake file (repeatable)")
	cmd.Flags().StringVarP(&f.projectName, "project-name", "p", "", "project name (default: from the file or directory)")
	cmd.Flags().StringArrayVar(&f.profiles, "profile", nil, "Compose profile to enable (repeatable)")
	cmd.Flags().StringVar(&f.maxContextSize, "max-context-size", "1GiB", "refuse a local build context larger than this")
	cmd.Flags().StringVar(&f.contexts, "contexts", "", "an image monorepo instead of -f: a directory of NN-name/ contexts (each a Dockerfile and info.edn), or one holding contexts/")
}

// options are the flags as apply.Options, for commands that read only
// the project's name (--max-context-size is not checked).
func (f *composeFlags) options() apply.Options {
	return apply.Options{Compose: compose.LoadOptions{Files: f.files, ProjectName: f.projectName, Profiles: f.profiles}, Contexts: f.contexts}
}

// applyOptions are the flags as apply.Options, the context size included.
func (f *composeFlags) applyOptions() (apply.Options, error) {
	limit, err := units.RAMInBytes(f.maxContextSize)
	if err != nil || limit <= 0 {
		return apply.Options{}, fmt.Errorf("--max-context-size %q: want a size like 512MiB", f.maxContextSize)
	}
	opts := f.options()
	opts.Compose.MaxContextSize, opts.BuildOn = limit, f.buildOn
	return opts, nil
}

func newApplyCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var dryRun, force bool
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "apply -f compose.yaml|docker-bake.hcl [GROUP|TARGET...] [--dry-run] [--wait] [--force]",
		Short: "Record a Compose or Bake project's BuildSpecs and ImageSpecs as desired state",
		Long: `Record a project's BuildSpecs and ImageSpecs as desired state.

A Compose file applies all its services. A Bake file (docker-bake.hcl, .json,
docker-bake.override.hcl; found as Bake finds them when -f is absent and no
Compose file is there) applies its default group, or the groups and targets
named, as docker buildx bake does; the project is --project-name or the
directory's name.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := cf.applyOptions()
			if err != nil {
				return err
			}
			opts.Targets = args
			opts.DryRun, opts.Force, opts.Progress = dryRun, force, cmd.OutOrStdout()
			p, err := apply.Load(cmd.Context(), opts)
			if p != nil {
				printLoadNotes(cmd.ErrOrStderr(), p)
			}
			if err != nil {
				return err
			}
			if dryRun {
				return explain(dryRunApply(cmd, g, p, opts))
			}
			return explain(runApply(cmd, g, p, wait, opts))
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "run every check a real apply runs, print the specs and what would change as YAML, and write nothing")
	cmd.Flags().StringVar(&cf.buildOn, "build", "", "where every build is built, over the file's x-uc-build: local (uc build, off the cluster) or cluster")
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

// printLoadNotes shows what the loader accepted with no effect, or with
// an effect the user may not expect, and how names were mapped.
func printLoadNotes(w io.Writer, p *api.Project) {
	for _, msg := range p.Warnings {
		fmt.Fprintln(w, "warning:", msg)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func runApply(cmd *cobra.Command, g *globals, p *api.Project, wf waitFlags, opts apply.Options) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	res, err := apply.Apply(cmd.Context(), store, p, opts)
	if err != nil {
		return err
	}
	printChanges(cmd.OutOrStdout(), res)
	return waitForBuilds(cmd, store, p, wf)
}

// stateChecks are what a dry run cannot check without the state API.
const stateChecks = "that placement and x-uc-builder nodes exist, and what the apply would change or delete (another origin's specs included)"

// dryRunApply prints the specs, and what the apply would change when the
// state API answers; unreachable, it says which checks it could not run.
func dryRunApply(cmd *cobra.Command, g *globals, p *api.Project, opts apply.Options) error {
	store, err := g.store()
	if err != nil {
		return err
	}
	res, err := apply.Check(cmd.Context(), store, p, opts)
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
