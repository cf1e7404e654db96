package bake

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/go-units"

	"github.com/ucplane/uc/api"
)

// composeProject writes the resolved targets as the Compose services the
// shared translation reads: one service per target, building its image.
func composeProject(name, dir string, targets map[string]*target) (*types.Project, error) {
	cp := &types.Project{Name: name, WorkingDir: abs(dir, "."), Services: types.Services{}, Secrets: types.Secrets{}}
	for _, tn := range slices.Sorted(maps.Keys(targets)) {
		svc, err := service(targets[tn], cp, dir)
		if err != nil {
			return nil, fmt.Errorf("target.%s.%w", tn, err)
		}
		cp.Services[tn] = svc
	}
	return cp, nil
}

// service is one target as a Compose service. Errors start with the
// attribute they are about.
func service(t *target, cp *types.Project, dir string) (types.ServiceConfig, error) {
	for attr, set := range map[string]bool{"annotations": len(t.Annotations) > 0, "attest": len(t.Attest) > 0, "ulimits": len(t.Ulimits) > 0} {
		if set {
			return types.ServiceConfig{}, fmt.Errorf("%s: not supported yet in Bake files (Compose files can set what uc supports of it)", attr)
		}
	}
	b := &types.BuildConfig{
		Context: localOrGit(dir, deref(t.Context, ".")), Dockerfile: deref(t.Dockerfile, ""), DockerfileInline: deref(t.DockerfileInline, ""),
		Args: types.MappingWithEquals(t.Args), Labels: labels(t.Labels), CacheFrom: t.CacheFrom, CacheTo: t.CacheTo,
		NoCache: deref(t.NoCache, false), NoCacheFilter: t.NoCacheFilter, Pull: deref(t.Pull, false), Network: deref(t.Network, ""),
		Target: deref(t.Target, ""), Platforms: t.Platforms, Entitlements: t.Entitlements, Tags: nil,
	}
	if b.Dockerfile == "" && b.DockerfileInline == "" {
		b.Dockerfile = "Dockerfile"
	}
	svc := types.ServiceConfig{Name: t.Name}
	svc.Build = b
	tags, err := outputTags(t.Outputs)
	if err != nil {
		return svc, err
	}
	if tags = append(slices.Clone(t.Tags), tags...); len(tags) > 0 {
		svc.Image, b.Tags = tags[0], tags[1:]
	}
	if err := shmSize(t.ShmSize, b); err != nil {
		return svc, err
	}
	for host, ip := range t.ExtraHosts {
		if b.ExtraHosts == nil {
			b.ExtraHosts = types.HostsList{}
		}
		b.ExtraHosts[host] = []string{deref(ip, "")}
	}
	if b.AdditionalContexts, err = contexts(dir, t.Contexts); err != nil {
		return svc, err
	}
	if b.SSH, err = sshKeys(t.SSH); err != nil {
		return svc, err
	}
	return svc, secrets(t.Secrets, b, cp, dir)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func labels(in map[string]*string) types.Labels {
	if len(in) == 0 {
		return nil
	}
	out := types.Labels{}
	for k, v := range in {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// localOrGit resolves a local context against the working directory, as
// Bake does; a git URL stays as it is.
func localOrGit(dir, c string) string {
	if api.IsGitContext(c) {
		return c
	}
	return abs(dir, c)
}

func shmSize(s *string, b *types.BuildConfig) error {
	if s == nil {
		return nil
	}
	n, err := units.RAMInBytes(*s)
	if err != nil {
		return fmt.Errorf("shm-size: %q: want a size like 128m", *s)
	}
	b.ShmSize = types.UnitBytes(n)
	return nil
}

// contexts maps Bake's named contexts: target:x is another target's
// result (Compose's service:x), a relative path is local to the working
// directory, anything with a scheme stays.
func contexts(dir string, in map[string]string) (types.Mapping, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := types.Mapping{}
	for name, v := range in {
		switch {
		case strings.HasPrefix(v, "target:"):
			out[name] = api.ServiceContextPrefix + strings.TrimPrefix(v, "target:")
		case strings.Contains(v, "://"), api.IsGitContext(v):
			out[name] = v
		case v == "":
			return nil, fmt.Errorf("contexts.%s: empty", name)
		default:
			out[name] = abs(dir, v)
		}
	}
	return out, nil
}

// outputTags accepts only registry outputs: uc pushes every build into its
// internal registry, so the names of a type=registry (or pushed
// type=image) output become extra tags there.
func outputTags(outputs []string) ([]string, error) {
	var tags []string
	for _, o := range outputs {
		kv := csvPairs(o)
		typ := kv["type"]
		if typ == "" && !strings.Contains(o, "=") {
			typ = o
		}
		switch {
		case typ == "registry", typ == "image" && kv["push"] == "true":
			if n := kv["name"]; n != "" {
				tags = append(tags, strings.Split(n, ",")...)
			}
		case typ == "":
			return nil, fmt.Errorf("output: %q names no type", o)
		default:
			return nil, fmt.Errorf("output: type=%s is not supported: uc pushes every build into its internal registry and pre-pulls it onto the nodes, so only type=registry (or type=image,push=true) outputs make sense; %s", typ, whyNot(typ))
		}
	}
	return tags, nil
}

func whyNot(typ string) string {
	switch typ {
	case "local", "tar", "oci":
		return "type=" + typ + " would write files on whichever node builds, where nobody collects them"
	case "docker", "image", "cacheonly":
		return "type=" + typ + " would leave the image in one builder's store, not in the registry every node pulls from"
	}
	return "BuildKit has no other exporter uc could offer"
}

// csvPairs splits "type=registry,name=a,push=true"; a quoted value may
// hold commas ("name=\"a,b\"").
func csvPairs(s string) map[string]string {
	out := map[string]string{}
	var field strings.Builder
	quoted := false
	flush := func() {
		k, v, _ := strings.Cut(field.String(), "=")
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		field.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			field.WriteRune(r)
		case r == ',' && !quoted:
			flush()
		default:
			field.WriteRune(r)
		}
	}
	flush()
	return out
}

// sshKeys maps "default" or "id=path[,path]" entries.
func sshKeys(entries []string) (types.SSHConfig, error) {
	var out types.SSHConfig
	for _, e := range entries {
		id, path, _ := strings.Cut(e, "=")
		if id == "" {
			return nil, fmt.Errorf("ssh: %q: want default or id=path", e)
		}
		out = append(out, types.SSHKey{ID: id, Path: path})
	}
	return out, nil
}

// secrets maps "id=x,src=path" and "id=x,env=VAR" entries (an entry with
// neither reads the environment variable named like its id, as BuildKit
// does) to Compose secrets, which the shared checks turn into references
// the builder node resolves: the value never reaches state.
func secrets(entries []string, b *types.BuildConfig, cp *types.Project, dir string) error {
	for _, e := range entries {
		kv := csvPairs(e)
		id := kv["id"]
		if id == "" {
			return fmt.Errorf("secret: %q names no id", e)
		}
		def := types.SecretConfig{Name: id}
		switch src := cmp.Or(kv["src"], kv["source"]); {
		case src != "":
			def.File = abs(dir, src)
		default:
			def.Environment = cmp.Or(kv["env"], id)
		}
		cp.Secrets[id] = def
		b.Secrets = append(b.Secrets, types.ServiceSecretConfig{Source: id})
	}
	return nil
}
