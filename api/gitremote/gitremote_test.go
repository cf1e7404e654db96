package gitremote

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ucplane/uc/test/harness/gitserver"
)

func TestRepoKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://github.com/me/app.git", "github.com/me/app"},
		{"https://GitHub.com/me/app", "github.com/me/app"},
		{"https://user:pw@gitea.local:3000/me/app.git/", "gitea.local/me/app"},
		{"git@github.com:me/app.git", "github.com/me/app"},
		{"ssh://git@github.com:22/me/app.git", "github.com/me/app"},
		{"git://127.0.0.1:9418/repo.git", "127.0.0.1/repo"},
		{"github.com/me/app", "github.com/me/app"},
		{"https://github.com/me/app.git#main:sub", "github.com/me/app"},
	} {
		if got := RepoKey(tc.in); got != tc.want {
			t.Errorf("RepoKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPick(t *testing.T) {
	out := "aaaa\tHEAD\nbbbb\trefs/heads/main\ncccc\trefs/tags/v1\ndddd\trefs/tags/v1^{}\n"
	for ref, want := range map[string]string{"main": "bbbb", "v1": "dddd", "HEAD": "aaaa", "refs/heads/main": "bbbb"} {
		if got, err := pick(out, "u", ref); err != nil || got != want {
			t.Errorf("pick(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	var noRef *NoRefError
	if _, err := pick(out, "u", "gone"); !errors.As(err, &noRef) || noRef.Ref != "gone" {
		t.Errorf("a missing ref gave %v", err)
	}
}

func TestCheckCredentialRef(t *testing.T) {
	for ref, ok := range map[string]bool{"env:TOKEN": true, "ssh:default": true, "ssh:/root/.ssh/id": true, "env:": false, "ghp_abc123": false, "docker-config:/x": false} {
		if err := CheckCredentialRef(ref); (err == nil) != ok {
			t.Errorf("CheckCredentialRef(%q) = %v", ref, err)
		}
	}
}

func TestTokenFromEnv(t *testing.T) {
	t.Setenv("UC_TEST_GIT_TOKEN", "s3cret")
	env, err := GitEnv("env:UC_TEST_GIT_TOKEN")
	if err != nil || len(env) != 3 || env[2] != "GIT_CONFIG_VALUE_0=Authorization: basic eC1hY2Nlc3MtdG9rZW46czNjcmV0" {
		t.Errorf("credentialEnv = %v, %v", env, err)
	}
	if _, err := GitEnv("env:UC_TEST_UNSET_VAR"); err == nil {
		t.Error("an unset variable was accepted")
	}
}

// TestResolveOverSmartHTTP asks a real git server (smart HTTP behind a
// token) for a branch: with the token, without it, and for a branch that
// was deleted.
func TestResolveOverSmartHTTP(t *testing.T) {
	srv := gitserver.Start(t, "t0ken")
	repo := srv.NewRepo(t, "app", map[string]string{"Dockerfile": "FROM busybox\n"})
	t.Setenv("UC_TEST_GIT_TOKEN", "t0ken")
	ctx := context.Background()
	got, err := Resolve(ctx, repo.URL, "main", "env:UC_TEST_GIT_TOKEN")
	if err != nil || got != repo.Head() {
		t.Fatalf("Resolve = %q, %v; want %s", got, err, repo.Head())
	}
	if _, err := Resolve(ctx, repo.URL, "main", ""); err == nil || !strings.Contains(err.Error(), repo.URL) {
		t.Errorf("without the token: %v", err)
	}
	t.Setenv("UC_TEST_GIT_TOKEN", "wrong")
	if _, err := Resolve(ctx, repo.URL, "main", "env:UC_TEST_GIT_TOKEN"); err == nil {
		t.Error("a wrong token was accepted")
	}
	t.Setenv("UC_TEST_GIT_TOKEN", "t0ken")
	repo.Commit(nil, "on topic")
	repo.Push("topic")
	repo.DeleteBranch("topic")
	var noRef *NoRefError
	if _, err := Resolve(ctx, repo.URL, "topic", "env:UC_TEST_GIT_TOKEN"); !errors.As(err, &noRef) {
		t.Errorf("a deleted branch gave %v, want a NoRefError", err)
	}
}
