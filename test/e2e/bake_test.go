package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

const bakeTree = `variable "GREETING" { default = "hello" }

group "default" { targets = ["leaf"] }

target "base" {
  context = "base"
}

target "variant" {
  name     = "variant-${flavor}-${n}"
  matrix   = { flavor = ["plain", "salty"], n = ["1", "2"] }
  context  = "variant"
  contexts = { base = "target:base" }
  args     = { FLAVOR = flavor, N = n }
}

target "leaf" {
  context  = "leaf"
  contexts = { parent = "target:variant-salty-2" }
  args     = { GREETING = GREETING }
}
`

// TestBakeTree applies a Bake file shaped like seed 001's tree on real
// BuildKit: the default group's leaf pulls in the matrix variant and the
// base it names through target: contexts, each fed its parent by digest;
// a variable comes from the environment; a dry run of the matrix target's
// name selects all four variants.
func TestBakeTree(t *testing.T) {
	env := requireInfra(t)
	t.Setenv("GREETING", "hi") // uc reads Bake variables from its environment
	c := sliceCluster(t, env)
	dir := files.Write(t, t.TempDir(), map[string]string{
		"docker-bake.hcl":    bakeTree,
		"base/Dockerfile":    "FROM busybox\nRUN echo base > /chain\n",
		"variant/Dockerfile": "FROM base\nARG FLAVOR N\nRUN echo \"$FLAVOR-$N\" >> /chain\n",
		"leaf/Dockerfile":    "FROM parent\nARG GREETING\nRUN echo \"$GREETING\" >> /chain\nCMD [\"cat\", \"/chain\"]\n",
	})
	bake := filepath.Join(dir, "docker-bake.hcl")
	c.ok(t, "apply", "-f", bake, "--project-name", "bk")
	c.ok(t, "wait", "images", "bk/leaf", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, "bk/leaf")
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", c.stable+"/bk/leaf@"+digest); out != "base\nsalty-2\nhi\n" {
		t.Errorf("leaf shows %q, want base, its variant and the greeting from the environment", out)
	}
	builds := c.ok(t, "get", "builds")
	for _, name := range []string{"bk/base", "bk/variant-salty-2", "bk/leaf"} {
		if !strings.Contains(builds, name) {
			t.Errorf("no build %s:\n%s", name, builds)
		}
	}
	if strings.Contains(builds, "bk/variant-plain-1") {
		t.Errorf("a variant nothing selected was applied:\n%s", builds)
	}
	if tree := c.ok(t, "get", "builds", "bk/leaf", "--tree"); !strings.Contains(tree, "└─ bk/variant-salty-2") || !strings.Contains(tree, "   └─ bk/leaf") {
		t.Errorf("uc get builds --tree does not draw base → variant → leaf:\n%s", tree)
	}
	if graph := c.ok(t, "get", "builds", "--tree", "-o", "json"); !strings.Contains(graph, `"depends_on": [`) {
		t.Errorf("uc get builds --tree -o json has no edges:\n%s", graph)
	}

	dry := c.ok(t, "apply", "-f", bake, "--project-name", "bk", "--dry-run", "variant")
	for _, name := range []string{"bk/variant-plain-1", "bk/variant-plain-2", "bk/variant-salty-1", "bk/variant-salty-2"} {
		if !strings.Contains(dry, name) {
			t.Errorf("dry run of the matrix target lacks %s:\n%s", name, dry)
		}
	}
	if r := c.uc("apply", "-f", bake, "--project-name", "bk", "nope"); r.code == 0 || !strings.Contains(r.stderr, `no target or group named "nope"`) {
		t.Errorf("apply of an unknown target: %v", r)
	}
}
