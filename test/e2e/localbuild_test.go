package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/test/harness/files"
)

// TestBuildOffCluster: uc build builds a service with the local engine's
// BuildKit (DOCKER_HOST), pushes it into the internal registry and records
// it as the build of its spec; the cluster pre-pulls it and never builds
// it. A file with x-uc-build: local makes the cluster wait for uc build.
// An edit builds again, and reuses nothing stale.
func TestBuildOffCluster(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	t.Setenv("DOCKER_HOST", env["UC_DOCKER_HOST_1"]) // the "laptop's" engine
	dir := files.Write(t, t.TempDir(), map[string]string{
		"compose.yaml": "name: laptop\nservices:\n  web:\n    build: .\n    x-uc-build: local\n    x-machines: [node1, node2]\n",
		"Dockerfile":   "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n",
		"msg":          "from a laptop v1\n",
	})
	compose := filepath.Join(dir, "compose.yaml")

	// Applied alone, the cluster waits for uc build.
	c.ok(t, "apply", "-f", compose)
	if err := poll(30*time.Second, func() error {
		if desc := c.ok(t, "describe", "build", "laptop/web"); !strings.Contains(desc, "waiting for uc build") {
			return os.ErrNotExist
		}
		return nil
	}); err != nil {
		t.Errorf("the cluster does not say it waits for uc build:\n%s", c.ok(t, "describe", "build", "laptop/web"))
	}

	out := c.ok(t, "build", "-f", compose)
	if !strings.Contains(out, "build laptop/web succeeded on local:") {
		t.Fatalf("uc build printed:\n%s", out)
	}
	c.ok(t, "wait", "images", "laptop/web", "--timeout", "3m")
	first := sameDigestOnBoth(t, c, "laptop/web")
	if got := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", c.stable+"/laptop/web@"+first); got != "from a laptop v1\n" {
		t.Errorf("node2 runs %q", got)
	}

	files.Write(t, dir, map[string]string{"msg": "from a laptop v2\n"})
	c.ok(t, "build", "web", "-f", compose)
	c.ok(t, "wait", "images", "laptop/web", "--timeout", "3m")
	second := sameDigestOnBoth(t, c, "laptop/web")
	if second == first {
		t.Errorf("an edit built off the cluster kept digest %s", first)
	}
	if n := c.builds("laptop/web"); n != 0 {
		t.Errorf("the cluster built laptop/web %d times; uc build did", n)
	}
	// uc image push sends an engine's image into the internal registry;
	// pushed again, only the manifest travels. A service then names it.
	docker(t, env["UC_DOCKER_HOST_1"], "pull", "-q", env["UC_BASE_IMAGE"])
	docker(t, env["UC_DOCKER_HOST_1"], "tag", env["UC_BASE_IMAGE"], "laptop/tool:v1")
	if out := c.ok(t, "image", "push", "laptop/tool:v1"); !strings.Contains(out, "pushed laptop/tool:v1 → "+env["UC_REGISTRY"]+"/laptop/tool:v1") {
		t.Errorf("uc image push: %s", out)
	}
	if out := c.ok(t, "image", "push", "laptop/tool:v1"); !regexp.MustCompile(` [0-9.]+k?B sent`).MatchString(out) || strings.Contains(out, "MiB sent") {
		t.Errorf("pushed again, more than the manifest travelled: %s", out)
	}
	tool := filepath.Join(dir, "tool.yaml")
	writeFile(t, tool, "name: tool\nservices:\n  tool:\n    image: "+c.stable+"/laptop/tool:v1\n    x-machines: [node2]\n")
	c.ok(t, "apply", "-f", tool)
	c.ok(t, "wait", "images", "tool/tool", "--timeout", "2m")

	// DOCKER_CONTEXT names the engine as docker finds it, and --builder a
	// buildkitd instead of an engine.
	config := t.TempDir()
	if out, err := runTool(t, []string{"DOCKER_CONFIG=" + config}, "docker", "context", "create", "laptop", "--docker", "host="+env["UC_DOCKER_HOST_2"]); err != nil {
		t.Fatalf("docker context create: %v\n%s", err, out)
	}
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONFIG", config)
	t.Setenv("DOCKER_CONTEXT", "laptop")
	files.Write(t, dir, map[string]string{"msg": "from a laptop v3\n"})
	c.ok(t, "build", "-f", compose)
	third := waitNewDigest(t, c, "laptop/web", second, 2*time.Minute)
	if got := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/laptop/web@"+third); got != "from a laptop v3\n" {
		t.Errorf("built through DOCKER_CONTEXT, node1 runs %q", got)
	}
	files.Write(t, dir, map[string]string{"msg": "from a laptop v4\n"})
	if out := c.ok(t, "build", "-f", compose, "--builder", env["UC_BUILDKIT_ADDR"]); !strings.Contains(out, "succeeded") {
		t.Errorf("uc build --builder: %s", out)
	}
	fourth := waitNewDigest(t, c, "laptop/web", third, 2*time.Minute)
	if got := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/laptop/web@"+fourth); got != "from a laptop v4\n" {
		t.Errorf("built with --builder, node1 runs %q", got)
	}
	if n := c.builds("laptop/web"); n != 0 {
		t.Errorf("the cluster built laptop/web %d times", n)
	}

	if r := c.uc("build", "nope", "-f", compose); r.code == 0 || !strings.Contains(r.stderr, `no service "nope" with a build`) {
		t.Errorf("an unknown service: %v", r)
	}
}
