package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

// TestStaticBuildType builds a static site from a context with no
// Dockerfile: the builder image runs the command, the server image gets
// the output under its root. The generated Dockerfile shows in full in
// --dry-run and describe.
func TestStaticBuildType(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	files.Write(t, dir, map[string]string{"site/page.txt": "static page\n"})
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: static\nservices:\n  site:\n    build: ./site\n    x-uc-build-type: static\n    x-uc-static:\n"+
		"      builder: busybox\n      command: mkdir -p public && cp page.txt public/index.html\n      output: public\n"+
		"      server: busybox\n      root: /www\n    x-machines: [node1]\n")
	if out := c.ok(t, "apply", "-f", compose, "--dry-run"); !strings.Contains(out, "COPY --from=build /src/public/ /www/") {
		t.Errorf("--dry-run does not show the generated Dockerfile:\n%s", out)
	}
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "static/site", "--timeout", "5m")
	digest := presentDigests(t, c, "static/site")["node1"]
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/static/site@"+digest, "cat", "/www/index.html"); out != "static page\n" {
		t.Errorf("the server image holds %q", out)
	}
	if desc := c.ok(t, "describe", "build", "static/site"); !strings.Contains(desc, `static: busybox runs "mkdir -p public && cp page.txt public/index.html"`) ||
		!strings.Contains(desc, "    FROM busybox AS build") {
		t.Errorf("describe:\n%s", desc)
	}
}
