package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/state/statetest"
)

func TestIsDiskFull(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "write", Path: "/data/contexts/x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("fetch context: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), true},
		{&corrosion.APIError{Status: 500, Message: "database or disk is full"}, true},
		{status.Error(codes.Unknown, "write /var/lib/buildkit/x: no space left on device"), true},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, false},
		{&corrosion.APIError{Status: 500, Message: "no such table: x"}, false},
		{errors.New("failed to solve: error writing layer blob: unknown: invalid content range"), false},
	} {
		if got := IsDiskFull(tt.err); got != tt.want {
			t.Errorf("IsDiskFull(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// failingDriver fails every solve with err, after running fill.
type failingDriver struct {
	opens int
	err   error
	fill  func(open int)
}

func (d *failingDriver) Name() string { return DriverBuildkit }
func (d *failingDriver) Open(context.Context) (*client.Client, error) {
	d.opens++
	d.fill(d.opens)
	return nil, d.err
}
func (d *failingDriver) configure(*client.SolveOpt, api.BuildSpec, string, []string) error {
	return nil
}
func (d *failingDriver) finish(context.Context, *client.SolveResponse, []string, io.Writer) (string, error) {
	return "", nil
}

// TestFullDisk fills a small tmpfs while a build solves, as a push into a
// registry there does, with the state's database on that disk or not. A
// status write that fails is retried, not dropped; a failure caused by a
// full data dir says so and is retried. Before, the failed write was
// terminal, and the status stayed "building" until a resync.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	const (
		pushErr = "failed to solve: error writing layer blob: unknown: invalid content range"
		runErr  = `failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`
	)
	// What BuildKit's client returns for a RUN that exits 3.
	runFailed := fmt.Errorf("failed to solve: %w", &gwpb.ExitError{ExitCode: 3,
		Err: errors.New(`process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`)})
	for _, tt := range []struct {
		name              string
		stateOnFull       bool // the state's database is on the full disk
		dataDirFull       bool // the node's data dir is the full disk
		solveErr          error
		wantErr           []string // in the first reconcile's error
		wantOpens         int      // solves, once space is back
		wantPhase         string
		wantMsg, wantCond string // the last status, once space is back
	}{
		// A RUN that exits non-zero is stalled once its status is written.
		{"a failed RUN while the state's disk is full", true, false, runFailed,
			[]string{"exit code: 3", "the state's disk is full"}, 1, api.BuildFailed, runErr, api.ConditionStalled},
		// A push that fails is the infrastructure's: retried with space back too.
		{"a push into a full data dir, state elsewhere", false, true, errors.New(pushErr),
			[]string{"disk full on node1 (data dir "}, 2, api.BuildFailed, pushErr, api.ConditionReconciling},
		{"a push into a full data dir that holds the state", true, true, errors.New(pushErr),
			[]string{"disk full on node1 (data dir ", "the state's disk is full"}, 2, api.BuildFailed, pushErr, api.ConditionReconciling},
	} {
		t.Run(tt.name, func(t *testing.T) {
			full := tmpfs(t, "4m")
			stateDir, dataDir := t.TempDir(), t.TempDir()
			if tt.stateOnFull {
				stateDir = filepath.Join(full, "state")
			}
			if tt.dataDirFull {
				dataDir = full
			}
			if err := os.MkdirAll(stateDir, 0o755); err != nil {
				t.Fatal(err)
			}
			srv := statetest.StartIn(t, stateDir)
			ctx := context.Background()
			seedBuild(t, srv.Store, "web")
			filler := filepath.Join(full, "filler")
			var seen []api.BuildStatus // the build's status as each solve fails
			drv := &failingDriver{err: tt.solveErr, fill: func(open int) {
				if open == 1 {
					fillDisk(t, filler)
				}
			}}
			r := newReconciler(srv.Store, srv.Store.Reader, Config{Node: "node1", Driver: drv, DataDir: dataDir,
				ContextCacheDir: filepath.Join(t.TempDir(), "contexts")}, slog.New(slog.DiscardHandler))
			current := func() api.BuildStatus {
				rec, err := srv.Store.GetBuild(ctx, "web")
				if err != nil {
					t.Fatal(err)
				}
				cur, _ := rec.Current()
				return cur
			}

			_, err := r.Reconcile(ctx, "web")
			t.Logf("reconcile on a full disk: %v", err)
			if err == nil || reconcile.IsTerminal(err) {
				t.Fatalf("first reconcile: %v; want an error that is retried (not terminal)", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if !tt.stateOnFull {
				seen = append(seen, current())
				if got := seen[0]; got.Phase != api.BuildFailed || !strings.Contains(got.Message, "disk full on node1") ||
					!api.IsTrue(got.Conditions, api.ConditionReconciling) {
					t.Errorf("status on a full data dir: %s %q %+v; want failed, saying the disk is full, retrying",
						got.Phase, got.Message, got.Conditions)
				}
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			_, err = r.Reconcile(ctx, "web")
			t.Logf("reconcile with space back: %v", err)
			if tt.stateOnFull {
				// That reconcile wrote the kept outcome, its one write; the
				// row's change event brings the key back, as here.
				_, err = r.Reconcile(ctx, "web")
				t.Logf("reconcile after the kept outcome's write: %v", err)
			}
			got := current()
			if drv.opens != tt.wantOpens || got.Phase != tt.wantPhase || got.Message != "build web: "+tt.wantMsg && got.Message != tt.wantMsg ||
				!api.IsTrue(got.Conditions, tt.wantCond) {
				t.Errorf("with space back: %d solves, status %s %q %+v; want %d solves, %s %q, %s",
					drv.opens, got.Phase, got.Message, got.Conditions, tt.wantOpens, tt.wantPhase, tt.wantMsg, tt.wantCond)
			}
		})
	}
}

// tmpfs mounts a tmpfs of size for the test.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	// Detached: the state server's last handles close as the test ends.
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// seedBuild stores a build spec that node1, the only live builder, owns,
// and a live registry for it to push to.
func seedBuild(t *testing.T, store *state.Store, name string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	if err := store.RegisterNode(ctx, api.Node{Name: "node1", State: api.NodeReady, StartedAt: now, HeartbeatAt: now,
		Capacity: api.NodeCapacity{Builders: []string{DriverBuildkit}}}); err != nil {
		t.Fatal(err)
	}
	ready := []api.Condition{{Type: api.ConditionReady, Status: "True", LastTransitionTime: now}}
	if err := store.PutRegistryStatus(ctx, api.RegistryStatus{Node: "node1", Address: "127.0.0.1:1", Conditions: ready, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	spec := api.BuildSpec{Name: name, Project: "fulldisk", Image: "fulldisk/" + name, Context: t.TempDir(),
		DockerfileInline: "FROM scratch\n", NoCache: true}
	if _, err := store.ApplyProject(ctx, &api.Project{Name: "fulldisk", Builds: []api.BuildSpec{spec}}, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// fillDisk writes path until the disk holding it has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}
