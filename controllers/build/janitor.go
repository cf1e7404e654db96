package build

import (
	"cmp"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ucplane/uc/state"
)

// The janitor bounds what a builder node keeps on disk for builds: the
// contexts it fetched from the registry (<data-dir>/contexts, one
// directory per context digest) and every generation's build log. Each
// is trimmed by age, then by total size, oldest first; what the current
// generation of a build uses is always kept.

// Retention bounds one kind of item; zero fields take the defaults.
type Retention struct {
	MaxBytes int64
	MaxAge   time.Duration
}

// Default retention.
var (
	DefaultContextRetention = Retention{MaxBytes: 5 << 30, MaxAge: 7 * 24 * time.Hour}
	DefaultLogRetention     = Retention{MaxBytes: 1 << 30, MaxAge: 30 * 24 * time.Hour}
)

// janitorEvery is how often the janitor sweeps.
const janitorEvery = 10 * time.Minute

// item is one thing on disk the janitor may remove.
type item struct {
	path  string
	bytes int64
	mod   time.Time
}

// Janitor returns the node's janitor: it sweeps at start and every
// janitorEvery until ctx ends.
func Janitor(read state.Reader, cfg Config, contexts, logs Retention, log *slog.Logger) func(context.Context) error {
	log = log.With("controller", "build-janitor")
	return func(ctx context.Context) error {
		t := time.NewTicker(janitorEvery)
		defer t.Stop()
		for {
			sweep(ctx, read, cfg, contexts, logs, time.Now(), log)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
}

// sweep trims both kinds once.
func sweep(ctx context.Context, read state.Reader, cfg Config, contexts, logs Retention, now time.Time, log *slog.Logger) {
	builds, err := read.ListBuilds(ctx, "")
	if err != nil {
		log.Warn("Cannot list builds; not sweeping.", "err", err)
		return
	}
	keepContexts, keepLogs := inUse(builds, cfg.LogDir)
	for _, kind := range []struct {
		what  string
		items []item
		keep  map[string]bool
		ret   Retention
	}{
		{"context", contextItems(cfg.ContextCacheDir), keepContexts, withDefaults(contexts, DefaultContextRetention)},
		{"build log", logItems(cfg.LogDir), keepLogs, withDefaults(logs, DefaultLogRetention)},
	} {
		for _, it := range expired(kind.items, kind.keep, kind.ret, now) {
			if err := os.RemoveAll(it.path); err != nil {
				log.Warn("Cannot remove.", "what", kind.what, "path", it.path, "err", err)
				continue
			}
			log.Info("Removed.", "what", kind.what, "path", it.path, "bytes", it.bytes, "age", now.Sub(it.mod).Round(time.Second))
		}
	}
}

func withDefaults(r, def Retention) Retention {
	return Retention{MaxBytes: cmp.Or(r.MaxBytes, def.MaxBytes), MaxAge: cmp.Or(r.MaxAge, def.MaxAge)}
}

// inUse names what the current generation of every build uses: its
// shipped contexts' directories and its newest log.
func inUse(builds []state.BuildRecord, logDir string) (contexts, logs map[string]bool) {
	contexts, logs = map[string]bool{}, map[string]bool{}
	for _, b := range builds {
		for _, ref := range b.Spec.ShippedContexts() {
			if _, dg, ok := strings.Cut(ref, "@sha256:"); ok {
				contexts[dg] = true
			}
		}
		logs[logPath(logDir, b.Spec.Name, b.Meta.Generation)] = true
	}
	return contexts, logs
}

// expired lists the items to remove: past the age, then the oldest while
// the rest is over the size; kept ones count toward the size but stay.
func expired(items []item, keep map[string]bool, ret Retention, now time.Time) []item {
	slices.SortFunc(items, func(a, b item) int { return a.mod.Compare(b.mod) })
	var total int64
	for _, it := range items {
		total += it.bytes
	}
	var out []item
	for _, it := range items {
		if keep[it.path] || keep[filepath.Base(it.path)] {
			continue
		}
		if now.Sub(it.mod) > ret.MaxAge || total > ret.MaxBytes {
			out = append(out, it)
			total -= it.bytes
		}
	}
	return out
}

// contextItems are the fetched contexts, one directory per digest; a
// context's time is when a build last used it (fetch touches it).
func contextItems(dir string) []item {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []item
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") { // .fetch-* is a fetch in progress
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		out = append(out, item{path: p, bytes: treeBytes(p), mod: info.ModTime()})
	}
	return out
}

// logItems are the build logs, one file per build generation.
func logItems(dir string) []item {
	var out []item
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".log") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			out = append(out, item{path: p, bytes: info.Size(), mod: info.ModTime()})
		}
		return nil
	})
	return out
}

func treeBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
