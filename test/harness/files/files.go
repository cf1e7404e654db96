// Package files writes trees of test files. It imports nothing of uc, so
// every package's tests can use it.
package files

import (
	"os"
	"path/filepath"
	"testing"
)

// Write creates each file (a path relative to dir, parents made as
// needed) with its body, and returns dir.
func Write(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
