package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPrune deletes a project whose two images node2 pre-pulled; node2
// prunes after its grace period, but keeps the one a container uses, and
// reports both.
func TestPrune(t *testing.T) {
	env := requireInfra(t)
	c := twoNodeCluster(t, env, "--prune-after", "2s")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nARG W\nRUN echo $W > /w\n")
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: prune\nservices:\n  a:\n    build: {context: ., args: {W: a}}\n  b:\n    build: {context: ., args: {W: b}}\n")
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "prune/a", "prune/b", "--timeout", "5m")
	host := env["UC_DOCKER_HOST_2"]
	refA := c.stable + "/prune/a@" + sameDigestOnBoth(t, c, "prune/a")
	refB := c.stable + "/prune/b@" + sameDigestOnBoth(t, c, "prune/b")
	container := strings.TrimSpace(docker(t, host, "create", refB))
	t.Cleanup(func() {
		_, _ = runTool(t, nil, "docker", "-H", host, "rm", "-f", container)
		_, _ = runTool(t, nil, "docker", "-H", host, "rmi", refB)
	})

	c.ok(t, "delete", "-f", compose)
	var report struct {
		Removed []string `json:"removed"`
		InUse   []string `json:"in_use"`
	}
	if err := poll(time.Minute, func() error {
		var nodes []struct {
			Name   string
			Detail struct {
				LastPrune json.RawMessage `json:"last_prune"`
			}
		}
		if err := json.Unmarshal([]byte(c.ok(t, "get", "nodes", "node2", "-o", "json")), &nodes); err != nil || len(nodes) != 1 {
			return fmt.Errorf("get nodes: %v", err)
		}
		if len(nodes[0].Detail.LastPrune) == 0 {
			return fmt.Errorf("node2 has not pruned yet")
		}
		return json.Unmarshal(nodes[0].Detail.LastPrune, &report)
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(report.Removed, refA) || !slices.Contains(report.InUse, refB) {
		t.Errorf("prune report removed %v, kept in use %v; want %s removed and %s kept", report.Removed, report.InUse, refA, refB)
	}
	if _, err := runTool(t, nil, "docker", "-H", host, "image", "inspect", refA); err == nil {
		t.Errorf("%s is still on node2's engine", refA)
	}
	docker(t, host, "image", "inspect", refB) // fails the test if the in-use image is gone
	// node1 does not prune: both images stay there.
	docker(t, env["UC_DOCKER_HOST_1"], "image", "inspect", refA)
	_, _ = runTool(t, nil, "docker", "-H", env["UC_DOCKER_HOST_1"], "rmi", refA, refB)
}
