package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/bake"
	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/api/monorepo"
)

// isBake says whether the project comes from Bake files: every -f file
// is one, or none is named, no Compose file is in the working directory,
// and a Bake file is (Bake's own lookup). Compose and Bake files do not
// mix in one apply.
func (o Options) isBake() (bool, error) {
	if len(o.Compose.Files) > 0 {
		bakes := 0
		for _, f := range o.Compose.Files {
			if bake.IsBakeFile(f) {
				bakes++
			}
		}
		if bakes > 0 && bakes < len(o.Compose.Files) {
			return false, errors.New("-f names both Compose and Bake files; apply them as two projects")
		}
		return bakes > 0, nil
	}
	dir := cmp.Or(o.Compose.WorkingDir, ".")
	for _, f := range cli.DefaultFileNames {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return false, nil
		}
	}
	return len(bake.Found(dir)) > 0, nil
}

func (o Options) bakeOptions() bake.LoadOptions {
	c := o.Compose
	return bake.LoadOptions{Files: c.Files, WorkingDir: c.WorkingDir, ProjectName: c.ProjectName, Targets: o.Targets,
		Env: c.Env, MaxContextSize: c.MaxContextSize}
}

// loadSpecs reads the project's specs from its Compose or Bake files, or
// its monorepo of contexts.
func loadSpecs(ctx context.Context, opts Options) (*api.Project, error) {
	if opts.Contexts != "" {
		if err := opts.monorepoOnly(); err != nil {
			return nil, err
		}
		return monorepo.Load(ctx, monorepo.LoadOptions{Dir: opts.Contexts, ProjectName: opts.Compose.ProjectName,
			MaxContextSize: opts.Compose.MaxContextSize})
	}
	isBake, err := opts.isBake()
	switch {
	case err != nil:
		return nil, err
	case isBake:
		return bake.Load(ctx, opts.bakeOptions())
	case len(opts.Targets) > 0:
		return nil, fmt.Errorf("%v: target and group arguments are for Bake files (docker-bake.hcl); a Compose file applies all its services", opts.Targets)
	}
	return compose.Load(ctx, opts.Compose)
}

// monorepoOnly refuses files or targets beside --contexts.
func (o Options) monorepoOnly() error {
	if len(o.Compose.Files) > 0 || len(o.Targets) > 0 {
		return errors.New("--contexts reads a monorepo of build contexts; it takes no -f files or targets")
	}
	return nil
}

// loadName reads only the project's name from its Compose or Bake files
// or its monorepo.
func loadName(ctx context.Context, opts Options) (*api.Project, error) {
	if opts.Contexts != "" {
		if err := opts.monorepoOnly(); err != nil {
			return nil, err
		}
		return monorepo.LoadName(monorepo.LoadOptions{Dir: opts.Contexts, ProjectName: opts.Compose.ProjectName})
	}
	isBake, err := opts.isBake()
	if err != nil {
		return nil, err
	}
	if isBake {
		return bake.LoadName(opts.bakeOptions())
	}
	return compose.LoadName(ctx, opts.Compose)
}
