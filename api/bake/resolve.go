package bake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/compose"
)

// LoadOptions say which Bake files to read and which of their targets to
// apply.
type LoadOptions struct {
	// Files are the Bake files, later ones overriding earlier ones; empty:
	// DefaultFiles found in WorkingDir.
	Files      []string
	WorkingDir string
	// ProjectName defaults to the name of the first file's directory.
	ProjectName string
	// Targets are groups or targets, as `docker buildx bake NAME…` takes
	// them; empty: the group (or target) "default".
	Targets []string
	// Env is looked up before the process environment for variables.
	Env map[string]string
	// MaxContextSize refuses a local context larger than this.
	MaxContextSize int64
}

func (o LoadOptions) files() ([]string, error) {
	dir := cmp.Or(o.WorkingDir, ".")
	if len(o.Files) == 0 {
		found := Found(dir)
		if len(found) == 0 {
			return nil, fmt.Errorf("no Bake file in %s (looked for %s)", dir, strings.Join(DefaultFiles, ", "))
		}
		return found, nil
	}
	out := make([]string, len(o.Files))
	for i, f := range o.Files {
		out[i] = abs(dir, f)
	}
	return out, nil
}

// projectName is the flag's, or that of the directory the first file is in.
func (o LoadOptions) projectName(files []string) (string, error) {
	name := o.ProjectName
	if name == "" {
		name = loader.NormalizeProjectName(filepath.Base(filepath.Dir(files[0])))
	}
	if name == "" {
		return "", errors.New("no project name: pass --project-name")
	}
	return name, nil
}

// LoadName reads only what names the project (for uc delete -f): no
// file is evaluated and no context is read.
func LoadName(opts LoadOptions) (*api.Project, error) {
	files, err := opts.files()
	if err != nil {
		return nil, err
	}
	name, err := opts.projectName(files)
	return &api.Project{Name: name, Files: files}, err
}

// Load evaluates the Bake files and returns the selected targets (and the
// targets they name in target: contexts) as the project's specs.
func Load(_ context.Context, opts LoadOptions) (*api.Project, error) {
	named, err := LoadName(opts)
	if err != nil {
		return nil, err
	}
	files, name := named.Files, named.Name
	file := filepath.Base(files[0])
	cfg, err := parse(files, lookupIn(opts.Env))
	if err != nil {
		return nil, oneLine(err)
	}
	targets, err := cfg.resolve(opts.Targets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	// Paths are relative to the first file's directory, as a Compose
	// file's are to its own (docker buildx bake takes the working
	// directory; run from the file's directory, both agree).
	cp, err := composeProject(name, filepath.Dir(files[0]), targets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p, err := compose.Convert(cp, file, opts.MaxContextSize)
	if err != nil {
		return nil, bakeFields(err)
	}
	p.Files = files
	return p, nil
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if v, ok := env[key]; ok {
			return v, true
		}
		return os.LookupEnv(key)
	}
}

// oneLine flattens HCL diagnostics, which name the file and line, into
// one line.
func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// resolve returns the named targets, groups expanded, each with its
// inherits applied, plus every target a target: context names.
func (c *config) resolve(names []string) (map[string]*target, error) {
	if len(names) == 0 {
		names = []string{"default"}
	}
	out := map[string]*target{}
	var add func(name string, via []string) error
	add = func(name string, via []string) error {
		if slices.Contains(via, name) {
			return fmt.Errorf("group %s includes itself: %s", via[0], strings.Join(append(via, name), " → "))
		}
		if g := c.group(name); g != nil {
			for _, t := range g.Targets {
				if err := add(t, append(via, name)); err != nil {
					return err
				}
			}
			return nil
		}
		if _, done := out[name]; done {
			return nil
		}
		t, err := c.inherited(name, nil)
		if err != nil {
			return err
		}
		out[name] = t
		for _, v := range t.Contexts {
			if dep, ok := strings.CutPrefix(v, "target:"); ok {
				if err := add(dep, nil); err != nil {
					return fmt.Errorf("target %s: contexts: %w", name, err)
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *config) group(name string) *group {
	for _, g := range c.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

func (c *config) target(name string) *target {
	for _, t := range c.Targets {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// inherited is the target with what it inherits merged under it, in the
// order it lists its parents.
func (c *config) inherited(name string, via []string) (*target, error) {
	if slices.Contains(via, name) {
		return nil, fmt.Errorf("target %s inherits from itself: %s", via[0], strings.Join(append(via, name), " → "))
	}
	t := c.target(name)
	if t == nil {
		return nil, c.unknown(name)
	}
	merged := &target{Name: name}
	for _, parent := range t.Inherits {
		p, err := c.inherited(parent, append(via, name))
		if err != nil {
			return nil, err
		}
		merged.merge(p)
	}
	merged.merge(t)
	merged.Name, merged.Inherits = name, nil
	return merged, nil
}

func (c *config) unknown(name string) error {
	var targets, groups []string
	for _, t := range c.Targets {
		targets = append(targets, t.Name)
	}
	for _, g := range c.Groups {
		groups = append(groups, g.Name)
	}
	return fmt.Errorf("no target or group named %q (targets: %s; groups: %s)", name, orNone(targets), orNone(groups))
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// merge lays o over t as Bake's inherits does: what o sets wins; maps
// merge key by key; cache-from, secrets and ssh keys add up.
func (t *target) merge(o *target) {
	t.Description = cmp.Or(o.Description, t.Description)
	for _, p := range []struct{ dst, src **string }{{&t.Context, &o.Context}, {&t.Dockerfile, &o.Dockerfile},
		{&t.DockerfileInline, &o.DockerfileInline}, {&t.Target, &o.Target}, {&t.Network, &o.Network}, {&t.ShmSize, &o.ShmSize}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	for _, p := range []struct{ dst, src **bool }{{&t.Pull, &o.Pull}, {&t.NoCache, &o.NoCache}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	t.Contexts = mergeMap(t.Contexts, o.Contexts)
	t.Args, t.Labels, t.ExtraHosts = mergeMap(t.Args, o.Args), mergeMap(t.Labels, o.Labels), mergeMap(t.ExtraHosts, o.ExtraHosts)
	for _, p := range []struct{ dst, src *[]string }{{&t.Tags, &o.Tags}, {&t.CacheTo, &o.CacheTo}, {&t.Platforms, &o.Platforms},
		{&t.Outputs, &o.Outputs}, {&t.NoCacheFilter, &o.NoCacheFilter}, {&t.Ulimits, &o.Ulimits}, {&t.Annotations, &o.Annotations},
		{&t.Attest, &o.Attest}, {&t.Entitlements, &o.Entitlements}} {
		if *p.src != nil {
			*p.dst = slices.Clone(*p.src)
		}
	}
	for _, p := range []struct{ dst, src *[]string }{{&t.CacheFrom, &o.CacheFrom}, {&t.Secrets, &o.Secrets}, {&t.SSH, &o.SSH}} {
		for _, v := range *p.src {
			if !slices.Contains(*p.dst, v) {
				*p.dst = append(*p.dst, v)
			}
		}
	}
}

func mergeMap[V any](dst, src map[string]V) map[string]V {
	if src == nil {
		return dst
	}
	if dst == nil {
		dst = map[string]V{}
	}
	maps.Copy(dst, src)
	return dst
}

// bakeField maps a Compose field the shared checks name to Bake's.
var bakeField = strings.NewReplacer(
	"additional_contexts", "contexts", "cache_from", "cache-from", "cache_to", "cache-to",
	"dockerfile_inline", "dockerfile-inline", "no_cache", "no-cache", "extra_hosts", "extra-hosts",
	"shm_size", "shm-size", "secrets", "secret", "no_cache_filter", "no-cache-filter")

var composeField = regexp.MustCompile(`services\.([A-Za-z0-9_.-]+?)\.(build\.([a-z_]+)|image)\b`)

// bakeFields rewrites the Compose field names in an error from the
// shared checks into the Bake attributes they came from.
func bakeFields(err error) error {
	msg := composeField.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := composeField.FindStringSubmatch(m)
		if sub[2] == "image" {
			return "target." + sub[1] + ".tags"
		}
		return "target." + sub[1] + "." + bakeField.Replace(sub[3])
	})
	msg = strings.ReplaceAll(msg, "services.", "target.")
	return errors.New(msg)
}

func abs(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	a, err := filepath.Abs(filepath.Join(dir, path))
	if err != nil {
		return filepath.Join(dir, path)
	}
	return a
}
