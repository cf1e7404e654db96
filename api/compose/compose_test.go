package compose

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/test/harness/files"
)

// writeFiles creates files (path relative to a fresh temp dir) and returns
// the dir.
func writeFiles(t *testing.T, tree map[string]string) string {
	t.Helper()
	return files.Write(t, t.TempDir(), tree)
}

// load runs Load on dir/compose.yaml (plus extra -f files). It blanks
// COMPOSE_PROJECT_NAME and COMPOSE_PROFILES so the developer's shell cannot
// change the result; tests never call os.Setenv, so they can run in parallel.
func load(t *testing.T, dir string, opts LoadOptions) (*api.Project, error) {
	t.Helper()
	if len(opts.Files) == 0 {
		opts.Files = []string{"compose.yaml"}
	}
	for i, f := range opts.Files {
		opts.Files[i] = filepath.Join(dir, f)
	}
	env := map[string]string{"COMPOSE_PROJECT_NAME": "", "COMPOSE_PROFILES": ""}
	for k, v := range opts.Env {
		env[k] = v
	}
	opts.Env = env
	return Load(context.Background(), opts)
}

func TestLoad(t *testing.T) {
	t.Parallel()
	type want struct {
		builds []api.BuildSpec // Context "" is filled with the temp dir
		images []api.ImageSpec
	}
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  want
	}{
		{
			name: "build attributes mapped",
			files: map[string]string{"compose.yaml": `
name: p
services:
  web:
    image: registry.local/web:1
    build:
      context: ./app
      dockerfile: docker/Dockerfile.prod
      args: {A: "1", B: two}
      target: final
      labels: {team: core}
`, "app/docker/Dockerfile.prod": "FROM busybox\n"},
			want: want{
				builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "registry.local/web:1",
					Context: "app", Dockerfile: "docker/Dockerfile.prod",
					Args: map[string]string{"A": "1", "B": "two"}, Target: "final", Labels: map[string]string{"team": "core"}}},
				images: []api.ImageSpec{{Name: "p/web", Project: "p", Service: "web", Build: "p/web"}},
			},
		},
		{
			name: "run options, tags, cache and entitlements mapped",
			files: map[string]string{"compose.yaml": `
name: p
services:
  web:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox
        RUN true
      tags: [p/web:extra, p/web:b]
      no_cache: true
      no_cache_filter: [final]
      pull: true
      extra_hosts: ["db=10.0.0.2", "api:10.0.0.3"]
      shm_size: 128m
      ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
      network: none
      platforms: [linux/amd64]
      entitlements: [network.host]
      privileged: true
`},
			want: want{
				builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: ".",
					DockerfileInline: "FROM busybox\nRUN true\n", Tags: []string{"p/web:b", "p/web:extra"},
					NoCache: true, NoCacheFilter: []string{"final"}, Pull: true,
					ExtraHosts: []string{"api=10.0.0.3", "db=10.0.0.2"}, ShmSize: 128 << 20,
					Ulimits: []string{"nofile=1024:2048", "nproc=64:64"}, Network: "none",
					Platforms: []string{"linux/amd64"}, Entitlements: []string{"network.host", "security.insecure"}}},
				images: []api.ImageSpec{{Name: "p/web", Project: "p", Service: "web", Build: "p/web"}},
			},
		},
		{
			name: "secrets, ssh, cache and attestations as references",
			files: map[string]string{"compose.yaml": `
name: p
services:
  web:
    build:
      context: .
      secrets: [token, {source: key, target: apikey}]
      ssh: [default, "deploy=/keys/deploy"]
      cache_from: [p/cache:main, "type=registry,ref=p/cache:dev"]
      cache_to: ["type=registry,ref=p/cache:main,mode=max"]
      provenance: mode=max
      sbom: "true"
secrets:
  token: {file: ./token.txt}
  key: {environment: API_KEY}
`, "Dockerfile": "FROM busybox\n", "token.txt": "s3cret\n"},
			opts: LoadOptions{Env: map[string]string{"API_KEY": "never-stored"}},
			want: want{
				builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "p/web", Context: ".",
					Dockerfile: "Dockerfile",
					Secrets:    []api.SecretRef{{ID: "apikey", Env: "API_KEY"}, {ID: "token", File: "TOKEN"}},
					SSH:        []api.SSHRef{{ID: "default"}, {ID: "deploy", Paths: []string{"/keys/deploy"}}},
					CacheFrom:  []string{"p/cache:main", "p/cache:dev"}, CacheTo: []string{"p/cache:main"},
					CacheToAttrs: map[string]map[string]string{"p/cache:main": {"mode": "max"}},
					Provenance:   "mode=max", SBOM: "true"}},
				images: []api.ImageSpec{{Name: "p/web", Project: "p", Service: "web", Build: "p/web"}},
			},
		},
		{
			name: "args from env, unset arg omitted",
			files: map[string]string{"compose.yaml": `
name: p
services:
  web:
    build: {context: ., args: [FOO, UC_TEST_SURELY_UNSET_ARG]}
`, "Dockerfile": "FROM busybox\n"},
			opts: LoadOptions{Env: map[string]string{"FOO": "from-env"}},
			want: want{
				builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "p/web",
					Dockerfile: "Dockerfile", Args: map[string]string{"FOO": "from-env"}}},
				images: []api.ImageSpec{{Name: "p/web", Project: "p", Service: "web", Build: "p/web"}},
			},
		},
		{
			name:  "interpolation default",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  db:\n    image: postgres:${TAG:-16}\n"},
			want:  want{images: []api.ImageSpec{{Name: "p/db", Project: "p", Service: "db", Image: "postgres:16"}}},
		},
		{
			name:  "interpolation from env",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  db:\n    image: postgres:${TAG:-16}\n"},
			opts:  LoadOptions{Env: map[string]string{"TAG": "17"}},
			want:  want{images: []api.ImageSpec{{Name: "p/db", Project: "p", Service: "db", Image: "postgres:17"}}},
		},
		{
			name: ".env file",
			files: map[string]string{
				"compose.yaml": "name: ${NAME}\nservices:\n  db:\n    image: postgres:${TAG:-16}\n",
				".env":         "NAME=fromdotenv\nTAG=15\n",
			},
			want: want{images: []api.ImageSpec{{Name: "fromdotenv/db", Project: "fromdotenv", Service: "db", Image: "postgres:15"}}},
		},
		{
			name: "env wins over .env",
			files: map[string]string{
				"compose.yaml": "name: p\nservices:\n  db:\n    image: postgres:${TAG:-16}\n",
				".env":         "TAG=15\n",
			},
			opts: LoadOptions{Env: map[string]string{"TAG": "14"}},
			want: want{images: []api.ImageSpec{{Name: "p/db", Project: "p", Service: "db", Image: "postgres:14"}}},
		},
		{
			name: "extends from another file",
			files: map[string]string{
				"compose.yaml": `
name: p
services:
  web:
    extends: {file: base/base.yaml, service: app}
    x-machines: node1
`,
				"base/base.yaml":  "services:\n  app:\n    build: {context: ., args: {X: y}}\n",
				"base/Dockerfile": "FROM busybox\n",
			},
			want: want{
				builds: []api.BuildSpec{{Name: "p/web", Project: "p", Service: "web", Image: "p/web",
					Context: "base", Dockerfile: "Dockerfile", Args: map[string]string{"X": "y"}}},
				images: []api.ImageSpec{{Name: "p/web", Project: "p", Service: "web", Build: "p/web",
					Placement: api.Placement{Nodes: []string{"node1"}}}},
			},
		},
		{
			name:  "inactive profile excluded",
			files: map[string]string{"compose.yaml": profilesYAML},
			want:  want{images: []api.ImageSpec{{Name: "p/app", Project: "p", Service: "app", Image: "busybox"}}},
		},
		{
			name:  "active profile included",
			files: map[string]string{"compose.yaml": profilesYAML},
			opts:  LoadOptions{Profiles: []string{"debug"}},
			want: want{images: []api.ImageSpec{
				{Name: "p/app", Project: "p", Service: "app", Image: "busybox"},
				{Name: "p/debug", Project: "p", Service: "debug", Image: "alpine"},
			}},
		},
		{
			name:  "project name option and working dir",
			files: map[string]string{"compose.yaml": "services:\n  db:\n    image: redis\n"},
			opts:  LoadOptions{ProjectName: "named"},
			want:  want{images: []api.ImageSpec{{Name: "named/db", Project: "named", Service: "db", Image: "redis"}}},
		},
		{
			name: "x-machines list, string and duplicates; sorted output",
			files: map[string]string{"compose.yaml": `
name: p
services:
  b:
    image: busybox
    x-machines: [n2, n1, n2]
  a:
    image: alpine
    x-machines: n3
`},
			want: want{images: []api.ImageSpec{
				{Name: "p/a", Project: "p", Service: "a", Image: "alpine", Placement: api.Placement{Nodes: []string{"n3"}}},
				{Name: "p/b", Project: "p", Service: "b", Image: "busybox", Placement: api.Placement{Nodes: []string{"n2", "n1"}}},
			}},
		},
		{
			name: "placement constraints, x-machines wins",
			files: map[string]string{"compose.yaml": `
name: p
services:
  c:
    image: busybox
    deploy:
      placement:
        constraints: ["node.labels.zone==eu", "  node.hostname  !=  n3 ", "node.labels.gpu == true"]
  m:
    image: busybox
    x-machines: [n1]
    deploy: {placement: {constraints: ["node.hostname == n9"]}}
`},
			want: want{images: []api.ImageSpec{
				{Name: "p/c", Project: "p", Service: "c", Image: "busybox", Placement: api.Placement{Constraints: []api.Constraint{
					{Key: "node.labels.zone", Op: "==", Value: "eu"},
					{Key: "node.hostname", Op: "!=", Value: "n3"},
					{Key: "node.labels.gpu", Op: "==", Value: "true"},
				}}},
				{Name: "p/m", Project: "p", Service: "m", Image: "busybox", Placement: api.Placement{Nodes: []string{"n1"}}},
			}},
		},
		{
			name: "git context kept as given",
			files: map[string]string{"compose.yaml": `
name: p
services:
  g:
    build: https://github.com/docker/buildx.git#main
`},
			want: want{
				builds: []api.BuildSpec{{Name: "p/g", Project: "p", Service: "g", Image: "p/g",
					Context: "https://github.com/docker/buildx.git#main", Dockerfile: "Dockerfile"}},
				images: []api.ImageSpec{{Name: "p/g", Project: "p", Service: "g", Build: "p/g"}},
			},
		},
		{
			name: "override file",
			files: map[string]string{
				"compose.yaml":  "name: p\nservices:\n  db:\n    image: redis\n",
				"override.yaml": "services:\n  db:\n    image: valkey\n",
			},
			opts: LoadOptions{Files: []string{"compose.yaml", "override.yaml"}},
			want: want{images: []api.ImageSpec{{Name: "p/db", Project: "p", Service: "db", Image: "valkey"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			p, err := load(t, dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want.builds {
				b := &tt.want.builds[i]
				b.Context = absIfLocal(dir, b.Context)
				for j := range b.Secrets {
					if b.Secrets[j].File == "TOKEN" {
						b.Secrets[j].File = filepath.Join(dir, "token.txt")
					}
				}
				if err := b.Validate(); err != nil {
					t.Errorf("want %s: %v", b.Name, err)
				}
			}
			for i, b := range p.Builds {
				if err := b.Validate(); err != nil {
					t.Errorf("got %s: %v", b.Name, err)
				}
				p.Builds[i].ContextDigest = checkDigest(t, b)
			}
			for _, i := range p.Images {
				if err := i.Validate(); err != nil {
					t.Errorf("got %s: %v", i.Name, err)
				}
			}
			if !reflect.DeepEqual(p.Builds, tt.want.builds) {
				t.Errorf("builds:\n got %+v\nwant %+v", p.Builds, tt.want.builds)
			}
			if !reflect.DeepEqual(p.Images, tt.want.images) {
				t.Errorf("images:\n got %+v\nwant %+v", p.Images, tt.want.images)
			}
		})
	}
}

const profilesYAML = `
name: p
services:
  app:
    image: busybox
  debug:
    image: alpine
    profiles: [debug]
`

// absIfLocal turns a want's context (relative to the temp dir) into what
// compose-go resolves it to; URLs stay as given.
func absIfLocal(dir, ctx string) string {
	if strings.Contains(ctx, "://") {
		return ctx
	}
	return filepath.Join(dir, ctx)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  []string // substrings of the error; the error must be one line
	}{
		{
			name:  "external secret is refused",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build:\n      context: .\n      secrets: [s]\nsecrets:\n  s: {external: true}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: secrets.s: only file and environment secrets can be used by builds"},
		},
		{
			name:  "cache type other than registry",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build:\n      context: .\n      cache_from: [type=gha]\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.cache_from[0]: cache type \"gha\" is not supported"},
		},
		{
			name:  "additional context from git not yet supported",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build:\n      context: .\n      additional_contexts: {src: \"https://github.com/docker/buildx.git#main\"}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.additional_contexts.src: \"https://github.com/docker/buildx.git#main\" is not supported yet"},
		},
		{
			name:  "additional context path missing",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build:\n      context: .\n      additional_contexts: {assets: ./nope}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.additional_contexts.assets:"},
		},
		{
			name:  "named build network",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., network: backend}\n"},
			want:  []string{"compose.yaml: services.web.build.network: named network \"backend\" cannot be used by builds: BuildKit runs RUN steps in its own network namespace"},
		},
		{
			name:  "unknown entitlement",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., entitlements: [root.everything]}\n"},
			want:  []string{"services.web.build.entitlements: unknown entitlement \"root.everything\""},
		},
		{
			name:  "unknown service attribute",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    imagee: typo\n"},
			want:  []string{"compose.yaml", "services.web.imagee: unknown attribute"},
		},
		{
			name:  "unknown top-level attribute",
			files: map[string]string{"compose.yaml": "name: p\nservice:\n  web:\n    image: busybox\n"},
			want:  []string{"compose.yaml", "service"},
		},
		{
			name:  "malformed yaml names the file",
			files: map[string]string{"broken.yaml": "services:\n  web:\n    image: [\n"},
			opts:  LoadOptions{Files: []string{"broken.yaml"}},
			want:  []string{"broken.yaml", "yaml"},
		},
		{
			name:  "missing file",
			files: map[string]string{},
			want:  []string{"compose.yaml"},
		},
		{
			name:  "neither build nor image",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    restart: always\n"},
			want:  []string{"compose.yaml", `"web"`},
		},
		{
			name:  "bad constraint key",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    deploy: {placement: {constraints: [\"engine.labels.x == y\"]}}\n"},
			want:  []string{`compose.yaml: services.web.deploy.placement.constraints[0]: unsupported constraint "engine.labels.x == y" (want node.hostname or node.labels.<name> with == or !=)`},
		},
		{
			name:  "bad constraint operator",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    deploy: {placement: {constraints: [\"node.hostname == a\", \"node.labels.zone = eu\"]}}\n"},
			want:  []string{`services.web.deploy.placement.constraints[1]: unsupported constraint "node.labels.zone = eu"`},
		},
		{
			name:  "x-machines wrong type",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    x-machines: {a: b}\n"},
			want:  []string{"compose.yaml: services.web.x-machines: want a node name or a list of node names"},
		},
		{
			name:  "x-machines empty list",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    x-machines: []\n"},
			want:  []string{"compose.yaml: services.web.x-machines: empty list"},
		},
		{
			name:  "empty tag",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: \"nginx:\"\n"},
			want:  []string{`compose.yaml: services.web.image: "nginx:" is not a valid image reference: invalid reference format (an empty tag or name: is a variable unset?)`},
		},
		{
			name:  "empty tag from an unset variable",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: .\n    image: acme/web:${UC_TEST_UNSET_TAG}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: services.web.image: "acme/web:" is not a valid image reference`, "is a variable unset?"},
		},
		{
			name:  "upper-case repository",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: Acme/Web\n"},
			want:  []string{`compose.yaml: services.web.image: "Acme/Web" is not a valid image reference: invalid reference format: repository name (Web) must be lowercase`},
		},
		{
			name:  "tag with a space",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: \"busybox:my tag\"\n"},
			want:  []string{`compose.yaml: services.web.image: "busybox:my tag" is not a valid image reference`, "(it holds whitespace)"},
		},
		{
			name:  "bad build tag",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., tags: [\"p/web:ok\", \"p/web:\"]}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: services.web.build.tags[1]: "p/web:" is not a valid image reference`},
		},
		{
			name:  "bad cache_from",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., cache_from: [\"type=registry,ref=P/Cache\"]}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: services.web.build.cache_from[0]: "P/Cache" is not a valid image reference`},
		},
		{
			name:  "bad cache_to mode",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., cache_to: [\"type=registry,ref=p/c,mode=all\"]}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: services.web.build.cache_to[0]: mode=all: want mode=min or mode=max`},
		},
		{
			name:  "bad docker-image context",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., additional_contexts: {tools: \"docker-image://busybox:\"}}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: services.web.build.additional_contexts.tools: "busybox:" is not a valid image reference`},
		},
		{
			name:  "digest on a build's image",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: .\n    image: p/web@sha256:" + strings.Repeat("a", 64) + "\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.image: p/web@sha256:", "pins a digest, but the service builds its image"},
		},
		{
			name:  "two builds push one image",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  a:\n    build: .\n    image: acme/app\n  b:\n    build: .\n    image: acme/app:latest\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.b.image: acme/app:latest is also pushed by services.a.image: two builds would write one image name"},
		},
		{
			name:  "a tag collides with another build's image",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  a:\n    build: .\n  b:\n    build: {context: ., tags: [p/a]}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.b.build.tags: p/a is also pushed by services.a.image"},
		},
		{
			name:  "upper and lower case services collide",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  Web:\n    build: .\n  web:\n    build: .\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.image: p/web is also pushed by services.Web.image"},
		},
		{
			name:  "unknown x-uc key",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: .\n    x-uc-bulder: node1\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.x-uc-bulder: unknown uc key (did you mean x-uc-builder?)"},
		},
		{
			name:  "unknown x-uc key far from any",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    image: busybox\n    x-uc-colour: blue\n"},
			want:  []string{"compose.yaml: services.web.x-uc-colour: unknown uc key (uc reads x-machines, x-uc-pull-credential"},
		},
		{
			name:  "x-uc key under build",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., x-uc-builder: node1}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.x-uc-builder: uc reads x-uc-builder on the service, not under build: (move it to services.web.x-uc-builder)"},
		},
		{
			name:  "top-level x-uc key",
			files: map[string]string{"compose.yaml": "name: p\nx-uc-builder: node1\nservices:\n  web:\n    image: busybox\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: x-uc-builder: unknown uc key (uc reads x-uc-allow-writers and x-uc-trusted-cache-scopes at the top and x-machines"},
		},
		{
			name:  "service context names no build",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  db:\n    image: redis\n  web:\n    build: {context: ., additional_contexts: {base: \"service:db\"}}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{`compose.yaml: service "web" declares non-buildable service "db" as additional contexts base`},
		},
		{
			name:  "cycle of two",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  a:\n    build: {context: ., additional_contexts: {x: \"service:b\"}}\n  b:\n    build: {context: ., additional_contexts: {y: \"service:a\"}}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.a.build.additional_contexts: a cycle through service: contexts or FROM lines, a → b → a; each build would wait for the next one's image forever"},
		},
		{
			name: "longer cycle",
			files: map[string]string{"compose.yaml": `name: p
services:
  root:
    build: {context: ., additional_contexts: {x: "service:c1"}}
  c1:
    build: {context: ., additional_contexts: {x: "service:c2"}}
  c2:
    build: {context: ., additional_contexts: {x: "service:c3"}}
  c3:
    build: {context: ., additional_contexts: {x: "service:c1"}}
`, "Dockerfile": "FROM busybox\n"},
			want: []string{"a cycle through service: contexts or FROM lines, c1 → c2 → c3 → c1"},
		},
		{
			name:  "self cycle",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  a:\n    build: {context: ., additional_contexts: {x: \"service:a\"}}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"a cycle through service: contexts or FROM lines, a → a"},
		},
		{
			name:  "context is a file",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: ./Dockerfile\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.context: build context ", "Dockerfile is a file: the context must be a directory"},
		},
		{
			name:  "missing Dockerfile names the dockerfile field",
			files: map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., dockerfile: Nope.Dockerfile}\n", "Dockerfile": "FROM busybox\n"},
			want:  []string{"compose.yaml: services.web.build.dockerfile: read Dockerfile: open ", "Nope.Dockerfile: no such file or directory"},
		},
		{
			name: "field errors name the first -f file",
			files: map[string]string{
				"a.yaml": "name: p\nservices:\n  web:\n    image: busybox\n",
				"b.yaml": "services:\n  web:\n    x-machines: [1]\n",
			},
			opts: LoadOptions{Files: []string{"a.yaml", "b.yaml"}},
			want: []string{"a.yaml: services.web.x-machines: invalid node name 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, tt.files)
			p, err := load(t, dir, tt.opts)
			if err == nil {
				t.Fatalf("want error, got %+v", p)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// TestHelloExample keeps examples/hello in line with the loader.
func TestHelloExample(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Builds[0].ContextDigest = checkDigest(t, p.Builds[0])
	want := &api.Project{
		Name: "hello",
		Builds: []api.BuildSpec{{Name: "hello/web", Project: "hello", Service: "web", Image: "hello/web",
			Context: dir, Dockerfile: "Dockerfile", Args: map[string]string{"GREETING": "hello"}}},
		Images: []api.ImageSpec{{Name: "hello/web", Project: "hello", Service: "web", Build: "hello/web",
			Placement: api.Placement{Nodes: []string{"node1", "node2"}}}},
		Files: []string{filepath.Join(dir, "compose.yaml")},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
}

// checkDigest checks that a local context got a digest and a git one none,
// and returns "" so the rest of the spec can be compared exactly.
func checkDigest(t *testing.T, b api.BuildSpec) string {
	t.Helper()
	switch {
	case api.IsGitContext(b.Context) && b.ContextDigest != "":
		t.Errorf("%s: git context got a context digest %q", b.Name, b.ContextDigest)
	case !api.IsGitContext(b.Context) && !strings.HasPrefix(b.ContextDigest, "sha256:"):
		t.Errorf("%s: local context digest = %q, want sha256:…", b.Name, b.ContextDigest)
	}
	return ""
}

func TestIsolationWarns(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"compose.yaml": "name: p\nservices:\n  web:\n    build: {context: ., isolation: hyperv}\n",
		"Dockerfile":   "FROM busybox\n",
	})
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `compose.yaml: services.web.build.isolation: "hyperv" is a Windows container setting; Linux builders ignore it`
	if len(p.Warnings) != 1 || p.Warnings[0] != want {
		t.Fatalf("warnings = %q, want [%q]", p.Warnings, want)
	}
}

func TestAdditionalContexts(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"compose.yaml": `name: p
services:
  base:
    build: ./base
  web:
    build:
      context: .
      additional_contexts:
        assets: ./assets
        base: service:base
        alpine: docker-image://busybox:latest
`,
		"Dockerfile":      "FROM base\nCOPY --from=assets . /assets\n",
		"base/Dockerfile": "FROM busybox\n",
		"assets/a.txt":    "a\n",
	}
	dir := writeFiles(t, files)
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web := p.Builds[1]
	want := map[string]string{"assets": filepath.Join(dir, "assets"), "base": "service:p/base", "alpine": "docker-image://busybox:latest"}
	if !reflect.DeepEqual(web.AdditionalContexts, want) {
		t.Errorf("additional contexts = %v, want %v", web.AdditionalContexts, want)
	}
	if deps := web.DependsOn(); !reflect.DeepEqual(deps, []string{"p/base"}) {
		t.Errorf("DependsOn = %v, want [p/base]", deps)
	}
	if err := os.WriteFile(filepath.Join(dir, "assets", "a.txt"), []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p2, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Builds[1].ContextDigest == web.ContextDigest {
		t.Error("editing a file of an additional context did not change the context digest")
	}
}

func TestBuilderSelector(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value   string
		want    api.BuilderSelector
		wantErr bool
	}{
		{value: "node2", want: api.BuilderSelector{Node: "node2"}},
		{value: "zone=b, disk=ssd", want: api.BuilderSelector{Labels: map[string]string{"zone": "b", "disk": "ssd"}}},
		{value: "zone", want: api.BuilderSelector{Node: "zone"}},
		{value: "=b", wantErr: true},
	} {
		dir := writeFiles(t, map[string]string{
			"compose.yaml": "name: p\nservices:\n  web:\n    build: .\n    x-uc-builder: \"" + tt.value + "\"\n",
			"Dockerfile":   "FROM busybox\n",
		})
		p, err := load(t, dir, LoadOptions{})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "services.web.x-uc-builder") {
				t.Errorf("x-uc-builder %q: got %v, want an error naming the field", tt.value, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("x-uc-builder %q: %v", tt.value, err)
		}
		if got := p.Builds[0].Builder; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("x-uc-builder %q = %+v, want %+v", tt.value, got, tt.want)
		}
	}
	sel := api.BuilderSelector{Labels: map[string]string{"zone": "b"}}
	if !sel.Matches(api.Node{Name: "n2", Labels: map[string]string{"zone": "b"}}) || sel.Matches(api.Node{Name: "n1"}) {
		t.Error("label selector matched wrongly")
	}
}

func TestKeepBuilds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value   string
		want    int
		wantErr bool
	}{
		{value: "", want: api.DefaultKeepBuilds},
		{value: "x-uc-keep-builds: 5", want: 5},
		{value: "x-uc-keep-builds: 0", wantErr: true},
		{value: "x-uc-keep-builds: many", wantErr: true},
		{value: "x-uc-keep-builds: 2.5", wantErr: true},
	} {
		dir := writeFiles(t, map[string]string{
			"compose.yaml": "name: p\nservices:\n  web:\n    build: git://127.0.0.1:1/r.git#main\n    " + tt.value + "\n",
		})
		p, err := load(t, dir, LoadOptions{})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "compose.yaml: services.web.x-uc-keep-builds: want a whole number") {
				t.Errorf("%q: got %v, want an error naming the file and field", tt.value, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		if got := p.Builds[0].Keep(); got != tt.want {
			t.Errorf("%q: keep %d, want %d", tt.value, got, tt.want)
		}
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		service, want, wantErr string
	}{
		{service: "image: nginx:1.27\n    x-uc-refresh: 15m", want: "15m"},
		{service: "image: nginx:1.27", want: ""},
		{service: "image: nginx:1.27\n    x-uc-refresh: 2s", wantErr: "2s is too often: at least 10s"},
		{service: "image: nginx:1.27\n    x-uc-refresh: often", wantErr: "want a duration such as 15m"},
		{service: "image: nginx:1.27\n    x-uc-refresh: 15", wantErr: "want a duration such as 15m"},
		{service: "image: nginx@sha256:" + strings.Repeat("a", 64) + "\n    x-uc-refresh: 15m", wantErr: "is pinned by digest; there is no tag to refresh"},
		{service: "build: git://127.0.0.1:1/r.git#main\n    x-uc-refresh: 15m", wantErr: "the service builds its image"},
	} {
		dir := writeFiles(t, map[string]string{"compose.yaml": "name: p\nservices:\n  web:\n    " + tt.service + "\n"})
		p, err := load(t, dir, LoadOptions{})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), "compose.yaml: services.web.x-uc-refresh: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: got %v, want an error naming the file and field with %q", tt.service, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.service, err)
		}
		if got := p.Images[0].RefreshEvery; got != tt.want {
			t.Errorf("%q: refresh %q, want %q", tt.service, got, tt.want)
		}
	}
}

// TestLoadNameWithoutContexts is what uc delete -f reads: it must
// not need the build contexts, which may be gone by then.
func TestLoadNameWithoutContexts(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"compose.yaml": "name: shop\nservices:\n  web:\n    build: ./gone\n  api:\n    build: {context: ., dockerfile: missing.Dockerfile}\n"})
	if _, err := load(t, dir, LoadOptions{}); err == nil {
		t.Fatal("the full load should fail on the missing context")
	}
	p, err := LoadName(context.Background(), LoadOptions{WorkingDir: dir})
	if err != nil || p.Name != "shop" || len(p.Builds)+len(p.Images) != 0 {
		t.Errorf("LoadName = %+v, %v; want shop and no specs", p, err)
	}
}

// TestNamesAndSilentDrops covers what used to be lost or mangled between
// the Compose file and the specs.
func TestNamesAndSilentDrops(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n", "compose.yaml": `
name: p
services:
  Web:
    build: .
  app:
    build:
      context: .
      cache_to: ["type=registry,ref=p/cache,mode=min,compression=zstd"]
    image: acme/app:1
    platform: linux/arm64
  worker:
    image: acme/app:1
    platform: linux/arm64
    x-machine: [n1]
`})
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web, app := p.Builds[0], p.Builds[1]
	if web.Name != "p/Web" || web.Image != "p/web" || web.ContextRepository() != "uc-contexts/p/web" {
		t.Errorf("upper-case service: name %s, image %s, context repository %s; want p/Web, p/web, uc-contexts/p/web", web.Name, web.Image, web.ContextRepository())
	}
	if !slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, "services.Web builds into repository p/web") }) {
		t.Errorf("notes %q do not show the name mapping", p.Notes)
	}
	if !slices.Equal(app.Platforms, []string{"linux/arm64"}) {
		t.Errorf("service platform: build platforms %v, want [linux/arm64]", app.Platforms)
	}
	if got := app.CacheToAttrs["p/cache"]; got["mode"] != "min" || got["compression"] != "zstd" {
		t.Errorf("cache_to options %v, want mode=min and compression=zstd kept", got)
	}
	worker := p.Images[2]
	if worker.Image != "" || worker.Build != "p/app" || worker.Platform != "linux/arm64" {
		t.Errorf("worker pulls %q build %q platform %q; want p/app's build on linux/arm64", worker.Image, worker.Build, worker.Platform)
	}
	for _, want := range []string{
		"compose.yaml: services.worker.image: acme/app:1 is built by services.app; worker pre-pulls that build",
		"compose.yaml: services.worker.x-machine: uc ignores this key (did you mean x-machines?)",
	} {
		if !slices.ContainsFunc(p.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("warnings %q lack %q", p.Warnings, want)
		}
	}
}

// TestFromLinesLinkBuilds: a FROM or COPY --from line naming an image
// another service builds becomes an edge, fed by digest under the name
// the frontend looks up.
func TestFromLinesLinkBuilds(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"compose.yaml": `name: shop
services:
  base:
    build: ./base
    image: shop/base
  tools:
    build: {context: ./tools, tags: ["shop/tools:1.0"]}
  app:
    build: {context: ./app, args: {BASE: shop/base}}
  pinned:
    build: ./pinned
  own:
    build:
      context: ./own
      additional_contexts: {shop/base: "docker-image://busybox"}
`,
		"base/Dockerfile":   "FROM busybox\n",
		"tools/Dockerfile":  "FROM busybox\n",
		"app/Dockerfile":    "ARG BASE=other\nFROM ${BASE}:latest AS build\nCOPY --from=127.0.0.1:5454/shop/tools:1.0 /t /t\nFROM build\n",
		"pinned/Dockerfile": "FROM shop/base@sha256:" + strings.Repeat("a", 64) + "\nFROM docker.io/library/busybox\n",
		"own/Dockerfile":    "FROM shop/base\n",
	})
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, b := range p.Builds {
		got[b.Service] = b.AdditionalContexts
	}
	want := map[string]map[string]string{
		"app": {"shop/base": "service:shop/base", "127.0.0.1:5454/shop/tools:1.0": "service:shop/tools"},
		"own": {"shop/base": "docker-image://busybox"},
	}
	for _, svc := range []string{"base", "tools", "app", "pinned", "own"} {
		if !maps.Equal(got[svc], want[svc]) {
			t.Errorf("%s: additional contexts %v, want %v", svc, got[svc], want[svc])
		}
	}
}

func TestFromLineErrors(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		files map[string]string
		want  string
	}{
		"a cycle through FROM lines": {map[string]string{
			"compose.yaml": "name: loop\nservices:\n  a:\n    build: ./a\n  b:\n    build: ./b\n",
			"a/Dockerfile": "FROM loop/b\n",
			"b/Dockerfile": "FROM loop/a\n",
		}, "compose.yaml: services.a.build.additional_contexts: a cycle through service: contexts or FROM lines, a → b → a"},
		"a build from its own image": {map[string]string{
			"compose.yaml": "name: self\nservices:\n  a:\n    build: ./a\n",
			"a/Dockerfile": "FROM self/a\n",
		}, "a cycle through service: contexts or FROM lines, a → a"},
		"a Dockerfile the parser refuses": {map[string]string{
			"compose.yaml": "name: bad\nservices:\n  a:\n    build: ./a\n",
			"a/Dockerfile": "RUN true\n",
		}, "compose.yaml: services.a.build.dockerfile: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, writeFiles(t, tt.files), LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRebuildOnBaseKey(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]string{
		"1h":  "",
		"2s":  "services.app.x-uc-rebuild-on-base: 2s is too often: at least 10s",
		"yes": "services.app.x-uc-rebuild-on-base: want a duration such as 1h",
	} {
		dir := writeFiles(t, map[string]string{
			"compose.yaml": "name: f\nservices:\n  app:\n    build: .\n    x-uc-rebuild-on-base: " + value + "\n",
			"Dockerfile":   "FROM busybox\n",
		})
		p, err := load(t, dir, LoadOptions{})
		switch {
		case want == "" && (err != nil || p.Builds[0].RebuildOnBase != value):
			t.Errorf("%s: %v, %+v", value, err, p)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", value, err, want)
		}
	}
}

func TestCacheScopes(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"compose.yaml": `name: s
x-uc-trusted-cache-scopes: [release]
services:
  main:
    build: .
    x-uc-cache-scope: main
  release:
    build: .
    x-uc-cache-scope: release
  branch:
    build: .
    x-uc-cache-scope: repo/feature-x
`,
		"Dockerfile": "FROM busybox\n",
	})
	p, err := load(t, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range p.Builds {
		want := b.Service == "release" // the file's list replaces the default, main
		if b.CacheScopeTrusted != want {
			t.Errorf("%s (scope %s): trusted %v, want %v", b.Service, b.CacheScope, b.CacheScopeTrusted, want)
		}
		if b.Service == "branch" {
			refs, _ := b.CacheRefs("r:5000")
			if want := "r:5000/uc-cache/s/branch:buildcache-repo-feature-x"; !slices.Contains(refs, want) {
				t.Errorf("cache refs %v lack %s", refs, want)
			}
			if ns := b.CacheMountNamespace(); ns != "uc/s/repo/feature-x" {
				t.Errorf("cache mount namespace %q", ns)
			}
		}
	}
}

func TestFollowKeys(t *testing.T) {
	t.Parallel()
	const repo = "https://git.example/me/app.git"
	for _, tt := range []struct{ build, ext, want string }{
		{repo + "#main:app", "x-uc-follow: 1m\n    x-uc-git-credential: env:GIT_TOKEN", ""},
		{repo, "x-uc-follow: 30s\n    x-uc-git-credential: ssh:default", ""},
		{repo + "#main", "x-uc-follow: 5s", "services.app.x-uc-follow: 5s is too often: at least 10s"},
		{repo + "#main", "x-uc-follow: often", "services.app.x-uc-follow: want a duration such as 1m"},
		{repo + "#0123456789abcdef0123456789abcdef01234567", "x-uc-follow: 1m", "the context pins commit 0123456789abcdef0123456789abcdef01234567, which never moves"},
		{".", "x-uc-follow: 1m", "services.app.x-uc-follow: the build's context"},
		{repo + "#main", "x-uc-git-credential: ghp_pasted_token", `services.app.x-uc-git-credential: "ghp_pasted_token" is not a git credential reference`},
		{".", "x-uc-git-credential: env:T", "services.app.x-uc-git-credential: the build's context"},
	} {
		b := loadService(t, "    build: "+tt.build+"\n    "+tt.ext+"\n", tt.want)
		if tt.want == "" && b != nil && (b.Follow == "" || b.GitCredential == "") {
			t.Errorf("%s: %+v", tt.ext, b)
		}
	}
}

// TestTagsNamingAnotherRegistry: a tag with a registry host is refused,
// not rewritten into the internal registry, with a pointer to x-uc-push.
func TestTagsNamingAnotherRegistry(t *testing.T) {
	t.Parallel()
	for tag, want := range map[string]string{
		"me/app:v1":             "",
		"app:latest":            "",
		"ghcr.io/me/app:v1":     "services.app.build.tags[0]: ghcr.io/me/app:v1 names the registry ghcr.io: tags name the image in uc's internal registry (use me/app:v1), and x-uc-push: [ghcr.io/me/app:v1] publishes it to ghcr.io",
		"localhost:5000/app:v1": "names the registry localhost:5000",
		"docker.io/me/app:v1":   "names the registry docker.io",
	} {
		loadService(t, "    build:\n      context: .\n      tags: [\""+tag+"\"]\n", want)
	}
}

func TestPushKeys(t *testing.T) {
	t.Parallel()
	for ext, want := range map[string]string{
		"x-uc-push: [ghcr.io/me/app:v1, registry.example:5000/app:latest]\n    x-uc-push-credential: env:PUSH": "",
		"x-uc-push: ghcr.io/me/app:v1":                                      "services.app.x-uc-push: want a list of image references",
		"x-uc-push: [\"ghcr.io/me/App:v1\"]":                                "services.app.x-uc-push[0]:",
		"x-uc-push: [\"ghcr.io/me/app@sha256:" + sha64 + "\"]":              "pins a digest; name a tag to push to",
		"x-uc-push: [ghcr.io/me/app:v1]\n    x-uc-push-credential: hunter2": `services.app.x-uc-push-credential: "hunter2" is not a credential reference`,
		"x-uc-push-credential: env:PUSH":                                    "set without x-uc-push, it is used by nothing",
	} {
		b := loadService(t, "    build: .\n    "+ext+"\n", want)
		if want == "" && b != nil && (len(b.Push) != 2 || b.PushCredential != "env:PUSH") {
			t.Errorf("%s: %+v", ext, b)
		}
	}
}

const sha64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// loadService loads a file whose one service app builds "." with the
// given service lines, and checks the error against want ("" for none).
// It returns the build, or nil when the load failed.
func loadService(t *testing.T, service, want string) *api.BuildSpec {
	t.Helper()
	dir := writeFiles(t, map[string]string{
		"compose.yaml": "name: f\nservices:\n  app:\n" + service,
		"Dockerfile":   "FROM busybox\n",
	})
	p, err := load(t, dir, LoadOptions{})
	switch {
	case want == "" && err != nil:
		t.Errorf("%q: %v", service, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%q: error %v, want %q", service, err, want)
	}
	if err != nil || len(p.Builds) == 0 {
		return nil
	}
	return &p.Builds[0]
}

// TestStaticBuildType: x-uc-build-type: static generates the Dockerfile
// from its options, in full in the spec; bad options are refused.
func TestStaticBuildType(t *testing.T) {
	t.Parallel()
	b := loadService(t, "    build: .\n    x-uc-build-type: static\n    x-uc-static:\n      builder: busybox\n      command: mkdir -p out && echo hi > out/index.html\n"+
		"      output: out/\n      server: busybox\n      root: /www\n", "")
	want := "# Generated by uc for x-uc-build-type: static\nFROM busybox AS build\nWORKDIR /src\nCOPY . .\nRUN mkdir -p out && echo hi > out/index.html\n\n" +
		"FROM busybox\nCOPY --from=build /src/out/ /www/\n"
	if b == nil || b.DockerfileInline != want || b.BuildType != "static" || b.Static.Server != "busybox" {
		t.Errorf("static build: %+v\n%s", b, b.DockerfileInline)
	}
	if b := loadService(t, "    build: .\n    x-uc-build-type: static\n", ""); b == nil || !strings.Contains(b.DockerfileInline, "FROM node:20 AS build") ||
		!strings.Contains(b.DockerfileInline, "COPY --from=build /src/dist/ /usr/share/nginx/html/") {
		t.Errorf("defaults: %+v", b)
	}
	for ext, want := range map[string]string{
		"x-uc-build-type: nixpacks":                                       "services.app.x-uc-build-type: unknown build type nixpacks: want dockerfile (the default) or static",
		"x-uc-build-type: dockerfile":                                     "",
		"x-uc-static: {server: nginx}":                                    "services.app.x-uc-static: set without x-uc-build-type: static",
		"x-uc-build-type: static\n    x-uc-static: {srv: nginx}":          "services.app.x-uc-static.srv: unknown option: want one of builder, command, output, root, server",
		"x-uc-build-type: static\n    x-uc-static: {output: ../x}":        "must be a directory inside the context",
		"x-uc-build-type: static\n    x-uc-static: {root: www}":           "must be an absolute path in the server image",
		"x-uc-build-type: static\n    x-uc-static: {server: \"Nginx:1\"}": "services.app.x-uc-static.server:",
		"x-uc-build-type: static\n    x-uc-static: {command: \"\"}":       "services.app.x-uc-static.command: want a non-empty string",
	} {
		loadService(t, "    build: .\n    "+ext+"\n", want)
	}
}

func TestBuildOnKey(t *testing.T) {
	t.Parallel()
	if b := loadService(t, "    build: .\n    x-uc-build: local\n", ""); b == nil || b.BuildOn != api.BuildOnLocal {
		t.Errorf("x-uc-build: local gave %+v", b)
	}
	if b := loadService(t, "    build: .\n    x-uc-build: cluster\n", ""); b == nil || b.BuildOn != "" {
		t.Errorf("x-uc-build: cluster gave %+v", b)
	}
	loadService(t, "    build: .\n    x-uc-build: laptop\n", "services.app.x-uc-build: want local (uc build, off the cluster) or cluster (got laptop)")
}
