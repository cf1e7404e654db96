package contextstore_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/contextstore"
	"github.com/ucplane/uc/registry/registrytest"
)

// startRegistry serves a real distribution/v3 registry on a free port.
func startRegistry(t *testing.T) string {
	t.Helper()
	return registrytest.Serve(t, registry.Config{})
}

func write(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func TestPushFetchRoundTrip(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "Dockerfile"), "FROM busybox\n", 0o644)
	write(t, filepath.Join(src, "bin", "run.sh"), "#!/bin/sh\necho hi\n", 0o755)
	write(t, filepath.Join(src, "a.txt"), "same\n", 0o644)
	write(t, filepath.Join(src, "b.txt"), "same\n", 0o644) // same content: one piece
	write(t, filepath.Join(src, "skip.log"), "noise\n", 0o644)
	write(t, filepath.Join(src, ".dockerignore"), "*.log\n", 0o644)
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	c := contextstore.New(reg)
	ref, st, err := c.Push(context.Background(), "uc-contexts/p/web", src, "Dockerfile", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Uploaded != st.Pieces || st.Pieces != 5 { // Dockerfile, run.sh, same, .dockerignore, index
		t.Errorf("first push: %+v, want 5 pieces all uploaded", st)
	}
	again, st2, err := c.Push(context.Background(), "uc-contexts/p/web", src, "Dockerfile", 0)
	if err != nil || again != ref || st2.Uploaded != 0 {
		t.Errorf("unchanged push: ref %s (was %s), %+v, %v; want the same ref and nothing uploaded", again, ref, st2, err)
	}
	write(t, filepath.Join(src, "a.txt"), "changed\n", 0o644)
	_, st3, err := c.Push(context.Background(), "uc-contexts/p/web", src, "Dockerfile", 0)
	if err != nil || st3.Uploaded != 2 || st3.BytesUploaded > 2048 {
		t.Errorf("one-file change: %+v, %v; want the file and the index only", st3, err)
	}

	dir, err := contextstore.Fetch(context.Background(), http.DefaultClient, ref, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"a.txt": "same\n", "b.txt": "same\n", "bin/run.sh": "#!/bin/sh\necho hi\n"} {
		got, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "bin", "run.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("run.sh mode %v, %v; want 0755", info.Mode(), err)
	}
	if link, err := os.Readlink(filepath.Join(dir, "link")); err != nil || link != "a.txt" {
		t.Errorf("link -> %q, %v", link, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "skip.log")); !os.IsNotExist(err) {
		t.Error(".dockerignore'd file was shipped")
	}
	// BuildKit re-sends a local file only when its size, mode or mtime
	// changed: the same content gets one time, other content another.
	mtime := func(path string) time.Time {
		info, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime()
	}
	if a, b, df := mtime("a.txt"), mtime("b.txt"), mtime("Dockerfile"); !a.Equal(b) || a.Equal(df) {
		t.Errorf("mtimes a.txt %v, b.txt %v, Dockerfile %v: want equal for the same content, different otherwise", a, b, df)
	}
}

func TestFetchRefusesTamperedPieces(t *testing.T) {
	t.Parallel()
	reg := startRegistry(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "Dockerfile"), "FROM busybox\n", 0o644)
	ref, _, err := contextstore.New(reg).Push(context.Background(), "uc-contexts/p/x", src, "Dockerfile", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The same repository and a digest nobody uploaded: nothing to verify against.
	bad := ref[:strings.LastIndex(ref, ":")+1] + strings.Repeat("0", 64)
	if _, err := contextstore.Fetch(context.Background(), http.DefaultClient, bad, t.TempDir()); err == nil {
		t.Error("fetching an unknown context succeeded")
	}
	if _, err := contextstore.Fetch(context.Background(), http.DefaultClient, "no-digest-here", t.TempDir()); err == nil {
		t.Error("a malformed reference was accepted")
	}
}
