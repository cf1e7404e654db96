package publish

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/registrytest"
)

// TestCopyMountsSharedBlobs copies two images that share a 1 MiB base
// layer into a second real registry: the second copy mounts the base
// from the first image's repository instead of uploading it, and both
// arrive whole, with the digests they had.
func TestCopyMountsSharedBlobs(t *testing.T) {
	src, dst := registrytest.Serve(t, registry.Config{}), registrytest.Serve(t, registry.Config{})
	ctx := context.Background()
	base, err := random.Layer(1<<20, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	for _, repo := range []string{"p/a", "p/b"} {
		own, err := random.Layer(1<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, base, own)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(src + "/" + repo + ":latest")
		if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		images[repo] = img
	}
	counter := &Counter{}
	mounts := &Mounts{}
	for _, repo := range []string{"p/a", "p/b"} {
		before := counter.Sent()
		got, err := mounts.Copy(ctx, Endpoint{Ref: src + "/" + repo + ":latest"}, Endpoint{Ref: dst + "/" + repo + ":v1", Transport: counter})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := images[repo].Digest()
		if got != want.String() {
			t.Errorf("%s copied as %s, want %s", repo, got, want)
		}
		sent := counter.Sent() - before
		t.Logf("%s: %d bytes sent", repo, sent)
		if repo == "p/b" && sent > 64<<10 {
			t.Errorf("the second image sent %d bytes: its 1 MiB base was uploaded again, not mounted", sent)
		}
		ref, _ := name.ParseReference(dst + "/" + repo + ":v1")
		pulled, err := remote.Image(ref)
		if err == nil {
			_, err = pulled.Layers()
		}
		if d, _ := pulled.Digest(); err != nil || d != want {
			t.Errorf("%s at the target: %v, %v", repo, d, err)
		}
		if l, err := pulled.LayerByDigest(mustDigest(t, base)); err != nil {
			t.Errorf("%s lacks its base at the target: %v", repo, err)
		} else if rc, err := l.Compressed(); err != nil {
			t.Errorf("%s: the base blob cannot be read at the target: %v", repo, err)
		} else {
			rc.Close()
		}
	}
}

func mustDigest(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
