package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPinAndRunWithCompose pins a project (one build, one external image)
// to the digests the nodes pulled, and runs the pinned file with Debian's
// docker-compose on node2's engine: it runs what was pre-pulled, with no
// build and no pull.
func TestPinAndRunWithCompose(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo pinned-web > /msg\nCMD [\"cat\", \"/msg\"]\n")
	compose := filepath.Join(dir, "compose.yaml")
	// No name: Debian's docker-compose (1.29) predates it; -p names the project.
	writeFile(t, compose, "services:\n  web:\n    build: .\n    x-machines: [node2]  # where it runs\n"+
		"  tool:\n    image: "+env["UC_BASE_IMAGE"]+"\n    command: [\"echo\", \"tool-ran\"]\n    x-machines: [node2]\n")
	c.ok(t, "apply", "-p", "pinme", "-f", compose)
	c.ok(t, "wait", "images", "pinme/web", "pinme/tool", "--timeout", "5m")
	web, tool := presentDigests(t, c, "pinme/web")["node2"], presentDigests(t, c, "pinme/tool")["node2"]

	pinned := filepath.Join(dir, "pinned.yaml")
	c.ok(t, "images", "pin", "-p", "pinme", "-f", compose, "-o", pinned)
	body, err := os.ReadFile(pinned)
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	if strings.Contains(text, "build:") || !strings.Contains(text, "/pinme/web@"+web) || !strings.Contains(text, "@"+tool) || !strings.Contains(text, "# where it runs") {
		t.Fatalf("pinned file:\n%s", text)
	}
	for service, want := range map[string]string{"web": "pinned-web", "tool": "tool-ran"} {
		cmd := exec.Command("docker-compose", "-p", "pinme", "-f", pinned, "run", "--rm", "-T", service)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+env["UC_DOCKER_HOST_2"])
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) || strings.Contains(string(out), "Pulling") {
			t.Errorf("docker-compose run %s: %v\n%s", service, err, out)
		}
	}

	// An image not present anywhere yet is an error that names it.
	writeFile(t, compose, "name: pinme\nservices:\n  other:\n    image: "+env["UC_BASE_IMAGE"]+"\n")
	if r := c.uc("images", "pin", "-f", compose); r.code == 0 || !strings.Contains(r.stderr, "services.other: image pinme/other is not in the state") {
		t.Errorf("pinning an unapplied service: %v", r)
	}
}
