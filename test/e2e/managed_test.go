package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// managedCluster starts two nodes that may each run the registry
// container: engines, one buildkitd, their own advertised loopback IPs,
// and a short failover bound. The registry container is removed from both
// engines when the test ends.
func managedCluster(t *testing.T, env infra) *cluster {
	t.Helper()
	for _, i := range []string{"1", "2"} {
		host := env["UC_DOCKER_HOST_"+i]
		t.Cleanup(func() { removeRegistryContainer(host) })
	}
	return startClusterWith(t, false, func(node string) []string {
		i := strings.TrimPrefix(node, "node")
		return []string{"--docker-host", env["UC_DOCKER_HOST_"+i], "--buildkit-addr", env["UC_BUILDKIT_ADDR"],
			"--advertise-addr", "127.0.0." + i, "--registry-failover-after", "5s"}
	})
}

func removeRegistryContainer(host string) {
	_ = exec.Command("docker", "-H", host, "rm", "-f", "uc-registry").Run()
}

// buildPrinter applies project/web, an image that prints msg, built on
// builder, and returns its digest once both nodes hold it.
func buildPrinter(t *testing.T, c *cluster, project, builder, msg string) string {
	t.Helper()
	proj := t.TempDir()
	writeFile(t, filepath.Join(proj, "Dockerfile"), "FROM busybox\nCOPY msg.txt /msg.txt\nCMD [\"cat\", \"/msg.txt\"]\n")
	writeFile(t, filepath.Join(proj, "msg.txt"), msg+"\n")
	writeFile(t, filepath.Join(proj, "compose.yaml"), "name: "+project+"\nservices:\n  web:\n    build: .\n    x-uc-builder: "+builder+"\n")
	c.ok(t, "apply", "-f", filepath.Join(proj, "compose.yaml"))
	c.ok(t, "wait", "images", project+"/web", "--timeout", "5m")
	return sameDigestOnBoth(t, c, project+"/web")
}

// registryHolder polls uc registry status until a node serves the
// registry and returns that node and the address.
func registryHolder(t *testing.T, c *cluster, not string, timeout time.Duration) (node, addr string) {
	t.Helper()
	err := poll(timeout, func() error {
		for _, line := range strings.Split(c.ok(t, "registry", "status"), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) >= 3 && f[2] == "True" && f[0] != not {
				node, addr = f[0], f[1]
				return nil
			}
		}
		return fmt.Errorf("no node serves the registry yet")
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.ok(t, "registry", "status"))
	}
	return node, addr
}

func registryUp(addr string) error {
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	return nil
}

// TestManagedRegistry runs the registry as a container made from ucd,
// brings it back when it is killed, and moves it to the other node when
// its node dies; the build is restored into the new registry and nodes
// pull from there.
func TestManagedRegistry(t *testing.T) {
	env := requireInfra(t)
	c := managedCluster(t, env)
	c.ok(t, "registry", "configure", "--port", "5001")
	holder, addr := registryHolder(t, c, "", time.Minute)
	i := strings.TrimPrefix(holder, "node")
	if addr != "127.0.0."+i+":5001" {
		t.Errorf("registry on %s at %s, want the node's advertised address and port 5001", holder, addr)
	}
	if out := docker(t, env["UC_DOCKER_HOST_"+i], "inspect", "-f", "{{.Config.Image}} {{.HostConfig.NetworkMode}}", "uc-registry"); !strings.HasPrefix(out, "uc/registry:") || !strings.Contains(out, "host") {
		t.Errorf("registry container: %s, want uc's image on host networking", out)
	}

	// The node that survives builds, so it holds the shipped context and
	// the build cache the restore needs.
	other := map[string]string{"node1": "node2", "node2": "node1"}[holder]
	digest := buildPrinter(t, c, "hello", other, "hello from a moving registry")

	t.Run("killed container comes back", func(t *testing.T) {
		docker(t, env["UC_DOCKER_HOST_"+i], "kill", "uc-registry")
		start := time.Now()
		if err := poll(30*time.Second, func() error { return registryUp(addr) }); err != nil {
			t.Fatalf("registry not back after kill: %v", err)
		}
		t.Logf("registry back %s after docker kill", time.Since(start).Round(time.Millisecond))
	})

	t.Run("node death moves the registry and restores the image", func(t *testing.T) {
		_ = c.procs[holder].cmd.Process.Kill() // the node dies: no goodbye, no heartbeat
		<-c.procs[holder].done
		removeRegistryContainer(env["UC_DOCKER_HOST_"+i]) // and its registry with it
		start := time.Now()
		newHolder, newAddr := registryHolder(t, c, holder, time.Minute)
		if newHolder != other {
			t.Fatalf("registry moved to %s, want %s", newHolder, other)
		}
		ref := newAddr + "/hello/web@" + digest
		if err := poll(2*time.Minute, func() error {
			code := registryGet(t, newAddr, "/v2/hello/web/manifests/"+digest, nil)
			if code != http.StatusOK {
				return fmt.Errorf("GET %s: %d", ref, code)
			}
			return nil
		}); err != nil {
			t.Fatalf("the image was not restored into the new registry: %v", err)
		}
		t.Logf("image pullable from the new registry %s after the node died", time.Since(start).Round(time.Millisecond))
		j := strings.TrimPrefix(other, "node")
		docker(t, env["UC_DOCKER_HOST_"+j], "pull", ref)
		// Image references in state name the stable address, not where
		// the registry runs, so they did not change (the context's names
		// the registry uc shipped it to, which the builder rehosts); the surviving node
		// forwards that address now, even if the dead one served it.
		builds := c.ok(t, "get", "builds", "hello/web", "-o", "json")
		if !strings.Contains(builds, c.stable+"/hello/web") || strings.Contains(builds, addr+"/hello/") || strings.Contains(builds, newAddr+"/hello/") {
			t.Errorf("build references do not name the stable address %s only:\n%s", c.stable, builds)
		}
		docker(t, env["UC_DOCKER_HOST_"+j], "pull", c.stable+"/hello/web@"+digest)
	})
}

// TestManagedRegistryAuth turns on the registry's basic auth: anonymous
// requests are refused, and every part of uc uses the generated credential
// from state: shipping contexts, BuildKit's push, the engines' pulls, GC.
func TestManagedRegistryAuth(t *testing.T) {
	env := requireInfra(t)
	c := managedCluster(t, env)
	c.ok(t, "registry", "configure", "--port", "5003", "--auth")
	_, addr := registryHolder(t, c, "", time.Minute)
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v2/: %s, want 401", resp.Status)
	}

	proj := t.TempDir()
	writeFile(t, filepath.Join(proj, "Dockerfile"), "FROM busybox\nCOPY msg.txt /msg.txt\n")
	writeFile(t, filepath.Join(proj, "msg.txt"), "behind auth\n")
	writeFile(t, filepath.Join(proj, "compose.yaml"), "name: authp\nservices:\n  web:\n    build: .\n")
	if out := c.ok(t, "apply", "-f", filepath.Join(proj, "compose.yaml")); !strings.Contains(out, "uploaded") {
		t.Errorf("apply did not ship the context through the authenticated registry:\n%s", out)
	}
	c.ok(t, "wait", "images", "authp/web", "--timeout", "5m")
	sameDigestOnBoth(t, c, "authp/web")
	if out := c.ok(t, "registry", "gc", "--dry-run"); !strings.Contains(out, "would remove") {
		t.Errorf("gc through auth:\n%s", out)
	}
}

// TestManagedRegistryRestoreFromEngine kills the registry's node when no
// live node can rebuild the image (its shipped context is gone with the
// old registry and from the builder's cache): the surviving node pushes
// the image its engine pre-pulled into the new registry, under a new
// digest with the same content, and says so in the build's status.
func TestManagedRegistryRestoreFromEngine(t *testing.T) {
	env := requireInfra(t)
	c := managedCluster(t, env)
	c.ok(t, "registry", "configure", "--port", "5004")
	holder, _ := registryHolder(t, c, "", time.Minute)
	other := map[string]string{"node1": "node2", "node2": "node1"}[holder]
	old := buildPrinter(t, c, "cp", other, "copied, not rebuilt")

	if err := os.RemoveAll(filepath.Join(c.dir, other, "contexts")); err != nil {
		t.Fatal(err)
	}
	_ = c.procs[holder].cmd.Process.Kill()
	<-c.procs[holder].done
	removeRegistryContainer(env["UC_DOCKER_HOST_"+strings.TrimPrefix(holder, "node")])
	_, addr := registryHolder(t, c, holder, time.Minute)
	var restored string
	if err := poll(2*time.Minute, func() error {
		d := presentDigests(t, c, "cp/web")[other]
		if d == "" || d == old {
			return fmt.Errorf("%s holds %q, want a restored digest", other, d)
		}
		restored = d
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, c.ok(t, "describe", "build", "cp/web"))
	}
	if desc := c.ok(t, "describe", "build", "cp/web"); !strings.Contains(desc, "restored from "+other+"'s engine, was "+old) {
		t.Errorf("describe does not say where the image came from:\n%s", desc)
	}
	if code := registryGet(t, addr, "/v2/cp/web/manifests/"+restored, nil); code != http.StatusOK {
		t.Errorf("restored digest %s: GET %d in the new registry", restored, code)
	}
	j := strings.TrimPrefix(other, "node")
	if out := docker(t, env["UC_DOCKER_HOST_"+j], "run", "--rm", addr+"/cp/web@"+restored); !strings.Contains(out, "copied, not rebuilt") {
		t.Errorf("the restored image prints %q", out)
	}
}
