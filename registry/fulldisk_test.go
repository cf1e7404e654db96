package registry

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestFullDisk fills the registry's filesystem (a 4 MiB tmpfs) with a
// push: the push fails with an error that says so, and the registry keeps
// serving what it holds.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		// Detached: the registry's last handles close as it exits.
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	srv, base := gcRegistryIn(t, dir)
	_ = srv
	c := gcClient{base: base, http: http.DefaultClient}
	small := randomBytes(64 << 10)
	img := mustDigest(t)(c.pushImage("full/app", "v1", small))

	big := randomBytes(8 << 20)
	_, err := c.pushBlob("full/app", big)
	if err == nil {
		t.Fatal("an 8 MiB push into a 4 MiB filesystem succeeded")
	}
	t.Logf("push into a full disk: %v", err)
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("the error does not say the disk is full: %v", err)
	}
	if c.exists("full/app", "blobs", digest.FromBytes(big)) {
		t.Error("the failed blob exists")
	}
	if !c.exists("full/app", "manifests", img) {
		t.Fatal("the image pushed before the disk filled is gone")
	}
	resp, err := http.Get(base + "/v2/full/app/blobs/" + digest.FromBytes(small).String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, small) {
		t.Errorf("reading a stored blob from a full registry: %s, %d bytes", resp.Status, len(got))
	}
}
