package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPublishToExternal builds on real BuildKit and publishes the image to
// a second registry behind htpasswd auth (standing in for ghcr.io) with
// x-uc-push: the external copy has the digest the nodes pre-pulled. A
// tag naming that registry is refused at apply, not rewritten.
func TestPublishToExternal(t *testing.T) {
	env := requireInfra(t)
	ext := authRegistry(t, "pub", "pub-s3cret")
	t.Setenv("UC_E2E_PUSH", "pub:pub-s3cret") // ucd inherits it
	c := sliceCluster(t, env)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM busybox\nRUN echo published > /msg\n")
	compose := filepath.Join(dir, "compose.yaml")
	target := ext + "/me/web:v1"
	writeFile(t, compose, fmt.Sprintf("name: pub\nservices:\n  web:\n    build: .\n    x-uc-push: [%s]\n"+
		"    x-uc-push-credential: env:UC_E2E_PUSH\n    x-machines: [node1, node2]\n", target))
	c.ok(t, "apply", "-f", compose)
	c.ok(t, "wait", "images", "pub/web", "--timeout", "5m")
	built := sameDigestOnBoth(t, c, "pub/web")
	if err := poll(time.Minute, func() error {
		if desc := c.ok(t, "describe", "build", "pub/web"); !strings.Contains(desc, target+" pushed") {
			return fmt.Errorf("describe:\n%s", desc)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := remoteDigestAuth(t, target); got != built {
		t.Errorf("the external registry has %s, want the built %s", got, built)
	}

	// uc images publish copies the project's images with their tags in one
	// shot; uc images import brings one back under another name, and a
	// service pulls it from the internal registry.
	if out := c.ok(t, "images", "publish", "--to", ext+"/mirror", "--project", "pub", "--credential", "env:UC_E2E_PUSH"); !strings.Contains(out, "1 of 1 images copied") {
		t.Errorf("uc images publish: %s", out)
	}
	if got := remoteDigestAuth(t, ext+"/mirror/pub/web:latest"); got != built {
		t.Errorf("published %s, want %s", got, built)
	}
	if out := c.ok(t, "images", "import", "--from", target, "--credential", "env:UC_E2E_PUSH"); !strings.Contains(out, env["UC_REGISTRY"]+"/me/web:v1 ("+built+")") {
		t.Errorf("uc images import: %s", out)
	}
	imported := filepath.Join(dir, "imported.yaml")
	writeFile(t, imported, "name: imported\nservices:\n  app:\n    image: "+c.stable+"/me/web:v1\n    x-machines: [node2]\n")
	c.ok(t, "apply", "-f", imported)
	c.ok(t, "wait", "images", "imported/app", "--timeout", "2m")
	if got := presentDigests(t, c, "imported/app")["node2"]; got != built {
		t.Errorf("the imported image is present as %s, want %s", got, built)
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: pub\nservices:\n  web:\n    build:\n      context: .\n      tags: ["+target+"]\n")
	if r := c.uc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, "x-uc-push: ["+target+"] publishes it to "+ext) {
		t.Errorf("a tag naming another registry: %v", r)
	}
}

// remoteDigestAuth is what ref resolves to on the test's external registry.
func remoteDigestAuth(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: "pub", Password: "pub-s3cret"}))
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}
