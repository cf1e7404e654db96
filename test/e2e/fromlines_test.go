package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

const fromLinesCompose = `name: tree
services:
  base:
    build: ./base
    x-machines: [node1]
  variant:
    build: {context: ./variant, args: {PARENT: tree/base}}
    image: tree/variant:v1
    x-machines: [node1]
  leaf:
    build: ./leaf
    x-machines: [node1, node2]
`

// TestFromLinesBuildInOrder: FROM lines that name images of the same
// project (through a build arg, and through the registry's stable address)
// order the builds, feed each child its parent by digest, and rebuild
// exactly the descendants when the base changes, with no re-apply of them.
func TestFromLinesBuildInOrder(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := files.Write(t, t.TempDir(), map[string]string{
		"compose.yaml":       fromLinesCompose,
		"base/Dockerfile":    "FROM busybox\nRUN echo base-v1 > /base.txt\n",
		"variant/Dockerfile": "ARG PARENT=nothing\nFROM ${PARENT}\nRUN echo variant >> /base.txt\n",
		"leaf/Dockerfile":    fmt.Sprintf("FROM %s/tree/variant:v1\nCMD [\"cat\", \"/base.txt\"]\n", c.stable),
	})
	compose := filepath.Join(dir, "compose.yaml")

	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "tree/leaf", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "tree/leaf")
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", c.stable+"/tree/leaf@"+first); out != "base-v1\nvariant\n" {
		t.Errorf("leaf shows %q, want its parents' files in order", out)
	}
	if desc := c.ok(t, "describe", "build", "tree/leaf"); !strings.Contains(desc, "tree/variant") {
		t.Errorf("describe build tree/leaf does not show its input tree/variant:\n%s", desc)
	}

	writeFile(t, filepath.Join(dir, "base", "Dockerfile"), "FROM busybox\nRUN echo base-v2 > /base.txt\n")
	out := c.ok(t, "apply", "-f", compose)
	if !strings.Contains(out, "build tree/base configured") || !strings.Contains(out, "build tree/variant unchanged") ||
		!strings.Contains(out, "build tree/leaf unchanged") {
		t.Fatalf("apply after editing only the base printed:\n%s", out)
	}
	if err := poll(waitLong, func() error {
		if d := presentDigests(t, c, "tree/leaf"); d["node1"] == first || d["node1"] == "" || d["node1"] != d["node2"] {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Fatalf("tree/leaf was not rebuilt from the new base: %v", presentDigests(t, c, "tree/leaf"))
	}
	second := sameDigestOnBoth(t, c, "tree/leaf")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/tree/leaf@"+second); out != "base-v2\nvariant\n" {
		t.Errorf("rebuilt leaf shows %q, want the new base", out)
	}
	for name, want := range map[string]int{"tree/base": 2, "tree/variant": 2, "tree/leaf": 2} {
		if n := c.builds(name); n != want {
			t.Errorf("built %s %d times, want %d", name, n, want)
		}
	}
}
