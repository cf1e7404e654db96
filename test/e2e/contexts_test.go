package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const contextsCompose = `name: ctx
services:
  base:
    build: ./base
    x-machines: [node1]
  web:
    build:
      context: ./web
      additional_contexts:
        base: service:base
        assets: ./assets
        tools: docker-image://busybox:latest
    x-machines: [node1, node2]
`

// TestAdditionalContexts feeds a path, an image and another service's
// build into a build, and checks that a new parent digest rebuilds the
// dependent without anyone re-applying it.
func TestAdditionalContexts(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"assets", "web"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), contextsCompose)
	writeFile(t, filepath.Join(dir, "base", "Dockerfile"), "FROM busybox\nRUN echo base-v1 > /base.txt\n")
	writeFile(t, filepath.Join(dir, "assets", "a.txt"), "asset-one\n")
	writeFile(t, filepath.Join(dir, "web", "Dockerfile"), `FROM base
COPY --from=assets a.txt /a.txt
COPY --from=tools /bin/busybox /tools-busybox
CMD ["sh", "-c", "cat /base.txt /a.txt; test -x /tools-busybox && echo tools-ok"]
`)
	compose := filepath.Join(dir, "compose.yaml")
	if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "context ctx/web (assets): ") {
		t.Errorf("the assets context was not shipped:\n%s", out)
	}
	c.ok(t, "wait", "images", "ctx/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "ctx/web")
	out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/ctx/web@"+first)
	for _, want := range []string{"base-v1", "asset-one", "tools-ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	writeFile(t, filepath.Join(dir, "base", "Dockerfile"), "FROM busybox\nRUN echo base-v2 > /base.txt\n")
	out = c.ok(t, "apply", "-f", compose)
	if !strings.Contains(out, "build ctx/base configured") || !strings.Contains(out, "build ctx/web unchanged") {
		t.Fatalf("apply after editing only base printed:\n%s", out)
	}
	if err := poll(waitLong, func() error {
		if d := presentDigests(t, c, "ctx/web"); d["node1"] == first || d["node1"] == "" || d["node1"] != d["node2"] {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Fatalf("ctx/web was not rebuilt from the new base: %v", presentDigests(t, c, "ctx/web"))
	}
	second := sameDigestOnBoth(t, c, "ctx/web")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/ctx/web@"+second); !strings.Contains(out, "base-v2") {
		t.Errorf("rebuilt web still shows the old base:\n%s", out)
	}
	if n := c.builds("ctx/web"); n != 2 {
		t.Errorf("built ctx/web %d times, want 2", n)
	}
}
