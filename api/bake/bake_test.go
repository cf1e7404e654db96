package bake

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/test/harness/files"
)

// seedTree is shaped like seed 001's Bake tree: a base, a 2×3 matrix of
// variants over it, and leaves over the variants.
const seedTree = `
variable "TAG" { default = "1.0" }

function "tag" {
  params = [name, version]
  result = "shop/${name}:${version}"
}

group "default" { targets = ["leaves"] }
group "leaves" { targets = ["leaf-a", "leaf-b"] }

target "_common" {
  args   = { COMMON = "yes" }
  labels = { team = "core" }
}

target "base" {
  inherits = ["_common"]
  context  = "base"
  tags     = [tag("base", TAG)]
}

target "variant" {
  name     = "variant-${os}-${ver}"
  matrix   = { os = ["alpine", "debian"], ver = ["1", "2", "3"] }
  inherits = ["_common"]
  context  = "variant"
  contexts = { base = "target:base" }
  args     = { OS = os, VER = ver }
  tags     = [tag("variant-${os}", ver)]
}

target "leaf-a" {
  context  = "leaf"
  contexts = { parent = "target:variant-alpine-1" }
}

target "leaf-b" {
  inherits = ["leaf-a"]
  contexts = { parent = "target:variant-debian-3" }
  output   = ["type=registry,name=shop/leaf-b:extra"]
}
`

func writeTree(t *testing.T, bakeFile string) string {
	t.Helper()
	return files.Write(t, t.TempDir(), map[string]string{
		"docker-bake.hcl":    bakeFile,
		"base/Dockerfile":    "FROM busybox\n",
		"variant/Dockerfile": "FROM base\nARG OS VER\n",
		"leaf/Dockerfile":    "FROM parent\n",
	})
}

func builds(p *api.Project) map[string]api.BuildSpec {
	out := map[string]api.BuildSpec{}
	for _, b := range p.Builds {
		out[b.Service] = b
	}
	return out
}

func TestLoadSeedTree(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, seedTree)
	p, err := Load(context.Background(), LoadOptions{WorkingDir: dir, ProjectName: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	got := builds(p)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	})
	// The default group's leaves, and what their target: contexts name.
	if want := []string{"base", "leaf-a", "leaf-b", "variant-alpine-1", "variant-debian-3"}; !slices.Equal(names, want) {
		t.Fatalf("builds %v, want %v", names, want)
	}
	v := got["variant-debian-3"]
	if v.Image != "shop/variant-debian:3" || v.Args["OS"] != "debian" || v.Args["VER"] != "3" || v.Args["COMMON"] != "yes" ||
		v.Labels["team"] != "core" || v.AdditionalContexts["base"] != "service:shop/base" {
		t.Errorf("variant-debian-3 = %+v", v)
	}
	if got["base"].Image != "shop/base:1.0" || got["base"].Context != filepath.Join(dir, "base") || got["base"].ContextDigest == "" {
		t.Errorf("base = %+v", got["base"])
	}
	lb := got["leaf-b"]
	// A registry output's name is the image when no tags are set.
	if lb.AdditionalContexts["parent"] != "service:shop/variant-debian-3" || lb.Image != "shop/leaf-b:extra" ||
		lb.Context != filepath.Join(dir, "leaf") {
		t.Errorf("leaf-b = %+v (inherits leaf-a's context, overrides its parent)", lb)
	}
	if len(p.Images) != 5 || p.Name != "shop" {
		t.Errorf("project %s with %d images, want shop with one per build", p.Name, len(p.Images))
	}
}

func TestLoadSelectsAndOverrides(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, seedTree)
	// The matrix target's own name selects all six variants; TAG comes
	// from the environment.
	p, err := Load(context.Background(), LoadOptions{WorkingDir: dir, Targets: []string{"variant"}, Env: map[string]string{"TAG": "2.5"}})
	if err != nil {
		t.Fatal(err)
	}
	got := builds(p)
	if len(got) != 7 { // six variants and their base
		t.Errorf("%d builds, want 7: %v", len(got), got)
	}
	if got["base"].Image != "shop/base:2.5" {
		t.Errorf("base image %s, want TAG from the environment", got["base"].Image)
	}
	if p.Name != strings.ToLower(filepath.Base(dir)) {
		t.Errorf("project %q, want the directory's name", p.Name)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		bake    string
		targets []string
		want    string
	}{
		"unknown target": {seedTree, []string{"nope"}, `docker-bake.hcl: no target or group named "nope" (targets: _common, base, leaf-a, leaf-b, variant-alpine-1`},
		"local output": {`target "default" {
  context = "base"
  output  = ["type=local,dest=out"]
}`, nil, "docker-bake.hcl: target.default.output: type=local is not supported"},
		"inherits cycle": {`target "a" {
  inherits = ["b"]
}
target "b" {
  inherits = ["a"]
}`, []string{"a"}, "target a inherits from itself: a → b → a"},
		"syntax": {"target \"x\" {\n  context = \n}\n", nil, "docker-bake.hcl:2,13-3,1: Invalid expression"},
		"missing context target": {`target "default" {
  context  = "leaf"
  contexts = { parent = "target:gone" }
}`, nil, `target default: contexts: no target or group named "gone"`},
		"bad tag": {`target "default" {
  context = "base"
  tags    = ["shop/Base:1"]
}`, nil, "target.default.tags"},
		"no default": {`target "x" {
  context = "base"
}`, nil, `no target or group named "default"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(context.Background(), LoadOptions{WorkingDir: writeTree(t, tt.bake), ProjectName: "p", Targets: tt.targets})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v\nwant %q", err, tt.want)
			}
		})
	}
}

func TestMatrixTooLarge(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, `target "default" {
  name    = "v-${a}-${b}"
  matrix  = { a = range(100), b = range(100) }
  context = "base"
}`)
	if _, err := Load(context.Background(), LoadOptions{WorkingDir: dir, ProjectName: "p"}); err == nil || !strings.Contains(err.Error(), "uc builds at most 1000 per target") {
		t.Errorf("a 10,000-variant matrix: %v", err)
	}
}
