package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

const optsCompose = `name: opts
services:
  web:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox AS base
        RUN cat /etc/hosts > /hosts.txt && df -k /dev/shm | tail -n 1 > /shm.txt && ulimit -n > /nofile.txt && grep -c ':' /proc/net/dev > /ifaces.txt
        FROM base AS final
        CMD ["sh", "-c", "cat /hosts.txt; echo shm=$(awk '{print $2}' /shm.txt); echo nofile=$(cat /nofile.txt); echo ifaces=$(cat /ifaces.txt)"]
        FROM base AS unused
        RUN exit 9
      target: final
      extra_hosts: ["db.internal=10.9.8.7"]
      shm_size: 64m
      ulimits: {nofile: {soft: 1234, hard: 1234}}
      network: none
      tags: [opts/web:v1]
      no_cache: true
      pull: true
      labels: {team: core}
      isolation: default
    x-machines: [node1]
  hostnet:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox
        RUN grep -c ':' /proc/net/dev > /ifaces.txt
      network: host
    x-machines: [node2]
  insecure:
    build:
      context: .
      dockerfile_inline: "FROM busybox\n"
      privileged: true
    x-machines: [node1]
`

// TestBuildOptions maps Compose build attributes onto a real BuildKit solve
// and checks their effect inside the built image.
func TestBuildOptions(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "compose.yaml"), optsCompose)
	r := c.uc("apply", "-f", filepath.Join(dir, "compose.yaml"))
	if r.code != 0 || !strings.Contains(r.stderr, "services.web.build.isolation") {
		t.Fatalf("apply: %v; want success with an isolation warning", r)
	}
	c.ok(t, "wait", "images", "opts/web", "opts/hostnet", "--timeout", "5m")

	t.Run("run options reach RUN steps", func(t *testing.T) {
		digest := presentDigests(t, c, "opts/web")["node1"]
		out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/opts/web@"+digest)
		for _, want := range []string{"10.9.8.7", "db.internal", "shm=65536", "nofile=1234", "ifaces=1"} {
			if !strings.Contains(out, want) {
				t.Errorf("image output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("tags and labels", func(t *testing.T) {
		digest := presentDigests(t, c, "opts/web")["node1"]
		docker(t, env["UC_DOCKER_HOST_1"], "pull", env["UC_REGISTRY"]+"/opts/web:v1")
		inspect := docker(t, env["UC_DOCKER_HOST_1"], "image", "inspect", env["UC_REGISTRY"]+"/opts/web:v1")
		var imgs []struct {
			RepoDigests []string
			Config      struct{ Labels map[string]string }
		}
		if err := json.Unmarshal([]byte(inspect), &imgs); err != nil || len(imgs) != 1 {
			t.Fatalf("inspect: %v", err)
		}
		if !strings.Contains(strings.Join(imgs[0].RepoDigests, " "), digest) {
			t.Errorf("tag v1 has digests %v, want %s", imgs[0].RepoDigests, digest)
		}
		if imgs[0].Config.Labels["team"] != "core" {
			t.Errorf("labels = %v, want team=core", imgs[0].Config.Labels)
		}
	})
	t.Run("describe shows the attributes", func(t *testing.T) {
		desc := c.ok(t, "describe", "build", "opts/web")
		for _, want := range []string{"Target:", "final", "Tags:", "opts/web:v1", "Extra hosts:", "db.internal=10.9.8.7",
			"Shm size:", "67108864", "Ulimits:", "nofile=1234:1234", "Network:", "none", "No cache:", "Pull:", "Dockerfile inline:"} {
			if !strings.Contains(desc, want) {
				t.Errorf("describe lacks %q:\n%s", want, desc)
			}
		}
	})
	t.Run("network host is granted where allowed", func(t *testing.T) {
		desc := c.ok(t, "describe", "build", "opts/hostnet")
		if !strings.Contains(desc, "succeeded") || !strings.Contains(desc, "node2") {
			t.Errorf("network: host build should succeed on node2, the node that allows it:\n%s", desc)
		}
	})
	t.Run("an entitlement no node allows is refused", func(t *testing.T) {
		r := c.uc("wait", "images", "opts/insecure", "--timeout", "2m")
		if r.code == 0 || !strings.Contains(r.stderr, "no live builder node allows entitlement security.insecure") {
			t.Fatalf("wait on a refused entitlement: %v", r)
		}
	})
}
