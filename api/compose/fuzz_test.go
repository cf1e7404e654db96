package api

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadCompose feeds arbitrary Compose files through the whole
// translation: it must never panic, and whatever it accepts must be specs
// that validate, with image references the registry accepts.
func FuzzLoadCompose(f *testing.F) {
	for _, seed := range []string{
		"name: p\nservices:\n  web:\n    build: .\n",
		"name: p\nservices:\n  Web:\n    build: {context: ., tags: [p/x:1], cache_to: [\"type=registry,ref=p/c,mode=min\"]}\n    platform: linux/arm64\n",
		"name: p\nservices:\n  a:\n    build: {context: ., additional_contexts: {x: \"service:b\"}}\n  b:\n    build: .\n    image: acme/b\n  c:\n    image: acme/b\n",
		"name: p\nservices:\n  web:\n    image: busybox\n    x-machines: [n1, n2]\n    deploy: {placement: {constraints: [\"node.labels.zone == a\"]}}\n",
		"name: p\nservices:\n  web:\n    image: \"nginx:\"\n",
		"name: p\nservices:\n  web:\n    build: .\n    x-uc-bulder: n1\n    x-uc-keep-builds: 2\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, compose string) {
		// A context outside the temporary directory would hash this
		// machine's files (/ or /proc) and stall the fuzzer, not find bugs.
		for _, outside := range []string{"..", ": /", "- /", "[/", "{/", ":/", "~"} {
			if strings.Contains(compose, outside) {
				return
			}
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := LoadCompose(context.Background(), LoadOptions{
			Files: []string{filepath.Join(dir, "compose.yaml")}, MaxContextSize: 1 << 20,
			Env: map[string]string{"COMPOSE_PROJECT_NAME": "", "COMPOSE_PROFILES": ""},
		})
		if err != nil {
			return
		}
		for _, b := range p.Builds {
			if err := b.Validate(); err != nil {
				t.Errorf("accepted build %s does not validate: %v", b.Name, err)
			}
			if err := CheckReference(b.Image); err != nil {
				t.Errorf("accepted build %s pushes an invalid name: %v", b.Name, err)
			}
		}
		for _, img := range p.Images {
			if err := img.Validate(); err != nil {
				t.Errorf("accepted image %s does not validate: %v", img.Name, err)
			}
		}
	})
}

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
		err := WalkContext(dir, "", 1<<20, func(path, rel string, _ fs.FileInfo) error {
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
		a, errA := ContextDigest(dir, "", 1<<20)
		b, errB := ContextDigest(dir, "", 1<<20)
		if errA != nil || errB != nil || a != b {
			t.Errorf("digest not stable: %s %v, %s %v", a, errA, b, errB)
		}
	})
}
