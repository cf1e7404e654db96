// Package monorepo reads an image monorepo, as seed 002's tool lays it
// out: a directory of build contexts named NN-name/, each holding a
// Dockerfile and info.edn ({:version "1.2.3"}). Each becomes one image,
// name, tagged with its version and latest. Every build gets the build
// arg REGISTRY, so `FROM ${REGISTRY}/base:1.0.0` names a sibling image;
// uc apply makes that line an edge of the build graph (api/compose), and
// the numeric prefixes, the order the tool's users rely on, must agree
// with those edges.
package monorepo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"olympos.io/encoding/edn"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/compose"
)

// DefaultRegistry is the REGISTRY build arg when none is given: the
// registry's default stable address, which every node serves.
const DefaultRegistry = "127.0.0.1:5454"

// LoadOptions say which monorepo to read.
type LoadOptions struct {
	// Dir is the contexts directory, or a project directory holding one
	// named contexts.
	Dir string
	// ProjectName defaults to the project directory's name.
	ProjectName string
	// Registry is the REGISTRY build arg; default DefaultRegistry.
	Registry       string
	MaxContextSize int64
}

// Context is one NN-name/ directory.
type Context struct {
	Dir     string // absolute
	Prefix  int
	Name    string // the image's name
	Version string
}

// Base is the directory's own name, e.g. 01-base-dev.
func (c Context) Base() string { return filepath.Base(c.Dir) }

var contextDir = regexp.MustCompile(`^([0-9]+)-(.+)$`)

// contextsDir is dir, or dir/contexts when dir holds no NN-name
// directories of its own.
func contextsDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return "", fmt.Errorf("--contexts: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && contextDir.MatchString(e.Name()) {
			return abs, nil
		}
	}
	if st, err := os.Stat(filepath.Join(abs, "contexts")); err == nil && st.IsDir() {
		return filepath.Join(abs, "contexts"), nil
	}
	return "", fmt.Errorf("--contexts %s: no NN-name/ context directories in it, nor a contexts/ directory", dir)
}

// Scan lists the contexts in prefix order (then by name). Directories
// without a numeric prefix are not contexts and are skipped.
func Scan(dir string) (string, []Context, error) {
	root, err := contextsDir(dir)
	if err != nil {
		return "", nil, err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", nil, err
	}
	var out []Context
	for _, e := range entries {
		m := contextDir.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		prefix, _ := strconv.Atoi(m[1])
		c := Context{Dir: filepath.Join(root, e.Name()), Prefix: prefix, Name: m[2]}
		if c.Version, err = readVersion(c.Dir); err != nil {
			return "", nil, err
		}
		if _, err := os.Stat(filepath.Join(c.Dir, "Dockerfile")); err != nil {
			return "", nil, fmt.Errorf("%s: no Dockerfile: %w", e.Name(), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("%s: no NN-name/ context directories", root)
	}
	slices.SortFunc(out, func(a, b Context) int {
		return cmp.Or(cmp.Compare(a.Prefix, b.Prefix), strings.Compare(a.Name, b.Name))
	})
	return root, out, nil
}

// info is info.edn.
type info struct {
	Version string `edn:"version"`
}

var version = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

func readVersion(dir string) (string, error) {
	name := filepath.Join(filepath.Base(dir), "info.edn")
	body, err := os.ReadFile(filepath.Join(dir, "info.edn"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var in info
	if err := edn.Unmarshal(body, &in); err != nil {
		return "", fmt.Errorf("%s: %v (want {:version \"1.2.3\"})", name, err)
	}
	if !version.MatchString(in.Version) {
		return "", fmt.Errorf("%s: :version %q: want MAJOR.MINOR.PATCH, e.g. \"1.2.3\"", name, in.Version)
	}
	return in.Version, nil
}

// LoadName names the project without reading any context (uc delete):
// --project-name, else the project directory's name.
func LoadName(opts LoadOptions) (*api.Project, error) {
	root, err := contextsDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	name := opts.ProjectName
	if name == "" {
		project := filepath.Dir(root)
		if filepath.Base(root) != "contexts" {
			project = root
		}
		name = loader.NormalizeProjectName(filepath.Base(project))
	}
	if name == "" {
		return nil, errors.New("no project name: pass --project-name")
	}
	return &api.Project{Name: name, Files: []string{root}}, nil
}

// Load reads the monorepo as a project: one build and one image per
// context, linked by their FROM lines.
func Load(ctx context.Context, opts LoadOptions) (*api.Project, error) {
	p, _, err := Read(ctx, opts)
	return p, err
}

// Read is Load that also returns the contexts it read, for a cascade.
func Read(_ context.Context, opts LoadOptions) (*api.Project, []Context, error) {
	named, err := LoadName(opts)
	if err != nil {
		return nil, nil, err
	}
	name, root := named.Name, named.Files[0]
	_, contexts, err := Scan(root)
	if err != nil {
		return nil, nil, err
	}
	registry := cmp.Or(opts.Registry, DefaultRegistry)
	cp := &types.Project{Name: name, WorkingDir: root, Services: types.Services{}}
	for _, c := range contexts {
		reg := registry
		svc := types.ServiceConfig{Name: c.Name}
		svc.Image = c.Name + ":" + c.Version
		svc.Build = &types.BuildConfig{Context: c.Dir, Dockerfile: "Dockerfile", Tags: []string{c.Name + ":latest"},
			Args: types.MappingWithEquals{"REGISTRY": &reg}}
		if _, dup := cp.Services[c.Name]; dup {
			return nil, nil, fmt.Errorf("%s: two contexts make image %s: %s", root, c.Name, strings.Join(dirsNamed(contexts, c.Name), " and "))
		}
		cp.Services[c.Name] = svc
	}
	p, err := compose.Convert(cp, "contexts", opts.MaxContextSize)
	if err != nil {
		return nil, nil, contextFields(err, contexts)
	}
	if err := checkOrder(p, contexts); err != nil {
		return nil, nil, err
	}
	p.Files = []string{root}
	return p, contexts, nil
}

func dirsNamed(contexts []Context, name string) []string {
	var out []string
	for _, c := range contexts {
		if c.Name == name {
			out = append(out, c.Base())
		}
	}
	return out
}

// checkOrder refuses a FROM edge that the prefixes contradict: a context
// built from a sibling whose prefix is not smaller.
func checkOrder(p *api.Project, contexts []Context) error {
	byService := map[string]Context{}
	for _, c := range contexts {
		byService[p.Name+"/"+c.Name] = c
	}
	for _, b := range p.Builds {
		child := byService[b.Name]
		for _, dep := range b.DependsOn() {
			parent := byService[dep]
			if parent.Prefix >= child.Prefix {
				return fmt.Errorf("%s builds FROM %s (image %s), but its prefix %02d does not order it after %02d: rename one so the parent's prefix is smaller",
					child.Base(), parent.Base(), parent.Name, child.Prefix, parent.Prefix)
			}
		}
	}
	return nil
}

// contextFields names the context directory in an error from the shared
// checks instead of the Compose service it was written as.
func contextFields(err error, contexts []Context) error {
	msg := err.Error()
	for _, c := range contexts {
		msg = strings.ReplaceAll(msg, "services."+c.Name+".", c.Base()+": ")
		msg = strings.ReplaceAll(msg, "services."+c.Name+":", c.Base()+":")
	}
	return errors.New(msg)
}
