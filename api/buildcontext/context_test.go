package buildcontext

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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
		d, err := Digest(dir, "Dockerfile", 0)
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
	if _, err := Digest(dir, "Dockerfile", 0); err == nil {
		t.Fatal("want an error for a context without its Dockerfile")
	}
}

func TestContextRefusals(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n", "big.bin": strings.Repeat("x", 4096)})
	if _, err := Digest(dir, "Dockerfile", 1024); err == nil || !strings.Contains(err.Error(), "larger than the 1024-byte limit") {
		t.Errorf("oversized context: got %v", err)
	}
	if err := os.Symlink("../../etc/passwd", filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if _, err := Digest(dir, "Dockerfile", 0); err == nil || !strings.Contains(err.Error(), "escape is a symlink to ../../etc/passwd, outside the context") {
		t.Errorf("escaping symlink: got %v", err)
	}
	inside := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n", "a/b.txt": "b\n"})
	if err := os.Symlink("../a/b.txt", filepath.Join(inside, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Digest(inside, "Dockerfile", 0); err != nil {
		t.Errorf("a symlink inside the context was refused: %v", err)
	}
}

// TestContextThroughSymlink follows a link at the context's root, as
// docker build does: the linked tree is hashed, so an edit behind the link
// changes the digest (it used to hash an empty context).
func TestContextThroughSymlink(t *testing.T) {
	t.Parallel()
	real := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n", "app.txt": "v1\n"})
	link := filepath.Join(t.TempDir(), "ctx")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	viaLink, err := Digest(link, "Dockerfile", 0)
	if err != nil {
		t.Fatal(err)
	}
	direct, _ := Digest(real, "Dockerfile", 0)
	if viaLink != direct {
		t.Errorf("digest through the link %s, directly %s: want the same tree", viaLink, direct)
	}
	var files []string
	_ = Walk(link, "Dockerfile", 0, func(_, rel string, _ fs.FileInfo) error {
		files = append(files, rel)
		return nil
	})
	if !slices.Equal(files, []string{"Dockerfile", "app.txt"}) {
		t.Errorf("walked %v through the link, want [Dockerfile app.txt]", files)
	}
	if err := os.WriteFile(filepath.Join(real, "app.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if edited, _ := Digest(link, "Dockerfile", 0); edited == viaLink {
		t.Error("an edit behind the link did not change the digest")
	}
}

func TestContextIsAFile(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	_, err := Digest(filepath.Join(dir, "Dockerfile"), "Dockerfile", 0)
	if err == nil || !strings.Contains(err.Error(), "is a file: the context must be a directory") {
		t.Errorf("got %v, want the context must be a directory", err)
	}
}

// writeFiles creates files (path relative to a fresh temp dir, mode 0644
// under the usual umask) and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body), Mode: 0o644}
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, fsys); err != nil {
		t.Fatal(err)
	}
	return dir
}
