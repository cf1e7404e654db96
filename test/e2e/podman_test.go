package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPodmanNode runs node2 on Podman's Docker-compatible API (Debian's
// podman 4.3, podman system service): a built image and an external one
// are pre-pulled there with presence rows like any engine's, and an image
// no spec places there any more is pruned.
func TestPodmanNode(t *testing.T) {
	env := requireInfra(t)
	podman := env["UC_PODMAN_HOST"]
	c := startClusterAt(t, false, env["UC_PODMAN_REGISTRY_ADDRESS"], func(node string) []string {
		switch node {
		case "node1":
			return []string{"--docker-host", env["UC_DOCKER_HOST_1"], "--buildkit-addr", env["UC_BUILDKIT_ADDR"], "--registry-listen", env["UC_REGISTRY"]}
		case "node2":
			return []string{"--docker-host", podman, "--prune-after", "2s"}
		}
		return nil
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo podman > /p\n")
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, "name: pod\nservices:\n  web:\n    build: .\n    x-machines: [node2]\n  tool:\n    image: "+env["UC_BASE_IMAGE"]+"\n    x-machines: [node2]\n")
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "pod/web", "pod/tool", "--timeout", "5m")
	web := presentDigests(t, c, "pod/web")["node2"]
	if web == "" || presentDigests(t, c, "pod/tool")["node2"] == "" {
		t.Fatalf("not present on the Podman node: web %q", web)
	}
	ref := c.stable + "/pod/web@" + web
	docker(t, podman, "image", "inspect", ref) // Podman holds it, by digest

	c.ok(t, "delete", "-f", compose)
	if err := poll(time.Minute, func() error {
		var nodes []struct {
			Detail struct {
				LastPrune struct {
					Removed []string `json:"removed"`
				} `json:"last_prune"`
			}
		}
		if err := json.Unmarshal([]byte(c.ok(t, "get", "nodes", "node2", "-o", "json")), &nodes); err != nil || len(nodes) != 1 {
			return fmt.Errorf("get nodes: %v", err)
		}
		if !slices.Contains(nodes[0].Detail.LastPrune.Removed, ref) {
			return fmt.Errorf("node2 pruned %v", nodes[0].Detail.LastPrune.Removed)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := runTool(t, nil, "docker", "-H", podman, "image", "inspect", ref); err == nil {
		t.Errorf("%s is still on Podman", ref)
	}
}
