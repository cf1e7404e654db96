package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/embedded"
)

// OpenEmbedded opens the embedded state in dataDir with uc's schema and
// binds its listener.
func OpenEmbedded(ctx context.Context, dataDir, addr, token string, log *slog.Logger) (*embedded.Server, net.Listener, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, nil, err
	}
	srv, err := embedded.Open(ctx, embedded.Options{
		DataDir: dataDir, Schema: []string{state.Schema}, Token: token, Logger: log.With("component", "state"),
	})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("open embedded state in %s: %w", dataDir, err)
	}
	return srv, ln, nil
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
