// Package compose translates a Compose project into uc's specs. It reads
// the files exactly as docker compose does (compose-go: interpolation,
// .env, extends, profiles and schema validation), refuses what the build
// controller would not honour, hashes local build contexts, and returns an
// api.Project. It reads files, so it lives apart from package api, which
// holds only the types and pure rules.
package compose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/buildcontext"
	"github.com/ucplane/uc/api/gitremote"
)

// LoadOptions mirrors the docker compose flags that change how a project is
// read (-f, -p, --project-directory, --profile).
type LoadOptions struct {
	// Files are the -f files in order; empty means compose's default
	// discovery (compose.yaml, … in WorkingDir or the current directory).
	Files       []string
	ProjectName string
	WorkingDir  string
	Profiles    []string
	// MaxContextSize limits each local build context, in bytes (0:
	// buildcontext.DefaultMaxSize).
	MaxContextSize int64
	// Env overrides variables of the OS environment for interpolation; the
	// OS environment (and then .env) still fill in whatever Env lacks, as the
	// shell does for docker compose.
	Env map[string]string
}

// machinesKey is the service extension that pins an image to named nodes.
const machinesKey = "x-machines"

// pullCredentialKey references the credential nodes pull a private image
// with (env:VAR or docker-config:PATH).
const pullCredentialKey = "x-uc-pull-credential"

// refreshKey has an external image's tag resolved again periodically.
const refreshKey = "x-uc-refresh"

// checkRefresh accepts a duration of at least MinRefreshEvery, on a service
// whose image is a tag: a build or a digest has nothing to refresh.
func checkRefresh(raw any, s types.ServiceConfig) error {
	v, _ := raw.(string)
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return fmt.Errorf("want a duration such as 15m (got %v)", raw)
	case d < api.MinRefreshEvery:
		return fmt.Errorf("%s is too often: at least %s", v, api.MinRefreshEvery)
	case s.Build != nil:
		return errors.New("the service builds its image, which follows its build; only a pulled image's tag can be refreshed")
	case strings.Contains(s.Image, "@"):
		return fmt.Errorf("image %s is pinned by digest; there is no tag to refresh", s.Image)
	}
	return nil
}

// supportedBuildAttrs are the build: attributes the build controller honours.
// Everything else is refused so that a build never silently differs from
// what `docker compose build` would produce.
var supportedBuildAttrs = map[string]bool{
	"context": true, "dockerfile": true, "args": true, "target": true, "labels": true,
	"dockerfile_inline": true, "tags": true, "no_cache": true, "no_cache_filter": true, "pull": true,
	"extra_hosts": true, "shm_size": true, "ulimits": true, "network": true, "platforms": true,
	"entitlements": true, "privileged": true, "isolation": true,
	"cache_from": true, "cache_to": true, "secrets": true, "ssh": true, "provenance": true, "sbom": true,
	"additional_contexts": true,
}

// buildEntitlements are the entitlements BuildKit knows; privileged: true
// asks for security.insecure.
var buildEntitlements = []string{"network.host", "security.insecure"}

// Load parses Compose files exactly as docker compose does (compose-go
// does interpolation, .env, extends, profiles and schema validation) and
// turns every active service into specs.
func Load(ctx context.Context, opts LoadOptions) (*api.Project, error) {
	o, err := projectOptions(opts)
	if err != nil {
		return nil, wrapLoadErr(opts.Files, err)
	}
	cp, err := loadProject(ctx, o)
	if err != nil {
		return nil, wrapLoadErr(o.ConfigPaths, err)
	}
	file := "compose.yaml"
	if len(o.ConfigPaths) > 0 {
		file = filepath.Base(o.ConfigPaths[0])
	}
	p, err := convertProject(cp, file, opts.MaxContextSize)
	if err != nil {
		return nil, err
	}
	p.Files = o.ConfigPaths
	return p, nil
}

// contextField names the Compose field an error from buildcontext.Digest
// is about.
func contextField(err error) string {
	var df *buildcontext.DockerfileError
	if errors.As(err, &df) {
		return "dockerfile"
	}
	return "context"
}

// LoadName reads only what names a project, for commands such as
// uc delete -f that need no build context: nothing is hashed or read
// beyond the Compose files themselves.
// The project it returns has a name and its files, and no specs.
func LoadName(ctx context.Context, opts LoadOptions) (*api.Project, error) {
	o, err := projectOptions(opts)
	if err != nil {
		return nil, wrapLoadErr(opts.Files, err)
	}
	cp, err := loadProject(ctx, o)
	if err != nil {
		return nil, wrapLoadErr(o.ConfigPaths, err)
	}
	return &api.Project{Name: cp.Name, Files: o.ConfigPaths}, nil
}

// loadProject runs compose-go's loader, which panics on some malformed
// files (`additional_contexts: {A}`, found by FuzzLoadCompose): that is an
// error in the file, not a crash of uc.
func loadProject(ctx context.Context, o *cli.ProjectOptions) (cp *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the Compose loader failed on this file: %v (a value that should be a string or a list is empty or of another type)", r)
		}
	}()
	return o.LoadProject(ctx)
}

func projectOptions(opts LoadOptions) (*cli.ProjectOptions, error) {
	env := make([]string, 0, len(opts.Env))
	for k, v := range opts.Env {
		env = append(env, k+"="+v)
	}
	// Order matters: explicit env first so WithOsEnv and WithDotEnv (which
	// never overwrite) only fill gaps, then profiles, which may come from
	// COMPOSE_PROFILES in that environment.
	return cli.NewProjectOptions(opts.Files,
		cli.WithWorkingDirectory(opts.WorkingDir),
		cli.WithEnv(env),
		cli.WithOsEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithName(opts.ProjectName),
		cli.WithDefaultProfiles(opts.Profiles...),
	)
}

// wrapLoadErr makes compose-go errors name the file(s) and fit on one line.
func wrapLoadErr(files []string, err error) error {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	// The schema validator reports an attribute that matches no property as
	// "<path> false schema", which reads like a bug; say what it means.
	if m, ok := strings.CutSuffix(msg, " false schema"); ok {
		msg = m + ": unknown attribute"
	}
	var bases []string
	for _, f := range files {
		b := filepath.Base(f)
		if strings.Contains(msg, b) {
			return errors.New(msg)
		}
		bases = append(bases, b)
	}
	if len(bases) == 0 {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %s", strings.Join(bases, ", "), msg)
}

// Convert translates a Compose model into uc's specs with every check
// Load runs; file names the input in errors. Bake files (api/bake) come
// through it too, written as Compose services.
func Convert(cp *types.Project, file string, limit int64) (*api.Project, error) {
	return convertProject(cp, file, limit)
}

func convertProject(cp *types.Project, file string, limit int64) (*api.Project, error) {
	p := &api.Project{Name: cp.Name}
	top, err := checkTopLevelExtensions(cp.Extensions, file)
	if err != nil {
		return nil, err
	}
	// Walk services in name order so the first error is deterministic.
	for _, name := range sortedKeys(cp.Services) {
		b, img, err := convertService(cp.Name, cp.Services[name], cp.Secrets, file, limit)
		if err != nil {
			return nil, err
		}
		if b != nil {
			b.AllowWriters = top.allowWriters
			b.CacheScopeTrusted = b.CacheScope != "" && slices.Contains(top.trustedScopes, b.CacheScope)
			p.Builds = append(p.Builds, *b)
		}
		if s := cp.Services[name]; s.Build != nil && s.Build.Isolation != "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf(
				"%s: services.%s.build.isolation: %q is a Windows container setting; Linux builders ignore it", file, name, s.Build.Isolation))
		}
		p.Warnings = append(p.Warnings, extensionWarnings(cp.Services[name], file, "services."+name)...)
		p.Images = append(p.Images, img)
	}
	sort.Slice(p.Builds, func(i, j int) bool { return p.Builds[i].Name < p.Builds[j].Name })
	sort.Slice(p.Images, func(i, j int) bool { return p.Images[i].Name < p.Images[j].Name })
	if err := linkFromLines(p, file); err != nil {
		return nil, err
	}
	if err := checkGraph(p, file); err != nil {
		return nil, err
	}
	if err := resolveImageNames(p, file); err != nil {
		return nil, err
	}
	return p, nil
}

func convertService(project string, s types.ServiceConfig, secrets types.Secrets, file string, limit int64) (*api.BuildSpec, api.ImageSpec, error) {
	name := project + "/" + s.Name
	field := "services." + s.Name
	img := api.ImageSpec{Name: name, Project: project, Service: s.Name}
	pl, err := servicePlacement(s, file, field)
	if err != nil {
		return nil, img, err
	}
	img.Placement = pl
	if raw, ok := s.Extensions[pullCredentialKey]; ok {
		ref, _ := raw.(string)
		if err := api.CheckCredentialRef(ref); err != nil {
			return nil, img, fmt.Errorf("%s: %s.%s: %v", file, field, pullCredentialKey, err)
		}
		img.PullCredential = ref
	}
	if raw, ok := s.Extensions[refreshKey]; ok {
		if err := checkRefresh(raw, s); err != nil {
			return nil, img, fmt.Errorf("%s: %s.%s: %v", file, field, refreshKey, err)
		}
		img.RefreshEvery = raw.(string)
	}
	if err := checkServiceExtensions(s, file, field); err != nil {
		return nil, img, err
	}
	if s.Image != "" {
		if err := api.CheckReference(s.Image); err != nil {
			return nil, img, fmt.Errorf("%s: %s.image: %v", file, field, err)
		}
	}
	img.Platform = s.Platform
	if s.Build == nil {
		if s.Image == "" {
			return nil, img, fmt.Errorf("%s: %s: needs build or image", file, field)
		}
		img.Image = s.Image
		return nil, img, nil
	}
	if strings.Contains(s.Image, "@") {
		return nil, img, fmt.Errorf("%s: %s.image: %s pins a digest, but the service builds its image and the build decides the digest (drop @%s, or drop build:)",
			file, field, s.Image, strings.SplitN(s.Image, "@", 2)[1])
	}
	if attr := unsupportedBuildAttr(s.Build); attr != "" {
		return nil, img, fmt.Errorf("%s: %s.build.%s: not supported yet by the build controller", file, field, attr)
	}
	b := buildSpec(project, s)
	if err := checkBuildOptions(s.Build, file, field+".build"); err != nil {
		return nil, img, err
	}
	if err := checkTags(s.Build.Tags, file, field+".build.tags"); err != nil {
		return nil, img, err
	}
	if err := mapReferences(&b, s.Build, secrets, file, field+".build"); err != nil {
		return nil, img, err
	}
	if err := buildExtensions(&b, s.Extensions, file, field); err != nil {
		return nil, img, err
	}
	if err := buildType(&b, s, file, field); err != nil {
		return nil, img, err
	}
	if api.IsGitContext(b.Context) {
		// BuildKit fetches git contexts itself; uc apply pins the ref to
		// a commit (ContextDigest "git:<sha>") before writing the spec.
		img.Build = b.Name
		return &b, img, nil
	}
	d, err := buildcontext.Digest(b.Context, dockerfileToHash(b), limit)
	if err != nil {
		return nil, img, fmt.Errorf("%s: %s.build.%s: %v", file, field, contextField(err), err)
	}
	if b.AdditionalContexts, d, err = additionalContexts(project, s.Build.AdditionalContexts, d, limit); err != nil {
		return nil, img, fmt.Errorf("%s: %s.build.additional_contexts.%v", file, field, err)
	}
	b.ContextDigest = d
	img.Build = b.Name
	return &b, img, nil
}

// Service extensions for builds.
const (
	// builderKey says where a build may run.
	builderKey = "x-uc-builder"
	// keepBuildsKey says how many of a build's last successful images the
	// registry's GC keeps.
	keepBuildsKey = "x-uc-keep-builds"
	// rebuildOnBaseKey has the build follow its external base images.
	rebuildOnBaseKey = "x-uc-rebuild-on-base"
	// cacheScopeKey keeps the build's cache apart, e.g. per branch.
	cacheScopeKey = "x-uc-cache-scope"
	// followKey has the build follow its git context's branch.
	followKey = "x-uc-follow"
	// gitCredentialKey names the credential of a private git context.
	gitCredentialKey = "x-uc-git-credential"
	// buildOnKey says where the image is built: local (uc build) or cluster.
	buildOnKey = "x-uc-build"
	// pushKey publishes the image to external registries.
	pushKey = "x-uc-push"
	// pushCredentialKey names the external registries' credential.
	pushCredentialKey = "x-uc-push-credential"
)

func buildExtensions(b *api.BuildSpec, ext map[string]any, file, field string) error {
	var err error
	if raw, ok := ext[builderKey]; ok {
		if b.Builder, err = parseBuilder(raw); err != nil {
			return fmt.Errorf("%s: %s.%s: %v", file, field, builderKey, err)
		}
	}
	if raw, ok := ext[keepBuildsKey]; ok {
		n, isInt := raw.(int)
		if !isInt || n < 1 {
			return fmt.Errorf("%s: %s.%s: want a whole number of builds, at least 1 (got %v)", file, field, keepBuildsKey, raw)
		}
		b.KeepBuilds = n
	}
	if raw, ok := ext[rebuildOnBaseKey]; ok {
		v, _ := raw.(string)
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %s.%s: want a duration such as 1h (got %v)", file, field, rebuildOnBaseKey, raw)
		case d < api.MinRefreshEvery:
			return fmt.Errorf("%s: %s.%s: %s is too often: at least %s", file, field, rebuildOnBaseKey, v, api.MinRefreshEvery)
		}
		b.RebuildOnBase = v
	}
	if raw, ok := ext[cacheScopeKey]; ok {
		v, _ := raw.(string)
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s: %s.%s: want a scope name such as repo/branch (got %v)", file, field, cacheScopeKey, raw)
		}
		b.CacheScope = v
	}
	if raw, ok := ext[buildOnKey]; ok {
		switch raw {
		case api.BuildOnLocal:
			b.BuildOn = api.BuildOnLocal
		case "cluster":
		default:
			return fmt.Errorf("%s: %s.%s: want local (uc build, off the cluster) or cluster (got %v)", file, field, buildOnKey, raw)
		}
	}
	if err := pushExtensions(b, ext, file, field); err != nil {
		return err
	}
	return gitExtensions(b, ext, file, field)
}

// pushExtensions reads x-uc-push and its credential.
func pushExtensions(b *api.BuildSpec, ext map[string]any, file, field string) error {
	if raw, ok := ext[pushKey]; ok {
		refs, err := nameList(raw)
		if err != nil || len(refs) == 0 {
			return fmt.Errorf("%s: %s.%s: want a list of image references such as [ghcr.io/me/app:v1] (got %v)", file, field, pushKey, raw)
		}
		for i, ref := range refs {
			if err := api.CheckReference(ref); err != nil {
				return fmt.Errorf("%s: %s.%s[%d]: %v", file, field, pushKey, i, err)
			}
			if strings.Contains(ref, "@") {
				return fmt.Errorf("%s: %s.%s[%d]: %s pins a digest; name a tag to push to", file, field, pushKey, i, ref)
			}
		}
		b.Push = refs
	}
	if raw, ok := ext[pushCredentialKey]; ok {
		v, _ := raw.(string)
		if err := api.CheckCredentialRef(v); err != nil {
			return fmt.Errorf("%s: %s.%s: %v", file, field, pushCredentialKey, err)
		}
		if len(b.Push) == 0 {
			return fmt.Errorf("%s: %s.%s: set without %s, it is used by nothing", file, field, pushCredentialKey, pushKey)
		}
		b.PushCredential = v
	}
	return nil
}

// gitExtensions reads x-uc-follow and x-uc-git-credential, which only a
// git context can use.
func gitExtensions(b *api.BuildSpec, ext map[string]any, file, field string) error {
	for _, key := range []string{followKey, gitCredentialKey} {
		if _, ok := ext[key]; ok && !api.IsGitContext(b.Context) {
			return fmt.Errorf("%s: %s.%s: the build's context %s is not a git repository (a local context rebuilds on uc apply)", file, field, key, b.Context)
		}
	}
	if raw, ok := ext[followKey]; ok {
		v, _ := raw.(string)
		d, err := time.ParseDuration(v)
		_, ref, _ := api.SplitGitContext(b.Context)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %s.%s: want a duration such as 1m (got %v)", file, field, followKey, raw)
		case d < api.MinRefreshEvery:
			return fmt.Errorf("%s: %s.%s: %s is too often: at least %s", file, field, followKey, v, api.MinRefreshEvery)
		case gitremote.IsCommit(ref):
			return fmt.Errorf("%s: %s.%s: the context pins commit %s, which never moves: name a branch (#main) to follow it", file, field, followKey, ref)
		}
		b.Follow = v
	}
	if raw, ok := ext[gitCredentialKey]; ok {
		v, _ := raw.(string)
		if err := gitremote.CheckCredentialRef(v); err != nil {
			return fmt.Errorf("%s: %s.%s: %v", file, field, gitCredentialKey, err)
		}
		b.GitCredential = v
	}
	return nil
}

// parseBuilder reads x-uc-builder: a node name, or a label selector
// "k=v[,k2=v2]".
func parseBuilder(raw any) (api.BuilderSelector, error) {
	s, ok := raw.(string)
	if !ok || strings.TrimSpace(s) == "" {
		return api.BuilderSelector{}, errors.New("want a node name or a label selector like zone=eu,disk=ssd")
	}
	if !strings.Contains(s, "=") {
		return api.BuilderSelector{Node: strings.TrimSpace(s)}, nil
	}
	sel := api.BuilderSelector{Labels: map[string]string{}}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return api.BuilderSelector{}, fmt.Errorf("%q is not k=v", kv)
		}
		sel.Labels[k] = v
	}
	return sel, nil
}

// dockerfileToHash is the Dockerfile file a context digest covers; an
// inline Dockerfile is part of the spec already.
func dockerfileToHash(b api.BuildSpec) string {
	if b.DockerfileInline != "" {
		return ""
	}
	return b.Dockerfile
}

func buildSpec(project string, s types.ServiceConfig) api.BuildSpec {
	b := api.BuildSpec{
		Name:       project + "/" + s.Name,
		Project:    project,
		Service:    s.Name,
		Image:      s.Image,
		Context:    s.Build.Context,
		Dockerfile: s.Build.Dockerfile,
		Target:     s.Build.Target,
	}
	if b.Image == "" {
		b.Image = api.DefaultImage(project, s.Name)
	}

	for k, v := range s.Build.Args {
		// A nil value is `args: [FOO]` with FOO unset: docker compose omits
		// it so the Dockerfile's ARG default applies.
		if v == nil {
			continue
		}
		if b.Args == nil {
			b.Args = map[string]string{}
		}
		b.Args[k] = *v
	}
	for k, v := range s.Build.Labels {
		if b.Labels == nil {
			b.Labels = map[string]string{}
		}
		b.Labels[k] = v
	}
	mapRunOptions(&b, s.Build)
	if len(b.Platforms) == 0 && s.Platform != "" {
		// Compose builds for the service's platform when build: names none.
		b.Platforms = []string{s.Platform}
	}
	return b
}

// mapRunOptions copies what shapes the build's RUN steps and cache use.
func mapRunOptions(b *api.BuildSpec, c *types.BuildConfig) {
	b.DockerfileInline = c.DockerfileInline
	b.Tags = sortedCopy(c.Tags)
	b.NoCache, b.NoCacheFilter, b.Pull = c.NoCache, sortedCopy(c.NoCacheFilter), c.Pull
	b.ExtraHosts = sortedCopy(c.ExtraHosts.AsList("="))
	b.ShmSize = int64(c.ShmSize)
	for name, u := range c.Ulimits {
		soft, hard := u.Soft, u.Hard
		if u.Single != 0 {
			soft, hard = u.Single, u.Single
		}
		b.Ulimits = append(b.Ulimits, fmt.Sprintf("%s=%d:%d", name, soft, hard))
	}
	sort.Strings(b.Ulimits)
	if c.Network != "default" {
		b.Network = c.Network
	}
	b.Platforms = sortedCopy(c.Platforms)
	b.Entitlements = sortedCopy(c.Entitlements)
	if c.Privileged && !slices.Contains(b.Entitlements, "security.insecure") {
		b.Entitlements = append(b.Entitlements, "security.insecure")
		sort.Strings(b.Entitlements)
	}
}

func sortedCopy(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	sort.Strings(out)
	return out
}

// checkBuildOptions refuses values BuildKit cannot honour, by field.
func checkBuildOptions(c *types.BuildConfig, file, field string) error {
	switch c.Network {
	case "", "default", "host", "none":
	default:
		return fmt.Errorf("%s: %s.network: named network %q cannot be used by builds: BuildKit runs RUN steps in its own network namespace on whichever node builds, "+
			"and a Compose or Docker network lives on one engine, not on the builder (use network: host or none, or leave it out)", file, field, c.Network)
	}
	for _, e := range c.Entitlements {
		if !slices.Contains(buildEntitlements, e) {
			return fmt.Errorf("%s: %s.entitlements: unknown entitlement %q (want %s)", file, field, e, strings.Join(buildEntitlements, " or "))
		}
	}
	return nil
}

// unsupportedBuildAttr returns the compose name of the first set build
// attribute (in compose-go's field order) that uc cannot honour yet.
// Reflection keeps this correct when compose-go grows new attributes.
func unsupportedBuildAttr(b *types.BuildConfig) string {
	v := reflect.ValueOf(*b)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		// "#extensions" holds x-* keys, which are the user's own business.
		if key == "" || key == "-" || strings.HasPrefix(key, "#") || supportedBuildAttrs[key] {
			continue
		}
		if isSet(v.Field(i)) {
			return key
		}
	}
	return ""
}

// isSet treats empty lists and maps like absent ones: `cache_from: []`
// asks for nothing.
func isSet(f reflect.Value) bool {
	switch f.Kind() {
	case reflect.Slice, reflect.Map:
		return f.Len() > 0
	default:
		return !f.IsZero()
	}
}

// servicePlacement reads x-machines, or else deploy.placement.constraints.
// x-machines wins because it is the uc-specific, more explicit choice.
func servicePlacement(s types.ServiceConfig, file, field string) (api.Placement, error) {
	if raw, ok := s.Extensions[machinesKey]; ok {
		nodes, err := machines(raw)
		if err != nil {
			return api.Placement{}, fmt.Errorf("%s: %s.%s: %v", file, field, machinesKey, err)
		}
		return api.Placement{Nodes: nodes}, nil
	}
	if s.Deploy == nil {
		return api.Placement{}, nil
	}
	var p api.Placement
	for i, expr := range s.Deploy.Placement.Constraints {
		c, err := api.ParseConstraint(expr)
		if err != nil {
			return api.Placement{}, fmt.Errorf("%s: %s.deploy.placement.constraints[%d]: %v", file, field, i, err)
		}
		p.Constraints = append(p.Constraints, c)
	}
	return p, nil
}

// machines accepts a node name or a list of them, dropping duplicates.
func machines(raw any) ([]string, error) {
	const want = "want a node name or a list of node names"
	var items []any
	switch v := raw.(type) {
	case string:
		items = []any{v}
	case []any:
		items = v
	default:
		return nil, errors.New(want)
	}
	if len(items) == 0 {
		return nil, errors.New("empty list (" + want + ")")
	}
	var nodes []string
	seen := map[string]bool{}
	for _, it := range items {
		n, ok := it.(string)
		if !ok || strings.TrimSpace(n) == "" {
			return nil, fmt.Errorf("invalid node name %v (%s)", it, want)
		}
		n = strings.TrimSpace(n)
		if !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// additionalContexts maps Compose's additional_contexts and folds the
// digests of local ones into the main context digest, so that editing a
// file in any of them rebuilds. Errors start with the context's name.
func additionalContexts(project string, in map[string]string, digest string, limit int64) (map[string]string, string, error) {
	if len(in) == 0 {
		return nil, digest, nil
	}
	out := make(map[string]string, len(in))
	h := sha256.New()
	h.Write([]byte(digest))
	for _, name := range slices.Sorted(maps.Keys(in)) {
		v := in[name]
		switch {
		case strings.HasPrefix(v, api.ServiceContextPrefix):
			v = api.ServiceContextPrefix + project + "/" + strings.TrimPrefix(v, api.ServiceContextPrefix)
		case strings.HasPrefix(v, "docker-image://"):
			if err := api.CheckReference(strings.TrimPrefix(v, "docker-image://")); err != nil {
				return nil, "", fmt.Errorf("%s: %v", name, err)
			}
		case api.IsGitContext(v) || strings.Contains(v, "://"):
			return nil, "", fmt.Errorf("%s: %q is not supported yet (use a path, docker-image:// or service:)", name, v)
		default:
			d, err := buildcontext.Digest(v, "", limit)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %v", name, err)
			}
			fmt.Fprintf(h, "\x00%s=%s", name, d)
		}
		out[name] = v
	}
	return out, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
