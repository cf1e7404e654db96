package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state/apply"
)

func newBuildCmd(g *globals) *cobra.Command {
	var cf composeFlags
	var builder string
	cmd := &cobra.Command{
		Use:   "build [SERVICE...] -f compose.yaml [--builder ADDR]",
		Short: "Build images on this side (a laptop, a CI box) and record them in the cluster",
		Long: `Builds the named services (all of the file's builds, without names) with the
local Docker Engine's BuildKit (DOCKER_HOST, DOCKER_CONTEXT, as docker does) or
the buildkitd at --builder, and pushes them into the internal registry: only the
layers it lacks travel. Each result is recorded in the state as the build of
that spec, with its build key, so that the cluster pre-pulls it and never
builds it itself: the services built here are applied with x-uc-build: local.

The machine must reach the registry's address (uc registry status shows it);
with auth on, uc reads the credential from the state, as uc apply does.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, services []string) error {
			opts, err := cf.applyOptions()
			if err != nil {
				return err
			}
			opts.Progress = cmd.OutOrStdout()
			p, err := apply.Load(cmd.Context(), opts)
			if p != nil {
				printLoadNotes(cmd.ErrOrStderr(), p)
			}
			if err != nil {
				return err
			}
			names, err := buildHere(p, services, opts)
			if err != nil {
				return err
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			res, err := apply.Apply(cmd.Context(), store, p, opts)
			if err != nil {
				return explain(err)
			}
			printChanges(cmd.OutOrStdout(), res)
			return runLocalBuilds(cmd.Context(), g, names, builder)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&builder, "builder", "", "build with the buildkitd at this address (tcp://…, unix://…) instead of the local Docker Engine's BuildKit")
	return cmd
}

// buildHere marks the builds to run here as built off the cluster, so
// that no cluster builder races them, and returns their names in
// dependency order.
func buildHere(p *api.Project, services []string, opts apply.Options) ([]string, error) {
	var names []string
	for i, b := range p.Builds {
		if len(services) > 0 && !slices.Contains(services, b.Service) {
			continue
		}
		p.Builds[i].BuildOn = api.BuildOnLocal
		names = append(names, b.Name)
	}
	for _, s := range services {
		if !slices.ContainsFunc(p.Builds, func(b api.BuildSpec) bool { return b.Service == s }) {
			return nil, fmt.Errorf("%v: no service %q with a build: (project %s)", opts.Compose.Files, s, p.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("project %s has no build to run", p.Name)
	}
	return dependencyOrder(p, names), nil
}

// dependencyOrder sorts names so that each build comes after the builds
// it reads (apply refuses cycles).
func dependencyOrder(p *api.Project, names []string) []string {
	deps := map[string][]string{}
	for _, b := range p.Builds {
		deps[b.Name] = b.DependsOn()
	}
	var out []string
	var visit func(string)
	visit = func(n string) {
		if slices.Contains(out, n) {
			return
		}
		for _, d := range deps[n] {
			if slices.Contains(names, d) {
				visit(d)
			}
		}
		out = append(out, n)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

// runLocalBuilds has ucd build each name here, in order.
func runLocalBuilds(ctx context.Context, g *globals, names []string, builder string) error {
	args := []string{"build"}
	if builder != "" {
		args = append(args, "--builder", builder)
	}
	return runUCD(ctx, g, append(args, names...)...)
}

// runUCD runs a ucd command that needs BuildKit's client or the Docker
// client, which ucd links and uc does not (uc stays a thin client), as
// docker's build goes through the buildx plugin. It passes the state
// API's address and credentials on.
func runUCD(ctx context.Context, g *globals, args ...string) error {
	ucd, err := findUCD()
	if err != nil {
		return err
	}
	args = append(args, "--corrosion-api", g.api)
	if g.ca != "" {
		args = append(args, "--corrosion-ca", g.ca)
	}
	cmd := exec.CommandContext(ctx, ucd, args...)
	cmd.Env = append(os.Environ(), "UC_CORROSION_TOKEN="+g.token) // not on the command line, where ps shows it
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ucd %s: %w", args[0], err)
	}
	return nil
}

// findUCD finds ucd beside uc's own binary, else on PATH.
func findUCD() (string, error) {
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "ucd")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	path, err := exec.LookPath("ucd")
	if err != nil {
		return "", errors.New("uc build and uc image push run ucd, which holds the BuildKit and Docker clients: put ucd beside uc or on PATH")
	}
	return path, nil
}
