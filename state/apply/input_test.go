package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ucplane/uc/api/compose"
)

func TestBakeOrCompose(t *testing.T) {
	t.Parallel()
	write := func(dir string, files ...string) {
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	both, bakeOnly, none := t.TempDir(), t.TempDir(), t.TempDir()
	write(both, "compose.yaml", "docker-bake.hcl")
	write(bakeOnly, "docker-bake.hcl", "docker-bake.override.json")
	for _, tt := range []struct {
		name  string
		opts  compose.LoadOptions
		bake  bool
		error string
	}{
		{"a Compose file is found first", compose.LoadOptions{WorkingDir: both}, false, ""},
		{"Bake's lookup when no Compose file", compose.LoadOptions{WorkingDir: bakeOnly}, true, ""},
		{"nothing: Compose reports it", compose.LoadOptions{WorkingDir: none}, false, ""},
		{"-f names Bake files", compose.LoadOptions{Files: []string{"a.hcl", "docker-bake.json"}}, true, ""},
		{"-f names a Compose file", compose.LoadOptions{Files: []string{"compose.yaml"}}, false, ""},
		{"mixed", compose.LoadOptions{Files: []string{"compose.yaml", "docker-bake.hcl"}}, false, "-f names both Compose and Bake files"},
	} {
		got, err := Options{Compose: tt.opts}.isBake()
		switch {
		case tt.error != "" && (err == nil || !strings.Contains(err.Error(), tt.error)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.error)
		case tt.error == "" && (err != nil || got != tt.bake):
			t.Errorf("%s: bake %v, %v; want %v", tt.name, got, err, tt.bake)
		}
	}
	_, err := loadSpecs(context.Background(), Options{Compose: compose.LoadOptions{WorkingDir: both}, Targets: []string{"web"}})
	if err == nil || !strings.Contains(err.Error(), "target and group arguments are for Bake files") {
		t.Errorf("targets with a Compose file: %v", err)
	}
}
