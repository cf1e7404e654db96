package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness/files"
)

// TestRebuildOnBase: a build with x-uc-rebuild-on-base follows a base
// image of another project; when that base's tag moves, the follower is
// rebuilt and pre-pulled without anyone re-applying it. A bystander on the
// same base that does not follow it is not rebuilt, and says its base moved.
func TestRebuildOnBase(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env, "--base-watch", "5s")
	dir := files.Write(t, t.TempDir(), map[string]string{
		"upstream/compose.yaml":  "name: upstream\nservices:\n  base:\n    build: .\n    x-machines: [node1]\n",
		"upstream/Dockerfile":    "FROM busybox\nRUN echo v1 > /v\n",
		"follower/compose.yaml":  "name: follower\nservices:\n  app:\n    build: .\n    x-uc-rebuild-on-base: 10s\n",
		"follower/Dockerfile":    fmt.Sprintf("FROM %s/upstream/base:latest\nRUN cat /v > /seen\nCMD [\"cat\", \"/seen\"]\n", c.stable),
		"bystander/compose.yaml": "name: bystander\nservices:\n  app:\n    build: .\n    x-machines: [node1]\n",
	})
	files.Write(t, dir, map[string]string{"bystander/Dockerfile": fmt.Sprintf("FROM %s/upstream/base:latest\n", c.stable)})
	c.ok(t, "apply", "-f", filepath.Join(dir, "upstream/compose.yaml"))
	c.ok(t, "wait", "images", "upstream/base", "--timeout", "5m")
	c.ok(t, "apply", "-f", filepath.Join(dir, "follower/compose.yaml"))
	c.ok(t, "apply", "-f", filepath.Join(dir, "bystander/compose.yaml"))
	c.ok(t, "wait", "images", "follower/app", "bystander/app", "--timeout", "5m")
	bystander := presentDigests(t, c, "bystander/app")["node1"]
	first := sameDigestOnBoth(t, c, "follower/app")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/follower/app@"+first); out != "v1\n" {
		t.Fatalf("follower shows %q, want v1", out)
	}

	files.Write(t, dir, map[string]string{"upstream/Dockerfile": "FROM busybox\nRUN echo v2 > /v\n"})
	c.ok(t, "apply", "-f", filepath.Join(dir, "upstream/compose.yaml"))
	start := time.Now()
	if err := poll(2*time.Minute, func() error {
		if d := presentDigests(t, c, "follower/app"); d["node1"] == first || d["node1"] == "" || d["node1"] != d["node2"] {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Fatalf("follower/app was not rebuilt after its base moved: %v\n%s", presentDigests(t, c, "follower/app"), c.ok(t, "describe", "build", "follower/app"))
	}
	t.Logf("follower rebuilt and present on both nodes %s after its base moved", time.Since(start).Round(time.Second))
	second := sameDigestOnBoth(t, c, "follower/app")
	if out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", c.stable+"/follower/app@"+second); out != "v2\n" {
		t.Errorf("rebuilt follower shows %q, want v2", out)
	}
	if desc := c.ok(t, "describe", "build", "follower/app"); !strings.Contains(desc, "moved to a new digest") {
		t.Errorf("describe does not say why it rebuilt:\n%s", desc)
	}
	if err := poll(time.Minute, func() error {
		if !strings.Contains(c.ok(t, "describe", "build", "bystander/app"), "base "+c.stable+"/upstream/base:latest moved (now") {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Errorf("describe build bystander/app does not say that its base moved:\n%s", c.ok(t, "describe", "build", "bystander/app"))
	}
	if d := presentDigests(t, c, "bystander/app")["node1"]; d != bystander {
		t.Errorf("bystander/app, which does not follow its base, changed from %s to %s", bystander, d)
	}
}
