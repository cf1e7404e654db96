package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildKeyReuse deletes and re-creates a project: the new spec has the
// same build key, so the stored image is reused without a solve. A copy of
// the same sources with other mtimes, under another project, builds to the
// same digest (SOURCE_DATE_EPOCH and rewritten timestamps).
func TestBuildKeyReuse(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	proj := copyDir(t, filepath.Join(repoRoot, "examples", "hello"))
	compose := filepath.Join(proj, "compose.yaml")
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "hello/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "hello/web")
	solves := c.builds("hello/web")

	if got := recreate(t, c, compose, "hello/web"); got != first {
		t.Errorf("re-created spec gave digest %s, want the stored %s", got, first)
	}
	if n := c.builds("hello/web"); n != solves {
		t.Errorf("re-created spec started %d solves, want none (reuse by build key)", n-solves)
	}
	if desc := c.ok(t, "describe", "build", "hello/web"); !strings.Contains(desc, "reused the image stored for build key") {
		t.Errorf("describe does not say the image was reused:\n%s", desc)
	}

	t.Run("same inputs, other mtimes, same digest", func(t *testing.T) {
		other := copyDir(t, filepath.Join(repoRoot, "examples", "hello"))
		old := time.Now().Add(-72 * time.Hour)
		for _, f := range []string{"Dockerfile", "message.txt"} {
			if err := os.Chtimes(filepath.Join(other, f), old, old); err != nil {
				t.Fatal(err)
			}
		}
		c.ok(t, "apply", "-f", filepath.Join(other, "compose.yaml"), "--project-name", "hello2")
		c.ok(t, "wait", "images", "hello2/web", "--timeout", "5m")
		if got := sameDigestOnBoth(t, c, "hello2/web"); got != first {
			t.Errorf("same sources built to %s, want %s", got, first)
		}
	})
}

// TestBuildCancelAndQueue runs slow builds on nodes that build one at a
// time: builds past the limit show as queued, and a spec changed while its
// build runs cancels that build and builds the new generation.
func TestBuildCancelAndQueue(t *testing.T) {
	env := requireInfra(t)
	c := startClusterWith(t, false, func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		args := []string{"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"], "--max-builds", "1"}
		if node == "node1" {
			args = append(args, "--registry-listen", env["UC_REGISTRY"])
		}
		return args
	})
	dir := t.TempDir()
	var compose strings.Builder
	compose.WriteString("name: slow\nservices:\n")
	for i := range 3 {
		svc := fmt.Sprintf("s%d", i)
		writeFile(t, filepath.Join(dir, svc+".txt"), "v1\n")
		fmt.Fprintf(&compose, "  %s:\n    build:\n      context: .\n      args: {F: %s}\n      dockerfile_inline: |\n        FROM busybox\n        ARG F\n        COPY $${F}.txt /v.txt\n        RUN sleep 6\n    x-machines: [node1]\n", svc, svc)
	}
	writeFile(t, filepath.Join(dir, "compose.yaml"), compose.String())
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))

	// Three builds over two one-slot nodes: at least one waits.
	if err := poll(waitLong, func() error {
		if strings.Contains(c.ok(t, "get", "builds"), "queued") {
			return nil
		}
		return errNotYet
	}); err != nil {
		t.Fatalf("no build showed as queued:\n%s", c.ok(t, "get", "builds"))
	}
	// Change s0 while its first build runs.
	if err := poll(waitLong, func() error {
		if strings.Contains(tableLine(c.ok(t, "get", "builds"), "slow/s0"), "building") {
			return nil
		}
		return errNotYet
	}); err != nil {
		t.Fatalf("slow/s0 never started building")
	}
	writeFile(t, filepath.Join(dir, "s0.txt"), "v2\n")
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "slow/s0", "slow/s1", "slow/s2", "--timeout", "5m")
	logs := c.procs["node1"].logText() + c.procs["node2"].logText()
	if !strings.Contains(logs, `msg="Build cancelled: its spec changed." `) {
		t.Errorf("no build was cancelled when its spec changed")
	}
	digest := presentDigests(t, c, "slow/s0")["node1"]
	out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/slow/s0@"+digest, "cat", "/v.txt")
	if strings.TrimSpace(out) != "v2" {
		t.Errorf("slow/s0 holds %q, want the changed v2", out)
	}
}

// tableLine returns the line of a table that starts with name.
func tableLine(table, name string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// TestBuildKeyFollowsBaseImage moves the tag a build's FROM names to a new
// image: the build key changes with the base's digest, so a re-created
// spec builds again instead of reusing the image made from the old base.
func TestBuildKeyFollowsBaseImage(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	baseDir, appDir := t.TempDir(), t.TempDir()
	baseCompose := filepath.Join(baseDir, "compose.yaml")
	writeFile(t, baseCompose, "name: moving\nservices:\n  base:\n    build: .\n    x-machines: [node1]\n")
	writeFile(t, filepath.Join(baseDir, "Dockerfile"), "FROM busybox\nRUN echo 1 > /v\n")
	c.ok(t, "apply", "-f", baseCompose)
	c.ok(t, "wait", "images", "moving/base", "--timeout", "5m")

	appCompose := filepath.Join(appDir, "compose.yaml")
	writeFile(t, appCompose, "name: onbase\nservices:\n  app:\n    build: .\n")
	writeFile(t, filepath.Join(appDir, "Dockerfile"), "FROM "+c.stable+"/moving/base:latest\nRUN cat /v > /seen\n")
	c.ok(t, "apply", "-f", appCompose)
	c.ok(t, "wait", "images", "onbase/app", "--timeout", "5m")
	first, solves := sameDigestOnBoth(t, c, "onbase/app"), c.builds("onbase/app")
	if desc := c.ok(t, "describe", "build", "onbase/app"); !strings.Contains(desc, "/moving/base:latest=sha256:") {
		t.Errorf("describe does not show the base image's digest:\n%s", desc)
	}
	if got := recreate(t, c, appCompose, "onbase/app"); got != first || c.builds("onbase/app") != solves {
		t.Fatalf("same base: digest %s (want %s), %d new solves (want 0)", got, first, c.builds("onbase/app")-solves)
	}

	writeFile(t, filepath.Join(baseDir, "Dockerfile"), "FROM busybox\nRUN echo 2 > /v\n")
	c.ok(t, "apply", "-f", baseCompose)
	c.ok(t, "wait", "images", "moving/base", "--timeout", "5m")
	if got := recreate(t, c, appCompose, "onbase/app"); got == first || c.builds("onbase/app") != solves+1 {
		t.Errorf("moved base: digest %s (old %s), %d new solves, want a new image from one solve", got, first, c.builds("onbase/app")-solves)
	}
}

// recreate deletes a project's specs and applies them again, as new
// incarnations, and returns the digest both nodes then hold for image.
func recreate(t *testing.T, c *cluster, compose, image string) string {
	t.Helper()
	c.ok(t, "delete", "-f", compose)
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", image, "--timeout", "5m")
	return sameDigestOnBoth(t, c, image)
}
