package buildcontext

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzWalkContext builds a small context from the input (one path per
// line, "name -> target" for a symlink) and a .dockerignore, and walks it:
// no panic, every entry is inside the context and not ignored twice, and
// the digest is stable.
func FuzzWalkContext(f *testing.F) {
	f.Add("Dockerfile\nsrc/main.go\nlogs/a.log\n", "logs\n!logs/keep.log\n")
	f.Add("a\nb/c\nlink -> b/c\n", "*\n!a\n")
	f.Add("x/../y\nup -> ../../etc/passwd\n", "**/*.tmp\n")
	f.Add("deep/er/file\n", "deep/**\n!deep/er\n")
	f.Fuzz(func(t *testing.T, tree, ignore string) {
		dir := t.TempDir()
		if len(tree) > 2048 || len(ignore) > 1024 {
			return
		}
		for _, line := range strings.Split(tree, "\n") {
			name, target, isLink := strings.Cut(line, " -> ")
			path := filepath.Join(dir, filepath.FromSlash(strings.TrimSpace(name)))
			if rel, err := filepath.Rel(dir, path); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				continue
			}
			if os.MkdirAll(filepath.Dir(path), 0o755) != nil {
				continue
			}
			if isLink {
				_ = os.Symlink(target, path)
			} else {
				_ = os.WriteFile(path, []byte(line), 0o644)
			}
		}
		_ = os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644)
		seen := map[string]bool{}
		err := Walk(dir, "", 1<<20, func(path, rel string, _ fs.FileInfo) error {
			if seen[rel] {
				t.Errorf("%s walked twice", rel)
			}
			seen[rel] = true
			if r, err := filepath.Rel(dir, path); err != nil || strings.HasPrefix(r, "..") {
				t.Errorf("%s is outside the context", path)
			}
			return nil
		})
		if err != nil {
			return
		}
		a, errA := Digest(dir, "", 1<<20)
		b, errB := Digest(dir, "", 1<<20)
		if errA != nil || errB != nil || a != b {
			t.Errorf("digest not stable: %s %v, %s %v", a, errA, b, errB)
		}
	})
}
