package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/embedded"
)

// StateConfig is how the embedded state is served.
type StateConfig struct {
	DataDir string
	Listen  string
	Token   string
	// SchemaPaths are extra schema files or directories of *.sql files,
	// applied after uc's own schema, as Corrosion applies db.schema_paths.
	SchemaPaths []string
}

// OpenEmbedded opens the embedded state with uc's schema (plus any extra
// schema files) and binds its listener. A schema Corrosion would refuse is
// refused here, with the reason.
func OpenEmbedded(ctx context.Context, sc StateConfig, log *slog.Logger) (*embedded.Server, net.Listener, error) {
	extra, err := readSchemaPaths(sc.SchemaPaths)
	if err != nil {
		return nil, nil, err
	}
	ln, err := listen(sc.Listen)
	if err != nil {
		return nil, nil, err
	}
	srv, err := embedded.Open(ctx, embedded.Options{
		DataDir: sc.DataDir, Schema: []string{state.Schema}, Token: sc.Token,
		Logger: log.With("component", "state"),
	})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("open embedded state in %s: %w", sc.DataDir, err)
	}
	for _, f := range extra {
		if err := srv.DB().ApplySchema(ctx, f.sql); err != nil {
			ln.Close()
			srv.DB().Close()
			return nil, nil, fmt.Errorf("schema file %s: %w", f.path, err)
		}
	}
	return srv, ln, nil
}

// schemaFile is one file of db.schema_paths.
type schemaFile struct{ path, sql string }

// readSchemaPaths reads schema files, and the *.sql files of directories in
// name order, as Corrosion reads db.schema_paths.
func readSchemaPaths(paths []string) ([]schemaFile, error) {
	var scripts []schemaFile
	for _, p := range paths {
		files, err := schemaFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read schema: %w", err)
			}
			scripts = append(scripts, schemaFile{f, string(b)})
		}
	}
	return scripts, nil
}

func schemaFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("schema path: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	files, err := filepath.Glob(filepath.Join(path, "*.sql"))
	slices.Sort(files)
	return files, err
}

// LockDataDir takes an exclusive lock on the data dir, so that two processes
// never serve the same state database.
func LockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "state.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another ucd (state.lock is held)", dir)
	}
	return f, nil
}
