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
	ref, err := name.ParseReference(target, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, remote.WithAuth(&authn.Basic{Username: "pub", Password: "pub-s3cret"}))
	if err != nil || desc.Digest.String() != built {
		t.Errorf("the external registry has %v (%v), want the built %s", desc, err, built)
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: pub\nservices:\n  web:\n    build:\n      context: .\n      tags: ["+target+"]\n")
	if r := c.uc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, "x-uc-push: ["+target+"] publishes it to "+ext) {
		t.Errorf("a tag naming another registry: %v", r)
	}
}
