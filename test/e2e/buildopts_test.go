package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
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
      platforms: [linux/amd64]
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
			"Shm size:", "67108864", "Ulimits:", "nofile=1234:1234", "Network:", "none", "No cache:", "Pull:", "Dockerfile inline:", "Platforms:", "linux/amd64"} {
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

const refsCompose = `name: refs
services:
  web:
    build:
      context: .
      dockerfile_inline: |
        FROM busybox
        RUN --mount=type=secret,id=token --mount=type=secret,id=apikey \
            test "$(md5sum < /run/secrets/token | cut -c1-32)" = "%s" && \
            test "$(md5sum < /run/secrets/apikey | cut -c1-32)" = "%s" && echo secrets-ok > /ok.txt
        CMD ["cat", "/ok.txt"]
      secrets: [token, {source: key, target: apikey}]
      cache_from: [refs/cache:main]
      cache_to: ["type=registry,ref=refs/cache:main"]
      provenance: mode=max
    x-machines: [node1]
secrets:
  token: {file: ./token.txt}
  key: {environment: UC_E2E_API_KEY}
`

// TestBuildReferences checks secrets (file and environment), registry cache
// in the internal registry and provenance attestations on a real BuildKit.
func TestBuildReferences(t *testing.T) {
	env := requireInfra(t)
	t.Setenv("UC_E2E_API_KEY", "env-s3cret") // the builder node's ucd reads it
	c := sliceCluster(t, env)
	dir := t.TempDir()
	// The Dockerfile compares digests, so the values appear nowhere but in
	// the file and the environment.
	writeFile(t, filepath.Join(dir, "compose.yaml"), fmt.Sprintf(refsCompose, md5hex("file-s3cret"), md5hex("env-s3cret")))
	writeFile(t, filepath.Join(dir, "token.txt"), "file-s3cret")
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", "refs/web", "--timeout", "5m")
	digest := presentDigests(t, c, "refs/web")["node1"]

	t.Run("secrets reach RUN and stay out of state", func(t *testing.T) {
		out := docker(t, env["UC_DOCKER_HOST_1"], "run", "--rm", env["UC_REGISTRY"]+"/refs/web@"+digest)
		if !strings.Contains(out, "secrets-ok") {
			t.Fatalf("image output %q, want secrets-ok", out)
		}
		all := c.snapshot(t) + c.ok(t, "describe", "build", "refs/web")
		for _, secret := range []string{"file-s3cret", "env-s3cret"} {
			if strings.Contains(all, secret) {
				t.Errorf("secret value %q appears in state or describe output", secret)
			}
		}
		if !strings.Contains(all, "apikey=env:UC_E2E_API_KEY") {
			t.Errorf("describe should show the secret reference apikey=env:UC_E2E_API_KEY")
		}
		// docker save writes every layer uncompressed: grep them.
		layers := docker(t, env["UC_DOCKER_HOST_1"], "image", "save", env["UC_REGISTRY"]+"/refs/web@"+digest)
		for _, secret := range []string{"file-s3cret", "env-s3cret"} {
			if strings.Contains(layers, secret) {
				t.Errorf("secret value %q is in the image's layers", secret)
			}
		}
		if !strings.Contains(layers, "secrets-ok") {
			t.Error("the grep of the layers is blind: it does not find the file the build wrote")
		}
	})
	t.Run("cache and attestations land in the internal registry", func(t *testing.T) {
		// cache_to replaces the default cache as the export target.
		if code := registryGet(t, env["UC_REGISTRY"], "/v2/refs/cache/manifests/main", nil); code != http.StatusOK {
			t.Errorf("cache_to image: GET answered %d", code)
		}
		var index struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		registryGet(t, env["UC_REGISTRY"], "/v2/refs/web/manifests/"+digest, &index)
		found := false
		for _, m := range index.Manifests {
			found = found || m.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
		}
		if !found {
			t.Errorf("image index %s has no attestation manifest: %+v", digest, index)
		}
	})
}

// registryGet fetches a registry path with OCI accept headers, decodes JSON
// into v when given, and returns the status code.
func registryGet(t *testing.T, registry, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+registry+path, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// sbomScanner follows BuildKit's SBOM generator protocol, as BuildKit's
// own tests do: the official syft scanner image cannot be pulled here, so
// a busybox image writes the in-toto statement the protocol asks for.
const sbomScanner = `FROM busybox
COPY <<-"EOF" /scan.sh
	set -e
	cat <<BUNDLE > $BUILDKIT_SCAN_DESTINATION/spdx.json
	{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://spdx.dev/Document",
	 "predicate": {"name": "uc-e2e-scan"}}
	BUNDLE
EOF
CMD ["sh", "/scan.sh"]
`

// TestSBOM builds with `sbom:` naming a generator: BuildKit runs it and
// the image index carries an SPDX attestation.
func TestSBOM(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	scanDir, appDir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(scanDir, "Dockerfile"), sbomScanner)
	writeFile(t, filepath.Join(scanDir, "compose.yaml"), "name: scan\nservices:\n  scanner:\n    build: .\n    x-machines: [node1]\n")
	c.ok(t, "apply", "-f", filepath.Join(scanDir, "compose.yaml"))
	c.ok(t, "wait", "images", "scan/scanner", "--timeout", "5m")

	writeFile(t, filepath.Join(appDir, "Dockerfile"), "FROM busybox\nRUN echo app > /app.txt\n")
	writeFile(t, filepath.Join(appDir, "compose.yaml"), fmt.Sprintf(
		"name: sb\nservices:\n  app:\n    build: {context: ., sbom: \"generator=%s/scan/scanner:latest\"}\n    x-machines: [node1]\n", env["UC_REGISTRY"]))
	c.ok(t, "apply", "-f", filepath.Join(appDir, "compose.yaml"))
	c.ok(t, "wait", "images", "sb/app", "--timeout", "5m")
	digest := presentDigests(t, c, "sb/app")["node1"]

	type manifest struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
		Manifests   []manifest        `json:"manifests"`
		Layers      []manifest        `json:"layers"`
	}
	var index manifest
	registryGet(t, env["UC_REGISTRY"], "/v2/sb/app/manifests/"+digest, &index)
	var predicates []string
	for _, m := range index.Manifests {
		if m.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		var att manifest
		registryGet(t, env["UC_REGISTRY"], "/v2/sb/app/manifests/"+m.Digest, &att)
		for _, l := range att.Layers {
			predicates = append(predicates, l.Annotations["in-toto.io/predicate-type"])
		}
	}
	if !slices.Contains(predicates, "https://spdx.dev/Document") {
		t.Errorf("image %s has attestations %q, want an SPDX document", digest, predicates)
	}
}
