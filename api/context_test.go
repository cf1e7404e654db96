package api

import (
	"os"
	"path/filepath"
	"testing"
)

func TestContextDigest(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"Dockerfile":    "FROM busybox\nCOPY . /app\n",
		"main.go":       "package main\n",
		"logs/a.log":    "noise\n",
		"keep/x.txt":    "x\n",
		".dockerignore": "logs\n*.tmp\n",
	}
	digest := func(t *testing.T, files map[string]string, edit func(dir string)) string {
		t.Helper()
		dir := writeFiles(t, files)
		if edit != nil {
			edit(dir)
		}
		d, err := ContextDigest(dir, "Dockerfile")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	write := func(name, body string) func(string) {
		return func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := digest(t, base, nil)
	tests := []struct {
		name    string
		edit    func(dir string)
		changed bool
	}{
		{"same content in another dir", nil, false},
		{"ignored file edited", write("logs/a.log", "other noise\n"), false},
		{"ignored pattern added", write("scratch.tmp", "tmp\n"), false},
		{"source edited", write("main.go", "package main // v2\n"), true},
		{"file added", write("keep/y.txt", "y\n"), true},
		{"dockerfile edited", write("Dockerfile", "FROM busybox\n"), true},
		{"mode changed", func(dir string) { _ = os.Chmod(filepath.Join(dir, "main.go"), 0o755) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := digest(t, base, tt.edit)
			if (got != want) != tt.changed {
				t.Errorf("digest changed = %v, want %v", got != want, tt.changed)
			}
		})
	}
}

func TestContextDigestMissingDockerfile(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"main.go": "package main\n"})
	if _, err := ContextDigest(dir, "Dockerfile"); err == nil {
		t.Fatal("want an error for a context without its Dockerfile")
	}
}

func TestIsGitContext(t *testing.T) {
	t.Parallel()
	for ctx, want := range map[string]bool{
		"https://github.com/docker/buildx.git#main:docs": true,
		"git@github.com:docker/buildx.git":               true,
		"https://example.com/repo.git":                   true,
		"./app":                                          false,
		"/abs/app":                                       false,
		"https://example.com/context.tar.gz":             false,
	} {
		if got := IsGitContext(ctx); got != want {
			t.Errorf("IsGitContext(%q) = %v, want %v", ctx, got, want)
		}
	}
}
