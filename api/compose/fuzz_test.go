package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/api"
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
		p, err := Load(context.Background(), LoadOptions{
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
			if err := api.CheckReference(b.Image); err != nil {
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
