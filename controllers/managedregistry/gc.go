package managedregistry

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/gckeep"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

// Collection triggers.
const (
	triggerSchedule = "schedule"
	triggerDisk     = "disk"
	triggerRequest  = "request" // uc registry gc
)

// gcTarget is a registry that collects garbage: served in this process or
// in the registry container, over HTTP.
type gcTarget interface {
	Collect(ctx context.Context, keep regclient.KeepSet, dryRun bool) (regclient.GCReport, error)
	LastGC(ctx context.Context) *regclient.GCReport
}

// gcKeeper runs collections when they are due and remembers the last one
// for the registry's status.
type gcKeeper struct {
	store   *state.Store
	cfg     Config
	log     *slog.Logger
	target  gcTarget
	lastRun time.Time       // last collection this keeper started
	last    *api.RegistryGC // last collection, as published
	// pressureGrace is the grace of the last disk-triggered collection, 0
	// when the disk is not full: it shrinks while collections leave the
	// disk full, so that what nothing references goes first.
	pressureGrace time.Duration
}

// MinPressureGrace is the shortest grace under disk pressure: a build's
// push stays unreferenced for the moments until its status is written.
const MinPressureGrace = 5 * time.Minute

func newGCKeeper(store *state.Store, cfg Config, log *slog.Logger, target gcTarget) *gcKeeper {
	return &gcKeeper{store: store, cfg: cfg, log: log, target: target, lastRun: time.Now()}
}

// tick collects if due, and picks up collections others asked for.
func (k *gcKeeper) tick(ctx context.Context) {
	if trigger := k.due(); trigger != "" {
		k.collect(ctx, trigger)
	}
	k.noteRequested(ctx)
}

// due says why a collection should run now, or "".
func (k *gcKeeper) due() string {
	if k.cfg.GCInterval > 0 && time.Since(k.lastRun) >= k.cfg.GCInterval {
		return triggerSchedule
	}
	if k.cfg.GCDiskPercent > 0 && diskPercentUsed(k.cfg.DataDir) >= k.cfg.GCDiskPercent {
		return triggerDisk
	}
	k.pressureGrace = 0
	return ""
}

// grace is what a collection keeps new content for: the configured grace,
// or under disk pressure half the last one, down to MinPressureGrace.
func (k *gcKeeper) grace(trigger string) time.Duration {
	base := k.cfg.GCGrace // a configured zero means zero
	if trigger != triggerDisk {
		return base
	}
	k.pressureGrace = max(cmp.Or(k.pressureGrace, base)/2, min(base, MinPressureGrace))
	return k.pressureGrace
}

// collect runs one collection with the keep set read from state. A
// collection that cannot read state does not run: an incomplete keep set
// would delete images in use.
func (k *gcKeeper) collect(ctx context.Context, trigger string) {
	k.lastRun = time.Now()
	rec := &api.RegistryGC{Trigger: trigger, StartedAt: k.lastRun}
	keep, err := gckeep.FromState(ctx, k.store)
	if err == nil {
		grace := k.grace(trigger)
		keep.Grace = &grace
		if trigger == triggerDisk {
			// Abandoned uploads go first: only those no client sends.
			keep.UploadAge = registry.DefaultUploadIdle
		}
		var rep regclient.GCReport
		if rep, err = k.target.Collect(ctx, keep, false); err == nil {
			rec = summary(trigger, rep)
		}
	}
	if err != nil {
		rec.Error = err.Error()
		k.log.Warn("Registry garbage collection failed.", "trigger", trigger, "err", err)
	} else {
		k.log.Info("Registry garbage collected.", "trigger", trigger, "manifests_removed", rec.ManifestsRemoved,
			"blobs_removed", rec.BlobsRemoved, "bytes_freed", rec.BytesFreed, "duration", rec.Duration)
	}
	k.last = rec
}

// noteRequested publishes a collection someone asked the registry for
// directly (uc registry gc) when it is newer than the last one here.
func (k *gcKeeper) noteRequested(ctx context.Context) {
	last := k.target.LastGC(ctx)
	if last == nil || (k.last != nil && !last.StartedAt.After(k.last.StartedAt)) {
		return
	}
	k.last = summary(triggerRequest, *last)
}

// summary is a collection's report as the registry's status shows it.
func summary(trigger string, rep regclient.GCReport) *api.RegistryGC {
	return &api.RegistryGC{Trigger: trigger, StartedAt: rep.StartedAt, Duration: rep.Duration,
		ManifestsRemoved: len(rep.ManifestsRemoved), BlobsRemoved: rep.BlobsRemoved, BytesFreed: rep.BytesFreed,
		Grace: rep.Grace, KeptReferencedBytes: rep.KeptReferencedBytes, KeptYoungBytes: rep.KeptYoungBytes,
		UploadsPurged: rep.UploadsPurged, UploadBytesFreed: rep.UploadBytesFreed}
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

// inProcess is a registry served by this ucd.
type inProcess struct{ srv *registry.Server }

func (p inProcess) Collect(ctx context.Context, keep regclient.KeepSet, dryRun bool) (regclient.GCReport, error) {
	return p.srv.Collect(ctx, keep, dryRun)
}

func (p inProcess) LastGC(context.Context) *regclient.GCReport { return p.srv.LastGC() }

// overHTTP is a registry in its container, reached at addr.
type overHTTP struct {
	client *http.Client
	addr   string
}

func (h overHTTP) Collect(ctx context.Context, keep regclient.KeepSet, dryRun bool) (regclient.GCReport, error) {
	return regclient.RequestGC(ctx, h.client, h.addr, keep, dryRun)
}

func (h overHTTP) LastGC(ctx context.Context) *regclient.GCReport {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+strings.TrimPrefix(h.addr, "http://")+"/uc/v1/gc", nil)
	if err != nil {
		return nil
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rep regclient.GCReport
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&rep) != nil {
		return nil
	}
	return &rep
}
