package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/state/statetest"
)

// TestTwoAgents runs each node on its own state agent, as in a Corrosion
// cluster: two embedded states replicate to each other with 700 ms of lag.
// An apply through the first agent, then `uc wait` through the second at
// once: the wait must wait for the spec to arrive, not fail.
func TestTwoAgents(t *testing.T) {
	env := requireInfra(t)
	a, b := statetest.StartPair(t, 700*time.Millisecond)
	c := &cluster{dir: t.TempDir(), apiURL: a.Addr, procs: map[string]*proc{}, nodeArgs: func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		args := []string{"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"]}
		if node == "node1" {
			return append(args, "--registry-listen", env["UC_REGISTRY"])
		}
		return append(args, "--corrosion-api", b.Addr) // the last --corrosion-api wins
	}}
	c.stopAtEnd(t)
	for _, n := range []string{"node1", "node2"} {
		if err := c.startNode(n, "agent="+n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.waitReady(2); err != nil {
		t.Fatal(err)
	}
	there := *c
	there.apiURL = b.Addr
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo agents > /a\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: agents\nservices:\n  web:\n    build: .\n")

	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	r := there.uc("wait", "images", "agents/web", "--timeout", "3m")
	if r.code != 0 {
		t.Fatalf("uc wait through the second agent: %v", r)
	}
	if !strings.Contains(r.stdout, "waiting for image agents/web to appear in state") {
		t.Errorf("uc wait did not say it waits for the spec to arrive:\n%s", r.stdout)
	}
	digest := sameDigestOnBoth(t, &there, "agents/web")
	if err := poll(10*time.Second, func() error {
		if d := presentDigests(t, c, "agents/web"); d["node1"] != digest || d["node2"] != digest {
			return fmt.Errorf("the first agent shows agents/web present as %v, the second %s on both", d, digest)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if r := there.uc("get", "images", "agents/nope"); r.code == 0 || !strings.Contains(r.stderr, `image "agents/nope" not found`) {
		t.Errorf("uc get images agents/nope: %v", r)
	}
}
