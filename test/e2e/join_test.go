package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const joinCompose = `name: join
services:
  web:
    build: .
  zonec:
    image: %s
    deploy:
      placement:
        constraints: [node.labels.zone == c]
`

// TestNodeJoin starts a third node after the images are in place: it gets
// every image placed on it (all nodes, and by its label) without anyone
// applying again.
func TestNodeJoin(t *testing.T) {
	env := requireInfra(t)
	if env["UC_DOCKER_HOST_3"] == "" {
		t.Fatal("hack/up.sh started no third engine (UC_NODES < 3)")
	}
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo joined > /j\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), fmt.Sprintf(joinCompose, env["UC_BASE_IMAGE"]))
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "join/web", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, "join/web")
	t.Cleanup(func() {
		_, _ = runTool(t, nil, "docker", "-H", env["UC_DOCKER_HOST_3"], "rmi", c.stable+"/join/web@"+digest)
	})

	if err := c.startNode("node3", "zone=c"); err != nil {
		t.Fatal(err)
	}
	if err := poll(2*time.Minute, func() error {
		if d := presentDigests(t, c, "join/web")["node3"]; d != digest {
			return fmt.Errorf("join/web on node3: %q, want %s", d, digest)
		}
		if d := presentDigests(t, c, "join/zonec")["node3"]; d == "" {
			return fmt.Errorf("join/zonec not present on node3")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if d := presentDigests(t, c, "join/zonec"); d["node1"] != "" || d["node2"] != "" {
		t.Errorf("join/zonec present on %v, want node3 only", d)
	}
	docker(t, env["UC_DOCKER_HOST_3"], "image", "inspect", c.stable+"/join/web@"+digest)

	t.Run("a node that dies leaves stale rows and is not waited for", func(t *testing.T) {
		p := c.procs["node3"]
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-p.done
		if err := poll(time.Minute, func() error {
			desc := c.ok(t, "describe", "image", "join/web")
			if !regexp.MustCompile(`node3\s+present \(stale: node silent\)\s+` + digest).MatchString(desc) {
				return fmt.Errorf("describe image join/web shows no stale row of node3:\n%s", desc)
			}
			if !strings.Contains(desc, "2/2 needed nodes") {
				return fmt.Errorf("describe image join/web still needs node3:\n%s", desc)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		c.ok(t, "wait", "images", "join/web", "--timeout", "30s")
		if d := presentDigests(t, c, "join/web")["node3"]; d != digest {
			t.Errorf("node3's row was changed or deleted by another node: %q", d)
		}
	})

	t.Run("a dead node the spec names is waited for, unless --skip-unready", func(t *testing.T) {
		named := filepath.Join(t.TempDir(), "compose.yaml")
		writeFile(t, named, fmt.Sprintf("name: named\nservices:\n  all3:\n    image: %s\n    x-machines: [node1, node2, node3]\n"+
			"  only3:\n    image: %s\n    x-machines: [node3]\n", env["UC_BASE_IMAGE"], env["UC_BASE_IMAGE"]))
		c.ok(t, "apply", "-f", named)
		for _, image := range []string{"named/all3", "named/only3"} {
			r := c.uc("wait", "images", image, "--timeout", "20s")
			if r.code != 1 || !strings.Contains(r.stdout, image+"  node3 is NotReady since") ||
				!strings.Contains(r.stderr, image+" on node3: no status yet (node3 is NotReady since") {
				t.Errorf("wait %s with node3 dead: %v\nwant a timeout naming node3 as NotReady", image, r)
			}
		}
		r := c.uc("wait", "images", "named/all3", "--timeout", "1m", "--skip-unready")
		if r.code != 0 || !strings.Contains(r.stdout, "present on 2/2 nodes (node1, node2)") ||
			!strings.Contains(r.stdout, "(last heartbeat") || !strings.Contains(r.stdout, "): not waited for") {
			t.Errorf("wait --skip-unready: %v\nwant present on 2/2 nodes, saying node3 is not waited for", r)
		}
	})
}
