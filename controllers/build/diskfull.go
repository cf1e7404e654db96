package build

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/docker/go-units"
	"google.golang.org/grpc/status"

	"github.com/ucplane/uc/state/corrosion"
)

// A full disk fails a build in ways that do not say so: a registry on a
// full disk fails a push with "invalid content range", and the state API
// answers a write with SQLite's "database or disk is full". A build that
// failed for a full disk is worth retrying once space returns, and its
// status says the disk is full.

// Texts for the cases where no type crosses the wire. sqliteFullText is
// sqlite3_errstr(SQLITE_FULL), which both Corrosion and the embedded state
// put in an API error's message: the code itself does not cross the API.
// BuildKit's gRPC errors carry ENOSPC only as its strerror text.
const (
	sqliteFullText = "database or disk is full"
	enospcText     = "no space left on device"
)

// nearlyFullPercent is how little free space, as a share of the disk,
// counts as full: a push that filled a disk leaves a few blocks over.
const nearlyFullPercent = 2

// diskFullError is a failure that a full disk caused.
type diskFullError struct {
	where string // "on node1 (data dir /var/lib/uc: 12KiB of 4MiB free)"
	err   error
}

func (e *diskFullError) Error() string { return "disk full " + e.where + ": " + e.err.Error() }
func (e *diskFullError) Unwrap() error { return e.err }

// IsDiskFull reports whether err says a disk is full: ENOSPC by type, or
// the state API's or BuildKit's message for it where only text crosses.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	var dfe *diskFullError
	if errors.As(err, &dfe) || errors.Is(err, syscall.ENOSPC) {
		return true
	}
	var apiErr *corrosion.APIError
	if errors.As(err, &apiErr) && strings.Contains(apiErr.Message, sqliteFullText) {
		return true
	}
	if s, ok := status.FromError(err); ok && strings.Contains(s.Message(), enospcText) {
		return true
	}
	return false
}

// diskFull marks err as caused by a full disk, and so worth retrying, when
// its type says so or this node's data dir is (nearly) full: a registry
// served from that dir fails pushes without naming the cause.
func (r *Reconciler) diskFull(err error) error {
	if err == nil {
		return nil
	}
	free, size, known := diskSpace(r.cfg.DataDir)
	full := known && (free == 0 || free*100/size < nearlyFullPercent)
	if !IsDiskFull(err) && !full {
		return err
	}
	where := "on " + r.cfg.Node
	if known {
		where += fmt.Sprintf(" (data dir %s: %s of %s free)", r.cfg.DataDir, units.BytesSize(float64(free)), units.BytesSize(float64(size)))
	}
	return transient(&diskFullError{where: where, err: err})
}

// diskSpace is the free and total bytes of the filesystem holding dir.
func diskSpace(dir string) (free, size uint64, ok bool) {
	var st syscall.Statfs_t
	if dir == "" || syscall.Statfs(dir, &st) != nil || st.Blocks == 0 {
		return 0, 0, false
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), true
}
