package registry

import (
	"context"
	"syscall"
	"time"

	"github.com/ucplane/uc/api"
	regserver "github.com/ucplane/uc/registry"
)

// Collection triggers.
const (
	triggerSchedule = "schedule"
	triggerDisk     = "disk"
	triggerRequest  = "request" // uc registry gc
)

// gcDue says why a collection should run now, or "".
func (r *reconciler) gcDue() string {
	if r.cfg.GCInterval > 0 && time.Since(r.lastGC) >= r.cfg.GCInterval {
		return triggerSchedule
	}
	if r.cfg.GCDiskPercent > 0 && diskPercentUsed(r.cfg.DataDir) >= r.cfg.GCDiskPercent {
		return triggerDisk
	}
	return ""
}

// collect runs one collection with the keep set read from state. A
// collection that cannot read state does not run: an incomplete keep set
// would delete images in use.
func (r *reconciler) collect(ctx context.Context, trigger string) {
	r.lastGC = time.Now()
	rec := &api.RegistryGC{Trigger: trigger, StartedAt: r.lastGC}
	keep, err := KeepSet(ctx, r.store)
	if err == nil {
		keep.Grace = r.cfg.GCGrace
		var rep regserver.GCReport
		rep, err = r.srv.Collect(ctx, keep, false)
		rec.StartedAt, rec.Duration, rec.ManifestsRemoved, rec.BlobsRemoved, rec.BytesFreed =
			rep.StartedAt, rep.Duration, len(rep.ManifestsRemoved), rep.BlobsRemoved, rep.BytesFreed
	}
	if err != nil {
		rec.Error = err.Error()
		r.log.Warn("Registry garbage collection failed.", "trigger", trigger, "err", err)
	} else {
		r.log.Info("Registry garbage collected.", "trigger", trigger, "manifests_removed", rec.ManifestsRemoved,
			"blobs_removed", rec.BlobsRemoved, "bytes_freed", rec.BytesFreed, "duration", rec.Duration)
	}
	r.gc = rec
}

// noteRequestedGC publishes a collection someone asked the registry for
// directly (uc registry gc) when it is newer than the last one here.
func (r *reconciler) noteRequestedGC() {
	last := r.srv.LastGC()
	if last == nil || (r.gc != nil && !last.StartedAt.After(r.gc.StartedAt)) {
		return
	}
	r.gc = &api.RegistryGC{Trigger: triggerRequest, StartedAt: last.StartedAt, Duration: last.Duration,
		ManifestsRemoved: len(last.ManifestsRemoved), BlobsRemoved: last.BlobsRemoved, BytesFreed: last.BytesFreed}
}

// diskPercentUsed is how full the filesystem holding dir is, 0 if unknown.
func diskPercentUsed(dir string) int {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil || st.Blocks == 0 {
		return 0
	}
	used := st.Blocks - st.Bfree
	return int(used * 100 / (used + st.Bavail))
}
