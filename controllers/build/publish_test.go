package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/registrytest"
)

// externalRegistry serves a second real registry behind htpasswd auth,
// standing in for ghcr.io, and returns its address.
func externalRegistry(t *testing.T, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return registrytest.Serve(t, registry.Config{HTPasswd: htpasswd})
}

// TestPublish: after a build succeeds its owner copies the image to each
// x-uc-push target by digest; a refused credential fails that target for
// good, an unreachable registry is retried, and a new build is pushed again.
func TestPublish(t *testing.T) {
	ext := externalRegistry(t, "pub", "s3cret")
	t.Setenv("UC_TEST_PUSH", "pub:s3cret")
	t.Setenv("UC_TEST_PUSH_WRONG", "pub:guess")
	n := 0
	w := newBuildWorld(t, func(context.Context, int, func(progress)) (solveResult, error) {
		n++
		return solveResult{Digest: strings.Repeat("x", n)}, nil
	})
	target := ext + "/me/app:v1"
	w.apply(api.BuildSpec{Name: "p/web", Push: []string{target}, PushCredential: "env:UC_TEST_PUSH"})
	st, err := w.reconcile("p/web")
	if err != nil || st.Phase != api.BuildSucceeded || len(st.Detail.Pushed) != 0 {
		t.Fatalf("build: %v, %s, pushed %v", err, st.Phase, st.Detail.Pushed)
	}
	st, err = w.reconcile("p/web")
	if p := st.Detail.Pushed[target]; err != nil || p.State != api.PushPushed || p.Digest != st.Digest {
		t.Fatalf("publish: %v, %+v (built %s)", err, p, st.Digest)
	}
	if got := remoteDigest(t, target, "pub", "s3cret"); got != st.Digest {
		t.Errorf("the external registry holds %s, want %s", got, st.Digest)
	}
	if again, err := w.reconcile("p/web"); err != nil || !again.UpdatedAt.Equal(st.UpdatedAt) {
		t.Errorf("a published build was written again: %v", err)
	}

	// A new build with a credential the registry refuses: that target fails
	// for good (no retry), an unreachable registry is retried.
	down := "127.0.0.1:1/me/app:v1"
	w.apply(api.BuildSpec{Name: "p/web", Push: []string{target, down}, PushCredential: "env:UC_TEST_PUSH_WRONG", DockerfileInline: "FROM scratch\nLABEL v=2\n"})
	if st, err = w.reconcile("p/web"); err != nil || st.Phase != api.BuildSucceeded {
		t.Fatalf("second build: %v, %s", err, st.Phase)
	}
	st, err = w.reconcile("p/web")
	if p := st.Detail.Pushed[target]; p.State != api.PushFailed || !strings.Contains(p.Error, "401") && !strings.Contains(p.Error, "UNAUTHORIZED") {
		t.Errorf("a refused credential: %+v", p)
	}
	if p := st.Detail.Pushed[down]; p.State != api.PushRetrying || err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("an unreachable registry: %+v, outcome %v", p, err)
	}
}

// remoteDigest is what ref resolves to on a registry with basic auth.
func remoteDigest(t *testing.T, ref, user, password string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}
