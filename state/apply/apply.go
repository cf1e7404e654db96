// Package apply applies a Compose project to uc's desired state: what
// `uc apply -f` and `uc delete -f` do, as a Go API that a GitOps job can
// call without the CLI. It loads the project (api/compose), sets where it
// is applied from, pins git contexts to commits, runs the checks that need
// the state, ships local build contexts to the internal registry and
// writes the specs in one transaction, or with DryRun only says what would
// change.
//
// It lives under state/ because it is a writer of desired state, the
// counterpart of ucd's controllers, which read it; it is a package of its
// own, not part of state, so that state (which ucd links too) needs no
// Compose loader or registry client, and not part of api, which does no
// I/O.
package apply

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/state"
)

// Options say which project to apply and how.
type Options struct {
	// Compose says which Compose files to read and how, as docker
	// compose's -f, -p and --profile do; its MaxContextSize also limits
	// what is shipped.
	Compose compose.LoadOptions
	// Targets are the Bake groups or targets to apply (Bake files only);
	// empty: the default group.
	Targets []string
	// Contexts, when set, is an image monorepo's contexts directory
	// (api/monorepo), read instead of Compose or Bake files.
	Contexts string
	// DryRun runs every check an apply runs and writes nothing: no spec
	// and no context.
	DryRun bool
	// Force takes over a project of the same name applied from another
	// origin: its specs this project lacks are deleted.
	Force bool
	// Progress receives a line per context shipped, or why contexts were
	// not shipped; nil discards them.
	Progress io.Writer
	// BuildOn, when set, says where every build of the project is built,
	// over the files' x-uc-build: api.BuildOnLocal or "cluster".
	BuildOn string
}

// fileName names the Compose or Bake file in error messages.
func (o Options) fileName() string {
	if len(o.Compose.Files) == 0 {
		if isBake, _ := o.isBake(); isBake {
			return "docker-bake.hcl"
		}
		return "compose.yaml"
	}
	return filepath.Base(o.Compose.Files[0])
}

func (o Options) stateOptions() state.ApplyOptions {
	return state.ApplyOptions{DryRun: o.DryRun, Force: o.Force}
}

// Load reads the project as an apply writes it: the Compose files turned
// into specs, the origin set, and every git context pinned to the commit
// its ref names now, before any check compares specs with the stored
// ones. When only pinning fails, the project is returned with the error,
// so that the loader's warnings can still be shown.
func Load(ctx context.Context, opts Options) (*api.Project, error) {
	if err := checkoutGitFiles(ctx, &opts); err != nil {
		return nil, err
	}
	p, err := loadSpecs(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := setBuildOn(p, opts.BuildOn); err != nil {
		return nil, err
	}
	p.Origin = projectOrigin(ctx, p.Files)
	return p, pinGitContexts(ctx, opts.fileName(), p)
}

// setBuildOn overrides where the project's builds are built.
func setBuildOn(p *api.Project, on string) error {
	switch on {
	case "":
		return nil
	case api.BuildOnLocal, "cluster":
	default:
		return fmt.Errorf("--build %q: want local (uc build, off the cluster) or cluster", on)
	}
	for i := range p.Builds {
		p.Builds[i].BuildOn = strings.TrimPrefix(on, "cluster")
	}
	return nil
}

// LoadName reads only the project's name and sets its origin, for Delete:
// nothing is hashed, so a project whose build contexts are gone can still
// be deleted.
func LoadName(ctx context.Context, opts Options) (*api.Project, error) {
	if err := checkoutGitFiles(ctx, &opts); err != nil {
		return nil, err
	}
	p, err := loadName(ctx, opts)
	if err != nil {
		return nil, err
	}
	p.Origin = projectOrigin(ctx, p.Files)
	return p, nil
}

// Check runs every check of an apply that needs the state and returns
// what the apply would change; it writes nothing. Apply runs it first, so
// a passing dry run predicts the apply.
func Check(ctx context.Context, store *state.Store, p *api.Project, opts Options) (state.ApplyResult, error) {
	if err := checkNodes(ctx, store, opts.fileName(), p); err != nil {
		return state.ApplyResult{}, err
	}
	so := opts.stateOptions()
	so.DryRun = true
	return store.ApplyProject(ctx, p, so)
}

// Apply makes the project's specs in the state exactly p's: it checks,
// ships local build contexts (which sets their ContextRef in p), and
// writes. With DryRun it only checks.
func Apply(ctx context.Context, store *state.Store, p *api.Project, opts Options) (state.ApplyResult, error) {
	res, err := Check(ctx, store, p, opts)
	if err != nil || opts.DryRun {
		return res, err
	}
	if err := shipContexts(ctx, store, p, opts.Compose.MaxContextSize, progress(opts)); err != nil {
		return state.ApplyResult{}, err
	}
	return store.ApplyProject(ctx, p, opts.stateOptions())
}

// Delete deletes every spec of p's project. It is an apply of the project
// with no specs from p's origin, so specs another origin applied under the
// same name are refused without Force, as Apply refuses them.
func Delete(ctx context.Context, store *state.Store, p *api.Project, opts Options) (state.ApplyResult, error) {
	empty := &api.Project{Name: p.Name, Origin: p.Origin, Files: p.Files}
	return store.ApplyProject(ctx, empty, opts.stateOptions())
}

func progress(opts Options) io.Writer {
	if opts.Progress == nil {
		return io.Discard
	}
	return opts.Progress
}

// checkNodes refuses placements that name nodes the cluster does not know.
func checkNodes(ctx context.Context, store *state.Store, file string, p *api.Project) error {
	nodes, err := store.ListNodes(ctx)
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
