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
// must hold its own service's file, under its own digest, also after an
// edit that keeps every file's size.
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
	holdOwnFiles(t, c, env, n, "s")

	// The same files, edited without changing their size: each rebuild
	// must see the new bytes.
	for i := range n {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("s%d", i), "msg.txt"), fmt.Sprintf("t%d\n", i))
	}
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "--timeout", "5m")
	holdOwnFiles(t, c, env, n, "t")
}

// holdOwnFiles checks that apart/sI holds prefix+I in /msg.txt under a
// digest no other service has.
func holdOwnFiles(t *testing.T, c *cluster, env infra, n int, prefix string) {
	t.Helper()
	seen := map[string]string{}
	for i := range n {
		svc := fmt.Sprintf("s%d", i)
		digest := presentDigests(t, c, "apart/"+svc)["node1"]
		if other, dup := seen[digest]; dup {
			t.Errorf("apart/%s and apart/%s share digest %s", svc, other, digest)
		}
		seen[digest] = svc
		out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/apart/"+svc+"@"+digest, "cat", "/msg.txt")
		if want := fmt.Sprintf("%s%d", prefix, i); strings.TrimSpace(out) != want {
			t.Errorf("apart/%s holds %q, want %q", svc, strings.TrimSpace(out), want)
		}
	}
}
