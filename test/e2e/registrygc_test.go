package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegistryGC builds three generations of an image that keeps one
// build, and deletes another project: `uc registry gc` removes the old
// generations and the deleted project's image, and keeps the current
// image, its build cache and its shipped context.
func TestRegistryGC(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	reg := env["UC_REGISTRY"]
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nARG V\nRUN echo $V > /v\n")
	compose := filepath.Join(dir, "compose.yaml")
	var digests []string
	for v := 1; v <= 3; v++ {
		writeFile(t, compose, fmt.Sprintf("name: gcp\nservices:\n  web:\n    build: {context: ., args: {V: \"%d\"}}\n    x-uc-keep-builds: 1\n", v))
		c.ok(t, "apply", "-f", compose)
		c.ok(t, "wait", "images", "gcp/web", "--timeout", "5m")
		digests = append(digests, sameDigestOnBoth(t, c, "gcp/web"))
	}
	other := filepath.Join(t.TempDir(), "compose.yaml")
	writeFile(t, filepath.Join(filepath.Dir(other), "Dockerfile"), "FROM busybox\nRUN echo gone > /g\n")
	writeFile(t, other, "name: gone\nservices:\n  app:\n    build: .\n    x-machines: [node1]\n")
	c.ok(t, "apply", "-f", other)
	c.ok(t, "wait", "images", "gone/app", "--timeout", "5m")
	goneDigest := presentDigests(t, c, "gone/app")["node1"]
	c.ok(t, "delete", "-f", other)

	dry := c.ok(t, "registry", "gc", "--dry-run", "--grace", "1ms")
	for _, want := range []string{"would remove gcp/web@" + digests[0], "would remove gcp/web@" + digests[1], "would remove gone/app@" + goneDigest} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if strings.Contains(dry, digests[2]) {
		t.Errorf("dry run would remove the current image %s:\n%s", digests[2], dry)
	}
	if code := registryGet(t, reg, "/v2/gcp/web/manifests/"+digests[0], nil); code != http.StatusOK {
		t.Fatalf("a dry run removed %s (GET %d)", digests[0], code)
	}

	out := c.ok(t, "registry", "gc", "--grace", "1ms")
	if !strings.Contains(out, "removed gcp/web@"+digests[0]) || !strings.Contains(out, "freeing") {
		t.Errorf("gc printed:\n%s", out)
	}
	for _, gone := range []string{"/v2/gcp/web/manifests/" + digests[0], "/v2/gcp/web/manifests/" + digests[1], "/v2/gone/app/manifests/" + goneDigest} {
		if code := registryGet(t, reg, gone, nil); code != http.StatusNotFound {
			t.Errorf("GET %s after gc: %d, want 404", gone, code)
		}
	}
	for _, kept := range []string{"/v2/gcp/web/manifests/" + digests[2], "/v2/gcp/web/manifests/latest", "/v2/uc-cache/gcp/web/manifests/buildcache"} {
		if code := registryGet(t, reg, kept, nil); code != http.StatusOK {
			t.Errorf("GET %s after gc: %d, want 200", kept, code)
		}
	}
	var builds []struct {
		Spec struct {
			ContextRef string `json:"context_ref"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(c.ok(t, "get", "builds", "gcp/web", "-o", "json")), &builds); err != nil || len(builds) != 1 {
		t.Fatalf("get builds: %v", err)
	}
	_, repoAt, _ := strings.Cut(builds[0].Spec.ContextRef, "/")
	repo, dg, _ := strings.Cut(repoAt, "@")
	if code := registryGet(t, reg, "/v2/"+repo+"/manifests/"+dg, nil); code != http.StatusOK {
		t.Errorf("the shipped context %s after gc: GET %d, want 200", builds[0].Spec.ContextRef, code)
	}
	// The current image is still whole: a node that lacks it pulls it,
	// through the registry's stable address as the pre-puller did.
	docker(t, env["UC_DOCKER_HOST_2"], "rmi", c.stable+"/gcp/web@"+digests[2])
	docker(t, env["UC_DOCKER_HOST_2"], "pull", c.stable+"/gcp/web@"+digests[2])

	if err := poll(30*time.Second, func() error {
		st := c.ok(t, "registry", "status")
		if !strings.Contains(st, "(request):") {
			return fmt.Errorf("registry status does not show the requested gc yet:\n%s", st)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}
