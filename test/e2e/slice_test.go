package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sliceCluster starts two nodes on real engines: both build with the one
// buildkitd, node1 serves the internal registry, node2 alone grants the
// network.host entitlement.
func sliceCluster(t *testing.T, env infra, extra ...string) *cluster {
	t.Helper()
	return startClusterWith(t, false, func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		args := []string{"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"]}
		if node == "node3" { // joins later, as a plain node with an engine
			return args[:2]
		}
		if node == "node1" {
			args = append(args, "--registry-listen", env["UC_REGISTRY"])
		} else {
			args = append(args, "--allow-entitlement", "network.host")
		}
		return append(args, extra...)
	})
}

// twoNodeCluster starts node1, serving the internal registry, and node2,
// both on real engines and the one buildkitd; node2 also gets node2Args.
func twoNodeCluster(t *testing.T, env infra, node2Args ...string) *cluster {
	t.Helper()
	return startClusterWith(t, false, func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		args := []string{"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"]}
		if node == "node1" {
			return append(args, "--registry-listen", env["UC_REGISTRY"])
		}
		return append(args, node2Args...)
	})
}

// copyDir copies a project so that tests can edit its sources.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), string(b))
	}
	return dst
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// presentDigests maps node → digest of an image's present rows.
func presentDigests(t *testing.T, c *cluster, image string) map[string]string {
	t.Helper()
	var imgs []struct {
		Presence []struct{ Node, State, Digest string } `json:"presence"`
	}
	if err := json.Unmarshal([]byte(c.ok(t, "get", "images", image, "-o", "json")), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("uc get images %s: %v (%d images)", image, err, len(imgs))
	}
	out := map[string]string{}
	for _, p := range imgs[0].Presence {
		if p.State == "present" {
			out[p.Node] = p.Digest
		}
	}
	return out
}

// sameDigestOnBoth returns the digest both nodes hold, failing otherwise.
func sameDigestOnBoth(t *testing.T, c *cluster, image string) string {
	t.Helper()
	d := presentDigests(t, c, image)
	if len(d) != 2 || d["node1"] == "" || d["node1"] != d["node2"] {
		t.Fatalf("%s present on %v, want one digest on node1 and node2", image, d)
	}
	return d["node1"]
}

// builds counts how many times the nodes started building name.
func (c *cluster) builds(name string) int {
	n := 0
	for _, node := range []string{"node1", "node2"} {
		for _, line := range strings.Split(c.procs[node].logText(), "\n") {
			if strings.Contains(line, "msg=Building. ") && strings.Contains(line, " build="+name+" ") {
				n++
			}
		}
	}
	return n
}

// docker runs the docker CLI and returns its stdout: what `docker run`
// prints about pulling an image it lacks goes to stderr, which is shown
// only on failure.
func docker(t *testing.T, host string, args ...string) string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.Command("docker", append([]string{"-H", host}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestSlice is the first end-to-end slice: apply → build → store → pre-pull
// on real engines and a real BuildKit.
func TestSlice(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	proj := copyDir(t, filepath.Join(repoRoot, "examples", "hello"))
	compose := filepath.Join(proj, "compose.yaml")

	if out := c.ok(t, "apply", "--wait", "-f", compose); !strings.Contains(out, "hello/web  succeeded") {
		t.Errorf("uc apply --wait printed %q, want a succeeded line for hello/web", out)
	}
	c.ok(t, "wait", "images", "hello/web", "--timeout", "5m")
	first := sameDigestOnBoth(t, c, "hello/web")
	out := docker(t, env["UC_DOCKER_HOST_2"], "run", "--rm", env["UC_REGISTRY"]+"/hello/web@"+first)
	for _, want := range []string{"hello from uc", "built and distributed by uc"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output %q lacks %q", out, want)
		}
	}
	if n := c.builds("hello/web"); n != 1 {
		t.Fatalf("started %d builds of hello/web, want 1", n)
	}
	if code := registryGet(t, env["UC_REGISTRY"], "/v2/uc-cache/hello/web/manifests/buildcache", nil); code != http.StatusOK {
		t.Errorf("the default cluster cache for hello/web: GET answered %d, want 200", code)
	}
	logs := c.ok(t, "logs", "build", "hello/web", "-f")
	for _, want := range []string{"COPY message.txt /message.txt", "#> build finished: succeeded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("uc logs build hello/web lacks %q:\n%s", want, logs)
		}
	}

	t.Run("unchanged re-apply builds nothing", func(t *testing.T) {
		if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "nothing changed") {
			t.Fatalf("re-apply printed %q, want nothing changed", out)
		}
		time.Sleep(2 * time.Second) // give a wrongly triggered build time to start
		if n := c.builds("hello/web"); n != 1 {
			t.Fatalf("started %d builds of hello/web after an unchanged re-apply, want still 1", n)
		}
	})

	t.Run("edited source rebuilds once", func(t *testing.T) {
		writeFile(t, filepath.Join(proj, "message.txt"), "Edited once.\n")
		if out := c.ok(t, "apply", "-f", compose); !strings.Contains(out, "build hello/web configured") {
			t.Fatalf("apply after an edit printed %q, want the build configured", out)
		}
		c.ok(t, "wait", "images", "hello/web", "--timeout", "5m")
		second := sameDigestOnBoth(t, c, "hello/web")
		if second == first {
			t.Fatalf("digest stayed %s after editing a source file", first)
		}
		if n := c.builds("hello/web"); n != 2 {
			t.Fatalf("started %d builds of hello/web in all, want 2", n)
		}
		out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/hello/web@"+second)
		if !strings.Contains(out, "Edited once.") {
			t.Errorf("container output %q lacks the edited message", out)
		}
	})
}

// TestBuildError checks that a Dockerfile's own error reaches
// `uc describe build` and is not retried.
func TestBuildError(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo about to fail && exit 3\n")
	writeFile(t, filepath.Join(dir, "compose.yaml"), "name: bad\nservices:\n  web:\n    build: .\n    x-machines: [node1]\n")
	r := c.uc("apply", "--wait", "--timeout", "3m", "-f", filepath.Join(dir, "compose.yaml"))
	if r.code == 0 || !strings.Contains(r.stderr, "build failed: bad/web") || !strings.Contains(r.stdout, "bad/web  ") {
		t.Fatalf("uc apply --wait on a failing build: %v; want a progress line and a non-zero exit naming the build", r)
	}

	r = c.uc("wait", "images", "bad/web", "--timeout", "3m")
	if r.code == 0 || !strings.Contains(r.stderr, "build failed") {
		t.Fatalf("uc wait on a failing build: %v; want a non-zero exit naming the build failure", r)
	}
	desc := c.ok(t, "describe", "build", "bad/web")
	for _, want := range []string{"failed", "exit code: 3", "about to fail"} {
		if !strings.Contains(desc, want) {
			t.Errorf("uc describe build bad/web lacks %q:\n%s", want, desc)
		}
	}
	logs := c.ok(t, "logs", "build", "bad/web")
	for _, want := range []string{"about to fail", "#> build finished: failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("uc logs build bad/web lacks %q:\n%s", want, logs)
		}
	}
	time.Sleep(2 * time.Second) // a retry would start within the backoff
	if n := c.builds("bad/web"); n != 1 {
		t.Fatalf("started %d builds of bad/web, want 1 (a Dockerfile error is not retried)", n)
	}
}
