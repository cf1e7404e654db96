package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

const cacheScopeDockerfile = "FROM busybox\nARG WHO\nRUN echo $WHO > /seen\nCMD [\"cat\", \"/seen\"]\n"

// TestCacheScopes: a build in an untrusted cache scope writes only its own
// registry cache; a trusted scope writes the shared cache. (Cache mounts
// get a namespace per untrusted scope, BUILDKIT_CACHE_MOUNT_NS, checked in
// the unit tests: here BuildKit shared no cache mount between two builds
// even in one namespace, so an e2e check of it could not fail.)
func TestCacheScopes(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	compose := func(svc, scope string) string {
		return "name: sc\nservices:\n  " + svc + ":\n    build: {context: ., args: {WHO: " + svc + "}}\n    x-uc-cache-scope: " + scope + "\n    x-machines: [node1]\n"
	}
	dir := files.Write(t, t.TempDir(), map[string]string{
		"a/Dockerfile": cacheScopeDockerfile, "a/compose.yaml": compose("a", "team/a"),
		"b/Dockerfile": cacheScopeDockerfile, "b/compose.yaml": strings.Replace(compose("b", "team/b"), "name: sc", "name: sc2", 1),
	})
	c.ok(t, "apply", "-f", filepath.Join(dir, "a/compose.yaml"))
	c.ok(t, "wait", "images", "sc/a", "--timeout", "5m")
	c.ok(t, "apply", "-f", filepath.Join(dir, "b/compose.yaml"))
	c.ok(t, "wait", "images", "sc2/b", "--timeout", "5m")
	if out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", c.stable+"/sc2/b@"+presentDigests(t, c, "sc2/b")["node1"]); out != "b\n" {
		t.Errorf("sc2/b shows %q", out)
	}
	reg := env["UC_REGISTRY"]
	if code := registryGet(t, reg, "/v2/uc-cache/sc/a/manifests/buildcache-team-a", nil); code != http.StatusOK {
		t.Errorf("scope team/a's own cache: GET %d, want 200", code)
	}
	if code := registryGet(t, reg, "/v2/uc-cache/sc/a/manifests/buildcache", nil); code != http.StatusNotFound {
		t.Errorf("an untrusted scope wrote the shared cache: GET %d, want 404", code)
	}
	if desc := c.ok(t, "describe", "build", "sc/a"); !strings.Contains(desc, "team/a (reads the shared cache, writes its own)") || !strings.Contains(desc, "Cache hits:") {
		t.Errorf("describe build sc/a:\n%s", desc)
	}

	// main is trusted by default: it writes the shared cache.
	files.Write(t, dir, map[string]string{"a/compose.yaml": compose("a", "main")})
	c.ok(t, "apply", "-f", filepath.Join(dir, "a/compose.yaml"))
	if err := poll(waitLong, func() error {
		if registryGet(t, reg, "/v2/uc-cache/sc/a/manifests/buildcache", nil) != http.StatusOK {
			return errNotYet
		}
		return nil
	}); err != nil {
		t.Errorf("the trusted scope main did not write the shared cache:\n%s", c.ok(t, "describe", "build", "sc/a"))
	}
}
