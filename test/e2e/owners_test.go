package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

// TestRepositoryIsolation: another project cannot build into a project's
// repository until that project lets it in, and then it can, for real.
func TestRepositoryIsolation(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := files.Write(t, t.TempDir(), map[string]string{
		"shop/compose.yaml": "name: shop\nservices:\n  base:\n    build: .\n    x-machines: [node1]\n",
		"shop/Dockerfile":   "FROM busybox\nRUN echo shop > /who\n",
		"evil/compose.yaml": "name: evil\nservices:\n  web:\n    build: .\n    image: shop/base:evil\n    x-machines: [node1]\n",
		"evil/Dockerfile":   "FROM busybox\nRUN echo evil > /who\n",
	})
	c.ok(t, "apply", "-f", filepath.Join(dir, "shop/compose.yaml"))
	c.ok(t, "wait", "images", "shop/base", "--timeout", "5m")
	for _, extra := range [][]string{nil, {"--force"}} {
		r := c.uc(append([]string{"apply", "-f", filepath.Join(dir, "evil/compose.yaml")}, extra...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "build evil/web writes repository shop/base, which project shop owns") {
			t.Errorf("evil's apply %v: %v", extra, r)
		}
	}
	if builds := c.ok(t, "get", "builds"); strings.Contains(builds, "evil/web") {
		t.Fatalf("a refused project's build is in state:\n%s", builds)
	}

	files.Write(t, dir, map[string]string{"shop/compose.yaml": "name: shop\nx-uc-allow-writers: [evil]\nservices:\n  base:\n    build: .\n    x-machines: [node1]\n"})
	c.ok(t, "apply", "-f", filepath.Join(dir, "shop/compose.yaml"))
	c.ok(t, "apply", "-f", filepath.Join(dir, "evil/compose.yaml"))
	c.ok(t, "wait", "images", "evil/web", "--timeout", "5m")
}
