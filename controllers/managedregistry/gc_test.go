package managedregistry

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state/statetest"
)

// graceRecorder is a registry that records the grace of each collection.
type graceRecorder struct{ graces, uploadAges []time.Duration }

func (g *graceRecorder) Collect(_ context.Context, keep regclient.KeepSet, _ bool) (regclient.GCReport, error) {
	g.graces = append(g.graces, keep.GraceOrDefault())
	g.uploadAges = append(g.uploadAges, keep.UploadAge)
	return regclient.GCReport{Grace: keep.GraceOrDefault()}, nil
}

func (g *graceRecorder) LastGC(context.Context) *regclient.GCReport { return nil }

// TestGracesShrinkUnderDiskPressure: while the disk stays over the
// threshold, each disk-triggered collection halves the grace, down to
// MinPressureGrace; once it is under, the configured grace is back. Before,
// every collection kept the whole hour and freed nothing.
func TestGracesShrinkUnderDiskPressure(t *testing.T) {
	srv := statetest.Start(t)
	rec := &graceRecorder{}
	k := newGCKeeper(srv.Store, Config{DataDir: t.TempDir(), GCDiskPercent: 1, GCGrace: time.Hour}, slog.New(slog.DiscardHandler), rec)
	ctx := context.Background()
	for range 5 {
		k.tick(ctx)
	}
	k.cfg.GCDiskPercent = 101 // the disk is no longer full
	k.tick(ctx)
	k.cfg.GCDiskPercent = 1
	k.tick(ctx)
	want := []time.Duration{30 * time.Minute, 15 * time.Minute, 450 * time.Second, MinPressureGrace, MinPressureGrace, 30 * time.Minute}
	if len(rec.graces) != len(want) {
		t.Fatalf("graces %v, want %v", rec.graces, want)
	}
	for i := range want {
		if rec.graces[i] != want[i] {
			t.Errorf("graces %v, want %v", rec.graces, want)
			break
		}
	}
	if rec.uploadAges[0] != registry.DefaultUploadIdle {
		t.Errorf("upload age under pressure %v, want %v: abandoned uploads go first", rec.uploadAges[0], registry.DefaultUploadIdle)
	}
	if k.last == nil || k.last.Grace != 30*time.Minute || k.last.Trigger != triggerDisk {
		t.Errorf("last collection %+v, want disk-triggered with grace 30m", k.last)
	}
}
