package bake

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: a Bake file of any content gives targets or an error from
// Bake's HCL engine and uc's resolution, never a panic.
func FuzzParse(f *testing.F) {
	f.Add(seedTree, "leaves")
	f.Add(`target "a" { inherits = ["a"] }`, "a")
	f.Add(`variable "X" { default = "y" }
target "t" {
  name = "t-${v}"
  matrix = { v = ["1", X] }
  contexts = { b = "target:t-1" }
}`, "t")
	f.Add(`{"target": {"a": {"context": "."}}}`, "a")
	f.Fuzz(func(t *testing.T, body, name string) {
		dir := t.TempDir()
		for _, file := range []string{"docker-bake.hcl", "docker-bake.json"} {
			path := filepath.Join(dir, file)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if c, err := parse([]string{path}, func(string) (string, bool) { return "", false }); err == nil {
				_, _ = c.resolve([]string{name})
			}
		}
	})
}
