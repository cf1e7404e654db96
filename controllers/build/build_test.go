package build

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/state"
)

// TestClassifyFailure: a failure's type, never its message, decides
// whether a build is retried. The errors are the types BuildKit's client
// returns (seen against a real buildkitd): a RUN that exits non-zero, a
// frontend error (syntax, unknown target, or a base image that cannot be
// resolved), a failed step, and untyped ones (a push that failed).
func TestClassifyFailure(t *testing.T) {
	t.Parallel()
	exit := &gwpb.ExitError{ExitCode: 3, Err: errors.New(`process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`)}
	frontend := (&errdefs.Frontend{Name: "dockerfile.v0"}).WrapError(errors.New("dockerfile parse error on line 2: unknown instruction: FOO"))
	vertex := errdefs.WrapVertex(errors.New(`"/nosuchfile": not found`), "sha256:0")
	for _, tt := range []struct {
		name  string
		err   error
		tries []string // outcome of each attempt at one generation
	}{
		{"RUN exits non-zero", fmt.Errorf("failed to solve: %w", exit), []string{"stalled"}},
		{"frontend error", fmt.Errorf("failed to solve: %w", frontend), []string{"retry", "retry", "retry", "stalled"}},
		{"failed step", fmt.Errorf("failed to solve: %w", vertex), []string{"retry", "retry", "retry", "stalled"}},
		{"BuildKit unreachable", status.Error(codes.Unavailable, "connection error"), []string{"retry", "retry", "retry", "retry", "retry"}},
		{"push refused, untyped", errors.New("failed to push: dial tcp 127.0.0.1:5000: connect: connection refused"), []string{"retry", "retry", "retry", "retry", "retry"}},
		{"marked transient", transient(fmt.Errorf("wrapped: %w", exit)), []string{"retry", "retry"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newReconciler(nil, state.Reader{}, Config{Node: "n1"}, slog.New(slog.DiscardHandler))
			st := api.BuildStatus{Name: "p/web", SpecUID: "u1", Detail: api.BuildDetail{Generation: 1}}
			for i, want := range tt.tries {
				got := "retry"
				if reconcile.IsTerminal(r.classifyFailure(st, tt.err)) {
					got = "stalled"
				}
				if got != want {
					t.Fatalf("attempt %d: %s, want %s", i+1, got, want)
				}
			}
			st.Detail.Generation = 2 // a new generation starts counting again
			if reconcile.IsTerminal(r.classifyFailure(st, tt.err)) != (tt.tries[0] == "stalled") {
				t.Error("a new generation did not start counting attempts afresh")
			}
		})
	}
}

func TestTrackerKeepsTailAndCountsSteps(t *testing.T) {
	t.Parallel()
	var full strings.Builder
	tr := newTracker(&full)
	done := client.Vertex{Digest: "sha256:a", Name: "step a", Cached: true}
	running := client.Vertex{Digest: "sha256:b", Name: "step b"}
	tr.update(&client.SolveStatus{Vertexes: []*client.Vertex{&done, &running}})
	for i := range logTailLines + 5 {
		tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: "sha256:b", Data: fmt.Appendf(nil, "line %d\n", i)}}})
	}
	tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: "sha256:b", Data: []byte("half a li")}}})
	p := tr.update(&client.SolveStatus{Logs: []*client.VertexLog{{Vertex: "sha256:b", Data: []byte("ne\n")}}})
	if !strings.Contains(full.String(), "#> CACHED step a\n") || !strings.Contains(full.String(), "line 0\nline 1\n") {
		t.Errorf("full log lacks the cached step or early lines:\n%s", full.String())
	}
	if p.StepsDone != 1 || p.StepsTotal != 2 {
		t.Errorf("steps = %d/%d, want 1/2", p.StepsDone, p.StepsTotal)
	}
	if len(p.LogTail) != logTailLines || p.LogTail[len(p.LogTail)-1] != "half a line" {
		t.Errorf("tail has %d lines ending %q, want %d ending with the joined partial line",
			len(p.LogTail), p.LogTail[len(p.LogTail)-1], logTailLines)
	}
}
