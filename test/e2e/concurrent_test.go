package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConcurrentBuildsStayApart builds several services at once on one
// builder, each from its own context with different content: every image
// must hold its own service's file, under its own digest.
func TestConcurrentBuildsStayApart(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	var compose strings.Builder
	compose.WriteString("name: apart\nservices:\n")
	const n = 8
	for i := range n {
		svc := fmt.Sprintf("s%d", i)
		if err := os.MkdirAll(filepath.Join(dir, svc), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, svc, "Dockerfile"), "FROM busybox\nCOPY msg.txt /msg.txt\n")
		writeFile(t, filepath.Join(dir, svc, "msg.txt"), svc+"\n")
		fmt.Fprintf(&compose, "  %s:\n    build: ./%s\n    x-uc-builder: node2\n    x-machines: [node1]\n", svc, svc)
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), compose.String())
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "--timeout", "5m")
	seen := map[string]string{}
	for i := range n {
		svc := fmt.Sprintf("s%d", i)
		digest := presentDigests(t, c, "apart/"+svc)["node1"]
		if other, dup := seen[digest]; dup {
			t.Errorf("apart/%s and apart/%s share digest %s", svc, other, digest)
		}
		seen[digest] = svc
		out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/apart/"+svc+"@"+digest, "cat", "/msg.txt")
		if strings.TrimSpace(out) != svc {
			t.Errorf("apart/%s holds %q", svc, strings.TrimSpace(out))
		}
	}
}
