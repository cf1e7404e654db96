package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/opencontainers/go-digest"
	"github.com/tonistiigi/fsutil"
	"golang.org/x/sync/errgroup"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/buildcontext"
	"github.com/ucplane/uc/reconcile"
)

// logTailLines is how many lines of build output status keeps.
const logTailLines = 30

// progress is what a running build reports, throttled by the caller.
type progress struct {
	StepsDone, StepsTotal, StepsCached int
	LogTail                            []string
}

// solveResult is a finished build.
type solveResult struct {
	Digest string
	progress
}

// solver is the build controller's edge to BuildKit: a build's solve and
// its base images' lookup. driverSolver is the real one; tests give fakes
// with the outcomes a builder can return.
type solver interface {
	solve(ctx context.Context, registry string, auth session.Attachable, spec api.BuildSpec, refs []string, inputs map[string]string, logw io.Writer, report func(progress)) (solveResult, error)
	resolveBases(ctx context.Context, images []string, auth session.Attachable) (map[string]string, error)
}

// driverSolver solves through the node's driver.
type driverSolver struct{ d Driver }

func (s driverSolver) solve(ctx context.Context, registry string, auth session.Attachable, spec api.BuildSpec, refs []string, inputs map[string]string, logw io.Writer, report func(progress)) (solveResult, error) {
	return solve(ctx, s.d, registry, auth, spec, refs, inputs, logw, report)
}

func (s driverSolver) resolveBases(ctx context.Context, images []string, auth session.Attachable) (map[string]string, error) {
	c, err := s.d.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return resolveBases(ctx, c, images, auth)
}

// solve builds spec with the driver's BuildKit and stores the image under
// every name in refs. report is called with progress as it arrives.
func solve(ctx context.Context, d Driver, registry string, auth session.Attachable, spec api.BuildSpec, refs []string, inputs map[string]string, logw io.Writer, report func(progress)) (solveResult, error) {
	c, err := d.Open(ctx)
	if err != nil {
		return solveResult{}, err
	}
	defer c.Close()
	opt, cleanup, err := solveOpt(spec)
	if err != nil {
		return solveResult{}, err
	}
	defer cleanup()
	if err := addContexts(&opt, spec, inputs); err != nil {
		return solveResult{}, err
	}
	opt.SharedKey = localsKey(spec)
	// The driver cannot do what the spec asks (cache_to on Engine 20.10's
	// BuildKit, say): the same spec fails the same way on this node.
	if err := d.configure(&opt, spec, registry, refs); err != nil {
		return solveResult{}, reconcile.Stall("UnsupportedByDriver", err)
	}
	// A secret or SSH agent the spec names is not on this builder: the
	// node's set-up must change first.
	if opt.Session, err = sessionAttachables(spec); err != nil {
		return solveResult{}, reconcile.Stall("SecretUnavailable", err)
	}
	opt.Session = append(opt.Session, auth)
	t := newTracker(logw)
	resp, err := runSolve(ctx, c, opt, t, report)
	res := solveResult{progress: t.snapshot()}
	if err != nil {
		return res, err
	}
	res.Digest, err = d.finish(ctx, resp, refs, logw)
	return res, err
}

// runSolve solves while feeding the status stream to the tracker.
func runSolve(ctx context.Context, c *client.Client, opt client.SolveOpt, t *tracker, report func(progress)) (*client.SolveResponse, error) {
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
	return resp, g.Wait()
}

// solveOpt maps a BuildSpec onto the dockerfile frontend. cleanup removes
// the temporary directory an inline Dockerfile is written to.
func solveOpt(spec api.BuildSpec) (client.SolveOpt, func(), error) {
	if api.IsGitContext(spec.Context) {
		return gitSolveOpt(spec)
	}
	root, err := buildcontext.Root(spec.Context)
	if err != nil {
		return client.SolveOpt{}, nil, err
	}
	contextFS, err := fsutil.NewFS(root)
	if err != nil {
		return client.SolveOpt{}, nil, fmt.Errorf("build context %s: %w", spec.Context, err)
	}
	dockerfileDir, filename, cleanup, err := dockerfileSource(spec)
	if err != nil {
		return client.SolveOpt{}, nil, err
	}
	dockerfileFS, err := fsutil.NewFS(dockerfileDir)
	if err != nil {
		cleanup()
		return client.SolveOpt{}, nil, fmt.Errorf("dockerfile dir %s: %w", dockerfileDir, err)
	}
	return client.SolveOpt{
		Frontend:            "dockerfile.v0",
		FrontendAttrs:       frontendAttrs(spec, filename),
		LocalMounts:         map[string]fsutil.FS{"context": contextFS, "dockerfile": dockerfileFS},
		AllowedEntitlements: RequiredEntitlements(spec),
	}, cleanup, nil
}

// gitSolveOpt lets BuildKit fetch a git context itself: no source touches
// the node's filesystem. The Dockerfile comes from the repository, unless
// it is inline.
func gitSolveOpt(spec api.BuildSpec) (client.SolveOpt, func(), error) {
	attrs := frontendAttrs(spec, cmp.Or(spec.Dockerfile, "Dockerfile"))
	attrs["context"] = spec.Context
	if _, _, subdir := api.SplitGitContext(spec.Context); subdir != "" && spec.Args["SOURCE_DATE_EPOCH"] == "" {
		// With SOURCE_DATE_EPOCH, BuildKit v0.33.1 stamps a git checkout with
		// the commit time by running git in the checkout's work tree, which
		// it has already removed when the context names a subdirectory
		// ("fork/exec /usr/bin/git: no such file or directory"). Those
		// contexts go without it until BuildKit is fixed.
		delete(attrs, "build-arg:SOURCE_DATE_EPOCH")
	}
	opt := client.SolveOpt{
		Frontend: "dockerfile.v0", FrontendAttrs: attrs, LocalMounts: map[string]fsutil.FS{},
		AllowedEntitlements: RequiredEntitlements(spec),
	}
	if spec.DockerfileInline == "" {
		return opt, func() {}, nil
	}
	dir, filename, cleanup, err := dockerfileSource(spec)
	if err != nil {
		return client.SolveOpt{}, nil, err
	}
	dfs, err := fsutil.NewFS(dir)
	if err != nil {
		cleanup()
		return client.SolveOpt{}, nil, err
	}
	opt.LocalMounts["dockerfile"] = dfs
	attrs["dockerfilekey"], attrs["filename"] = "dockerfile", filename
	return opt, cleanup, nil
}

// dockerfileSource is where the frontend reads the Dockerfile from: the
// file in the context, or a temporary copy of an inline one.
func dockerfileSource(spec api.BuildSpec) (dir, filename string, cleanup func(), err error) {
	if spec.DockerfileInline != "" {
		dir, err := os.MkdirTemp("", "uc-dockerfile-")
		if err != nil {
			return "", "", nil, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(spec.DockerfileInline), 0o644); err != nil {
			cleanup()
			return "", "", nil, err
		}
		return dir, "Dockerfile", cleanup, nil
	}
	dockerfile := cmp.Or(spec.Dockerfile, "Dockerfile")
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(spec.Context, dockerfile)
	}
	return filepath.Dir(dockerfile), filepath.Base(dockerfile), func() {}, nil
}

// frontendAttrs are the dockerfile frontend's options, as buildx sets them.
func frontendAttrs(spec api.BuildSpec, filename string) map[string]string {
	attrs := map[string]string{"filename": filename}
	set := func(k, v string) {
		if v != "" {
			attrs[k] = v
		}
	}
	set("target", spec.Target)
	// Reproducible output: the same inputs give the same digest, whatever
	// the files' mtimes or the clock say (the exporter rewrites timestamps).
	attrs["build-arg:SOURCE_DATE_EPOCH"] = "0"
	for k, v := range spec.Args {
		attrs["build-arg:"+k] = v
	}
	set("build-arg:BUILDKIT_CACHE_MOUNT_NS", spec.CacheMountNamespace())
	for k, v := range spec.Labels {
		attrs["label:"+k] = v
	}
	if spec.NoCache {
		attrs["no-cache"] = "" // empty: every stage
	} else {
		set("no-cache", strings.Join(spec.NoCacheFilter, ","))
	}
	if spec.Pull {
		attrs["image-resolve-mode"] = "pull"
	}
	set("add-hosts", strings.Join(spec.ExtraHosts, ","))
	if spec.ShmSize > 0 {
		attrs["shm-size"] = strconv.FormatInt(spec.ShmSize, 10)
	}
	set("ulimit", strings.Join(spec.Ulimits, ","))
	set("force-network-mode", spec.Network)
	set("platform", strings.Join(spec.Platforms, ","))
	set("attest:provenance", attestation(spec.Provenance, "mode=min"))
	set("attest:sbom", attestation(spec.SBOM, "generator=docker/buildkit-syft-scanner"))
	return attrs
}

// attestation maps Compose's provenance/sbom value: "true" turns it on
// with BuildKit's default, "false" or "" leaves it off, anything else is
// BuildKit's own option string.
func attestation(v, on string) string {
	switch v {
	case "", "false":
		return ""
	case "true":
		return on
	}
	return v
}

// RequiredEntitlements is what a build needs a node to allow: those the
// spec names, plus network.host for `network: host`.
func RequiredEntitlements(spec api.BuildSpec) []string {
	need := slices.Clone(spec.Entitlements)
	if spec.Network == "host" && !slices.Contains(need, "network.host") {
		need = append(need, "network.host")
	}
	slices.Sort(need)
	return need
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

// tracker folds BuildKit's status stream into step counts, a log tail,
// and the full log written to out.
type tracker struct {
	mu       sync.Mutex
	out      io.Writer
	vertexes map[digest.Digest]bool // completed?
	cached   map[digest.Digest]bool // answered from the build cache
	tail     []string
	partial  map[digest.Digest]string
}

func newTracker(out io.Writer) *tracker {
	if out == nil {
		out = io.Discard
	}
	return &tracker{out: out, vertexes: map[digest.Digest]bool{}, cached: map[digest.Digest]bool{}, partial: map[digest.Digest]string{}}
}

func (t *tracker) update(st *client.SolveStatus) progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range st.Vertexes {
		t.noteVertex(v)
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

// noteVertex records a step's progress and writes its transitions to the
// full log, the way `docker build --progress=plain` shows them.
func (t *tracker) noteVertex(v *client.Vertex) {
	done := v.Completed != nil || v.Cached
	seen, known := t.vertexes[v.Digest]
	t.vertexes[v.Digest] = done
	if v.Cached {
		t.cached[v.Digest] = true
	}
	switch {
	case v.Error != "":
		t.appendLine(fmt.Sprintf("ERROR %s: %s", v.Name, v.Error))
	case done && !seen && v.Cached:
		fmt.Fprintf(t.out, "#> CACHED %s\n", v.Name)
	case done && !seen:
		fmt.Fprintf(t.out, "#> DONE %s\n", v.Name)
	case !known && v.Started != nil:
		fmt.Fprintf(t.out, "#> %s\n", v.Name)
	}
}

func (t *tracker) appendLine(line string) {
	fmt.Fprintln(t.out, line)
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
	p := progress{StepsTotal: len(t.vertexes), StepsCached: len(t.cached), LogTail: append([]string(nil), t.tail...)}
	for _, done := range t.vertexes {
		if done {
			p.StepsDone++
		}
	}
	return p
}

// localsKey keeps each build's local-source snapshots in BuildKit apart
// from other builds': BuildKit keeps one per local name and session shared
// key and re-sends only files whose size, mode or mtime changed, so a
// build syncs just what changed since its own last build (fetched files'
// mtimes follow their content), and parallel builds never share one.
func localsKey(spec api.BuildSpec) string {
	return "uc-build:" + spec.Name
}

// addContexts maps additional_contexts onto the frontend's named contexts:
// local paths become local mounts, images stay image references, and a
// service: context becomes the other build's image, by digest.
func addContexts(opt *client.SolveOpt, spec api.BuildSpec, inputs map[string]string) error {
	for name, v := range spec.AdditionalContexts {
		switch {
		case strings.HasPrefix(v, "docker-image://"):
			opt.FrontendAttrs["context:"+name] = v
		case strings.HasPrefix(v, api.ServiceContextPrefix):
			dep := strings.TrimPrefix(v, api.ServiceContextPrefix)
			if inputs[dep] == "" {
				return fmt.Errorf("additional context %s: build %s has no result yet", name, dep)
			}
			opt.FrontendAttrs["context:"+name] = "docker-image://" + inputs[dep]
		default:
			fs, err := fsutil.NewFS(v)
			if err != nil {
				return fmt.Errorf("additional context %s: %w", name, err)
			}
			opt.LocalMounts[name] = fs
			opt.FrontendAttrs["context:"+name] = "local:" + name
		}
	}
	return nil
}
