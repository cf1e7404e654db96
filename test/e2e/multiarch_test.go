package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/files"
)

// TestMultiArchUnderEmulation builds one service for amd64 and arm64 on
// amd64 nodes: the arm64 half runs under QEMU (hack/up.sh registers it with
// binfmt_misc). The result is one index with both images, and the arm64
// image's files really are arm64: what its RUN step saw and its busybox.
func TestMultiArchUnderEmulation(t *testing.T) {
	env := requireInfra(t)
	c := sliceCluster(t, env)
	manifests := buildAmdAndArm(t, c, env, "ma")
	busybox := imageFile(t, env["UC_REGISTRY"], "ma/app", manifests["arm64"], "bin/busybox")
	f, err := elf.NewFile(bytes.NewReader(busybox))
	if err != nil {
		t.Fatalf("arm64 image: bin/busybox is not an ELF file: %v", err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("arm64 image: bin/busybox is built for %v, want EM_AARCH64", f.Machine)
	}
	if desc := c.ok(t, "describe", "build", "ma/app"); !strings.Contains(desc, "linux/arm64") {
		t.Errorf("describe build ma/app does not show its platforms:\n%s", desc)
	}
	if nodes := c.ok(t, "get", "nodes"); !strings.Contains(nodes, "linux/arm64(emulated)") {
		t.Errorf("uc get nodes does not say that arm64 is emulated:\n%s", nodes)
	}
}

// buildAmdAndArm builds project/app for amd64 and arm64, checks that its
// result is one index of both whose RUN steps ran on each CPU, and returns
// the index's image manifests by architecture.
func buildAmdAndArm(t *testing.T, c *cluster, env infra, project string) map[string]string {
	t.Helper()
	dir := files.Write(t, t.TempDir(), map[string]string{
		"compose.yaml": "name: " + project + "\nservices:\n  app:\n    build: {context: ., platforms: [linux/amd64, linux/arm64]}\n    x-machines: [node1, node2]\n",
		"Dockerfile":   "FROM busybox\nRUN uname -m > /arch\n",
	})
	c.ok(t, "apply", "-f", filepath.Join(dir, "compose.yaml"))
	c.ok(t, "wait", "images", project+"/app", "--timeout", "5m")
	digest := sameDigestOnBoth(t, c, project+"/app")

	manifests := map[string]string{} // architecture → manifest digest
	var index ociManifest
	registryGet(t, env["UC_REGISTRY"], "/v2/"+project+"/app/manifests/"+digest, &index)
	for _, m := range index.Manifests {
		if m.Platform.OS == "linux" {
			manifests[m.Platform.Architecture] = m.Digest
		}
	}
	if len(manifests) != 2 || manifests["amd64"] == "" || manifests["arm64"] == "" {
		t.Fatalf("index %s holds images for %v, want amd64 and arm64", digest, manifests)
	}
	for arch, want := range map[string]string{"amd64": "x86_64\n", "arm64": "aarch64\n"} {
		if got := string(imageFile(t, env["UC_REGISTRY"], project+"/app", manifests[arch], "arch")); got != want {
			t.Errorf("%s image: its RUN step saw uname -m = %q, want %q", arch, got, want)
		}
	}
	return manifests
}

type ociManifest struct {
	Digest    string        `json:"digest"`
	MediaType string        `json:"mediaType"`
	Manifests []ociManifest `json:"manifests"`
	Layers    []ociManifest `json:"layers"`
	Platform  struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// imageFile returns a file of an image in the registry, from the topmost
// layer that holds it.
func imageFile(t *testing.T, registry, repo, manifest, path string) []byte {
	t.Helper()
	var m ociManifest
	registryGet(t, registry, "/v2/"+repo+"/manifests/"+manifest, &m)
	for i := len(m.Layers) - 1; i >= 0; i-- {
		if b, err := layerFile(registry, repo, m.Layers[i].Digest, path); err == nil {
			return b
		} else if !errors.Is(err, errNotInLayer) {
			t.Fatalf("layer %s of %s@%s: %v", m.Layers[i].Digest, repo, manifest, err)
		}
	}
	t.Fatalf("%s@%s has no file %s in its %d layers", repo, manifest, path, len(m.Layers))
	return nil
}

var errNotInLayer = errors.New("not in this layer")

func layerFile(registry, repo, digest, path string) ([]byte, error) {
	resp, err := http.Get("http://" + registry + "/v2/" + repo + "/blobs/" + digest)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errNotInLayer
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(h.Name, "./") == path && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}

// TestMultiArchSplitAcrossNodes: node2 declares arm64 native
// (--builder-platforms, as buildx create --platform does); node1 builds
// amd64 natively and only emulates arm64. One two-platform build is then
// split: each node builds its native platform on real BuildKit, and the
// owner merges both into one index.
func TestMultiArchSplitAcrossNodes(t *testing.T) {
	env := requireInfra(t)
	c := twoNodeCluster(t, env, "--builder-platforms", "linux/arm64")
	nodes := c.ok(t, "get", "nodes")
	if !strings.Contains(nodes, "buildkit(linux/arm64,linux/amd64(emulated)") {
		t.Errorf("node2 does not advertise arm64 as native and the rest as emulated:\n%s", nodes)
	}
	buildAmdAndArm(t, c, env, "split")
	desc := c.ok(t, "describe", "build", "split/app")
	if !strings.Contains(desc, "linux/amd64=node1") || !strings.Contains(desc, "linux/arm64=node2") {
		t.Errorf("describe build split/app does not say that node1 built amd64 and node2 arm64:\n%s", desc)
	}
}
