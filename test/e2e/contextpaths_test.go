package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContextPaths builds a Dockerfile that lives outside its context and
// a context reached through a symlink, on node2, from what uc apply
// shipped: the sources are moved away right after the apply, so the
// builder cannot read the applying machine's paths. An edit behind the
// symlink rebuilds (it used to ship an empty context whose digest never
// changed).
func TestContextPaths(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	for _, sub := range []string{"app", "docker", "real"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "app", "app.txt"), "from-app\n")
	writeFile(t, filepath.Join(dir, "docker", "Dockerfile.app"), "FROM busybox\nCOPY app.txt /app.txt\nCMD [\"cat\", \"/app.txt\"]\n")
	writeFile(t, filepath.Join(dir, "real", "Dockerfile"), "FROM busybox\nCOPY note.txt /note.txt\nCMD [\"cat\", \"/note.txt\"]\n")
	writeFile(t, filepath.Join(dir, "real", "note.txt"), "linked-v1\n")
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), `name: paths
services:
  outside:
    build: {context: ./app, dockerfile: ../docker/Dockerfile.app}
    x-uc-builder: node2
    x-machines: [node1, node2]
  linked:
    build: ./link
    x-uc-builder: node2
    x-machines: [node1, node2]
`)
	compose := filepath.Join(dir, "compose.yaml")
	out := c.ok(t, "apply", "-f", compose)
	if !strings.Contains(out, "context paths/linked: 3 pieces") {
		t.Errorf("the linked context was not shipped whole (Dockerfile, note.txt, index):\n%s", out)
	}
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "wait", "images", "paths/outside", "paths/linked", "--timeout", "5m")
	run := func(image, want string) {
		t.Helper()
		digest := sameDigestOnBoth(t, c, image)
		if got := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/"+image+"@"+digest); !strings.Contains(got, want) {
			t.Errorf("%s printed %q, want %q", image, got, want)
		}
	}
	run("paths/outside", "from-app")
	run("paths/linked", "linked-v1")

	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "real", "note.txt"), "linked-v2\n")
	if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "build paths/linked configured") {
		t.Fatalf("an edit behind the symlink did not change the spec:\n%s", out)
	}
	c.ok(t, "wait", "images", "paths/linked", "--timeout", "5m")
	if err := poll(waitLong, func() error {
		d := presentDigests(t, c, "paths/linked")
		if d["node1"] == "" || d["node1"] != d["node2"] {
			return errNotYet
		}
		got := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/paths/linked@"+d["node1"])
		if !strings.Contains(got, "linked-v2") {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Errorf("paths/linked was not rebuilt with the edit: %v", err)
	}
}
