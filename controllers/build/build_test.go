package build

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/buildkit/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err       error
		transient bool
	}{
		{status.Error(codes.Unavailable, "connection error"), true},
		{fmt.Errorf("failed to push: dial tcp 127.0.0.1:5000: connect: connection refused"), true},
		{errors.New(`failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3`), false},
		{errors.New("failed to solve: dockerfile parse error on line 2: unknown instruction: FOO"), false},
	} {
		if got := IsTransient(classify(tt.err)); got != tt.transient {
			t.Errorf("classify(%v) transient = %v, want %v", tt.err, got, tt.transient)
		}
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
