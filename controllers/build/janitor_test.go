package build

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

// TestJanitorKeepsCurrentAndTrims builds a node's context cache and logs
// on disk and checks what one sweep's rules remove: past the age, then
// the oldest over the size, never the current generation's.
func TestJanitorKeepsCurrentAndTrims(t *testing.T) {
	t.Parallel()
	now := time.Now()
	contexts, logs := t.TempDir(), t.TempDir()
	mk := func(path string, bytes int, age time.Duration) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, bytes), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, filepath.Dir(path)} {
			if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk(filepath.Join(contexts, "cur", "Dockerfile"), 100, 30*24*time.Hour) // in use, however old
	mk(filepath.Join(contexts, "old", "Dockerfile"), 100, 8*24*time.Hour)  // past the age
	mk(filepath.Join(contexts, "big", "Dockerfile"), 900, time.Hour)       // pushes the total over
	mk(filepath.Join(contexts, "new", "Dockerfile"), 100, time.Minute)
	mk(filepath.Join(contexts, ".fetch-1", "x"), 5000, 9*24*time.Hour) // a fetch in progress
	builds := []state.BuildRecord{{Spec: api.BuildSpec{Name: "p/web", ContextRef: "r/uc-contexts/p/web@sha256:cur"}, Meta: state.SpecMeta{Generation: 3}}}
	mk(logPath(logs, "p/web", 3), 10, 40*24*time.Hour)
	mk(logPath(logs, "p/web", 2), 10, 40*24*time.Hour)
	mk(logPath(logs, "p/web", 1), 10, time.Hour)

	keepContexts, keepLogs := inUse(builds, logs)
	removed := func(items []item, keep map[string]bool, ret Retention) []string {
		var out []string
		for _, it := range expired(items, keep, ret, now) {
			out = append(out, filepath.Base(it.path))
		}
		slices.Sort(out)
		return out
	}
	if got := removed(contextItems(contexts), keepContexts, Retention{MaxBytes: 1000, MaxAge: 7 * 24 * time.Hour}); !slices.Equal(got, []string{"big", "old"}) {
		t.Errorf("contexts removed %v, want [big old]", got)
	}
	if got := removed(logItems(logs), keepLogs, Retention{MaxBytes: 1 << 20, MaxAge: 30 * 24 * time.Hour}); !slices.Equal(got, []string{"2.log"}) {
		t.Errorf("logs removed %v, want [2.log]", got)
	}
}
