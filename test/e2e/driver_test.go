package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

const driverCompose = `name: drv
services:
  web:
    build: {context: ., args: {W: docker}}
    x-uc-builder: node2
  multi:
    build: {context: ., platforms: [linux/amd64, linux/386]}
    x-uc-builder: node2
  arm:
    build: {context: ., platforms: [linux/arm64]}
  s390x:
    build: {context: ., platforms: [linux/s390x]}
  cacheto:
    build: {context: ., args: {W: cacheto}, cache_to: [drv/cache]}
    x-uc-builder: node2
`

// TestDockerDriver builds on node2 with its Docker Engine's own BuildKit
// (/grpc and /session, the moby exporter, then a push by the engine) while
// node1 builds with buildkitd. Nodes advertise driver and platforms;
// builds no node can do say why.
func TestDockerDriver(t *testing.T) {
	env := requireInfra(t)
	c := startClusterWith(t, false, func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		args := []string{"--docker-host", env["UC_DOCKER_HOST_"+i]}
		if node == "node1" {
			return append(args, "--buildkit-addr", env["UC_BUILDKIT_ADDR"], "--registry-listen", env["UC_REGISTRY"])
		}
		return append(args, "--build-driver", "docker")
	})
	nodes := c.ok(t, "get", "nodes")
	if row := tableRow(t, nodes, "node2"); len(row) < 4 || !strings.HasPrefix(row[3], "docker(linux/amd64") {
		t.Errorf("node2 row %q, want the docker driver with linux/amd64 advertised", row)
	}
	if row := tableRow(t, nodes, "node1"); len(row) < 4 || !strings.HasPrefix(row[3], "buildkit(linux/amd64") {
		t.Errorf("node1 row %q, want the buildkit driver with linux/amd64 advertised", row)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nARG W\nRUN echo $W > /w.txt\n")
	compose := filepath.Join(dir, "compose.yaml")
	writeFile(t, compose, driverCompose)
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "drv/web", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, "drv/web")
	desc := c.ok(t, "describe", "build", "drv/web")
	for _, want := range []string{"Driver:", "docker", "Base images:", "docker.io/library/busybox:latest=sha256:"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe build drv/web lacks %q:\n%s", want, desc)
		}
	}
	if row := tableRow(t, c.ok(t, "get", "builds"), "drv/web"); len(row) < 6 || row[5] != "node2" {
		t.Errorf("drv/web row %q, want built on node2", row)
	}
	// The engine built it; the pre-puller found it already there.
	if out := docker(t, env["UC_DOCKER_HOST_2"], "image", "inspect", "-f", "{{.RepoDigests}}", c.stable+"/drv/web:latest"); !strings.Contains(out, digest) {
		t.Errorf("engine2 holds %s, want digest %s", out, digest)
	}

	// The engine's platforms depend on the kernel (linux/386 needs IA32
	// emulation), so the message is checked around them.
	refusals := map[string][]string{
		"drv/multi": {"no live builder node builds platforms linux/386,linux/amd64 (node2: docker driver, linux/amd64",
			"; a multi-platform build needs the buildkit driver)"},
		"drv/s390x":   {"no live builder node builds platforms linux/s390x", "linux/arm64(emulated)"},
		"drv/cacheto": {"cache_to needs the buildkit driver"},
	}
	for name, wants := range refusals {
		r := c.uc("wait", "images", name, "--timeout", "3m")
		for _, want := range wants {
			if r.code == 0 || !strings.Contains(r.stderr, want) {
				t.Errorf("wait %s: %v\nwant an error with %q", name, r, want)
			}
		}
	}

	// hack/up.sh registers QEMU for arm64 (and nothing else): both drivers'
	// BuildKits emulate it, so drv/arm builds, and linux/s390x is refused.
	c.ok(t, "wait", "images", "drv/arm", "--timeout", "3m")

	t.Run("re-created spec reuses the docker-built image", func(t *testing.T) {
		solves := c.builds("drv/web")
		if got := recreate(t, c, compose, "drv/web"); got != digest {
			t.Errorf("digest %s, want the stored %s", got, digest)
		}
		if n := c.builds("drv/web"); n != solves {
			t.Errorf("%d new solves, want none", n-solves)
		}
	})
}
