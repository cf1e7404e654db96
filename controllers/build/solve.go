package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ucplane/uc/api"
)

// logTailLines is how many lines of build output status keeps.
const logTailLines = 30

// progress is what a running build reports, throttled by the caller.
type progress struct {
	StepsDone, StepsTotal int
	LogTail               []string
}

// solveResult is a finished build.
type solveResult struct {
	Digest string
	progress
}

// solve builds spec with the BuildKit daemon at addr and pushes the image
// to ref. report is called with progress as it arrives.
func solve(ctx context.Context, addr string, spec api.BuildSpec, ref string, report func(progress)) (solveResult, error) {
	c, err := client.New(ctx, addr)
	if err != nil {
		return solveResult{}, transient(fmt.Errorf("connect to buildkitd %s: %w", addr, err))
	}
	defer c.Close()
	opt, err := solveOpt(spec, ref)
	if err != nil {
		return solveResult{}, err
	}
	t := newTracker()
	ch := make(chan *client.SolveStatus)
	var resp *client.SolveResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		resp, err = c.Solve(gctx, nil, opt, ch)
		return err
	})
	g.Go(func() error {
		for st := range ch {
			report(t.update(st))
		}
		return nil
	})
	err = g.Wait()
	res := solveResult{progress: t.snapshot()}
	if err != nil {
		return res, classify(err)
	}
	res.Digest = resp.ExporterResponse["containerimage.digest"]
	if res.Digest == "" {
		return res, errors.New("buildkitd returned no image digest")
	}
	return res, nil
}

// solveOpt maps a BuildSpec onto the dockerfile frontend.
func solveOpt(spec api.BuildSpec, ref string) (client.SolveOpt, error) {
	dockerfile := spec.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(spec.Context, dockerfile)
	}
	contextFS, err := fsutil.NewFS(spec.Context)
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("build context %s: %w", spec.Context, err)
	}
	dockerfileFS, err := fsutil.NewFS(filepath.Dir(dockerfile))
	if err != nil {
		return client.SolveOpt{}, fmt.Errorf("dockerfile dir %s: %w", filepath.Dir(dockerfile), err)
	}
	attrs := map[string]string{"filename": filepath.Base(dockerfile)}
	if spec.Target != "" {
		attrs["target"] = spec.Target
	}
	for k, v := range spec.Args {
		attrs["build-arg:"+k] = v
	}
	for k, v := range spec.Labels {
		attrs["label:"+k] = v
	}
	return client.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS},
		Exports: []client.ExportEntry{{
			Type:  client.ExporterImage,
			Attrs: map[string]string{"name": ref, "push": "true", "registry.insecure": "true"},
		}},
	}, nil
}

// transientError marks a failure worth retrying: the daemon or the
// registry was unreachable, not the Dockerfile wrong.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func transient(err error) error { return &transientError{err} }

// IsTransient reports whether a build failure may succeed on retry.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// classify tells infrastructure failures from build failures. A Dockerfile
// error, a failing RUN or a missing base image will fail the same way again.
func classify(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return transient(err)
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "i/o timeout", "no route to host",
		"TLS handshake timeout", "server misbehaving", "502 Bad Gateway", "503 Service Unavailable"} {
		if strings.Contains(msg, s) {
			return transient(err)
		}
	}
	return err
}

// tracker folds BuildKit's status stream into step counts and a log tail.
type tracker struct {
	mu       sync.Mutex
	vertexes map[digest.Digest]bool // completed?
	tail     []string
	partial  map[digest.Digest]string
	started  time.Time
}

func newTracker() *tracker {
	return &tracker{vertexes: map[digest.Digest]bool{}, partial: map[digest.Digest]string{}, started: time.Now()}
}

func (t *tracker) update(st *client.SolveStatus) progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range st.Vertexes {
		t.vertexes[v.Digest] = v.Completed != nil || v.Cached
		if v.Error != "" {
			t.appendLine(fmt.Sprintf("ERROR %s: %s", v.Name, v.Error))
		}
	}
	for _, l := range st.Logs {
		t.appendLog(l.Vertex, string(l.Data))
	}
	return t.snapshotLocked()
}

// appendLog splits output into lines, holding back an unfinished last line.
func (t *tracker) appendLog(v digest.Digest, data string) {
	data = t.partial[v] + data
	lines := strings.Split(data, "\n")
	t.partial[v] = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		t.appendLine(strings.TrimRight(line, "\r"))
	}
}

func (t *tracker) appendLine(line string) {
	t.tail = append(t.tail, line)
	if len(t.tail) > logTailLines {
		t.tail = t.tail[len(t.tail)-logTailLines:]
	}
}

func (t *tracker) snapshot() progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshotLocked()
}

func (t *tracker) snapshotLocked() progress {
	p := progress{StepsTotal: len(t.vertexes), LogTail: append([]string(nil), t.tail...)}
	for _, done := range t.vertexes {
		if done {
			p.StepsDone++
		}
	}
	return p
}
