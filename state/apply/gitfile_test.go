package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/api/compose"
	"github.com/ucplane/uc/test/harness/gitserver"
)

// TestComposeFileFromGit loads a Compose file named by a git URL: its
// relative context is the repository's at that commit, in a checkout whose
// paths stay put, so that a new commit changes the context digest only.
func TestComposeFileFromGit(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	srv := gitserver.Start(t, "")
	repo := srv.NewRepo(t, "site", map[string]string{
		"deploy/compose.yaml": "name: fromgit\nservices:\n  web:\n    build: ../app\n",
		"app/Dockerfile":      "FROM busybox\nCOPY msg /msg\n",
		"app/msg":             "v1\n",
	})
	ctx := context.Background()
	load := func() (context, digest, origin string) {
		t.Helper()
		p, err := Load(ctx, Options{Compose: compose.LoadOptions{Files: []string{repo.URL + "#main:deploy/compose.yaml"}, MaxContextSize: 1 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		return p.Builds[0].Context, p.Builds[0].ContextDigest, p.Origin
	}
	ctx1, digest1, origin := load()
	if !strings.HasSuffix(ctx1, "/app") || !strings.Contains(origin, repo.URL) || !strings.Contains(origin, "deploy/compose.yaml") {
		t.Errorf("context %s, origin %s", ctx1, origin)
	}
	repo.Commit(map[string]string{"app/msg": "v2\n"}, "v2")
	repo.Push("main")
	if ctx2, digest2, _ := load(); ctx2 != ctx1 || digest2 == digest1 {
		t.Errorf("after a new commit: context %s (was %s), digest moved: %v", ctx2, ctx1, digest2 != digest1)
	}
	for file, want := range map[string]string{
		repo.URL + "#main":                     "name the file inside the repository",
		repo.URL + "#main:deploy/nothere.yml":  "deploy/nothere.yml is not in " + repo.URL + " at main",
		repo.URL + "#gone:deploy/compose.yaml": "check out gone of " + repo.URL,
	} {
		if _, err := Load(ctx, Options{Compose: compose.LoadOptions{Files: []string{file}}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("-f %s: %v, want %q", file, err, want)
		}
	}
}

// TestBuildOnOverride: uc apply --build local|cluster overrides every
// build's x-uc-build; anything else is refused.
func TestBuildOnOverride(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"compose.yaml": "name: on\nservices:\n  a:\n    build: .\n    x-uc-build: local\n  b:\n    build: .\n", "Dockerfile": "FROM busybox\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{filepath.Join(dir, "compose.yaml")}
	for on, want := range map[string][2]string{"": {"local", ""}, "local": {"local", "local"}, "cluster": {"", ""}} {
		p, err := Load(context.Background(), Options{Compose: compose.LoadOptions{Files: files, MaxContextSize: 1 << 20}, BuildOn: on})
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]string{p.Builds[0].BuildOn, p.Builds[1].BuildOn}; got != want {
			t.Errorf("--build %q: %v, want %v", on, got, want)
		}
	}
	if _, err := Load(context.Background(), Options{Compose: compose.LoadOptions{Files: files}, BuildOn: "laptop"}); err == nil || !strings.Contains(err.Error(), `--build "laptop"`) {
		t.Errorf("--build laptop: %v", err)
	}
}
