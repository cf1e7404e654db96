package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/test/harness"
)

// fault is one row of the table: inject strikes while the project p is
// being built and pulled (or after, as the fault needs), and heals what it
// broke; the run then waits for p to converge.
type fault struct {
	name   string
	quick  bool // in the quick subset (make chaos QUICK=1)
	opts   projectOpts
	inject func(ctx context.Context, c *cluster, p *project) (note string, err error)
}

var standard = projectOpts{services: 2, bigBytes: 4 << 20, sleep: 4}

var faults = []fault{
	{"kill -9 ucd during a build", true, standard, killDuringBuild},
	{"kill -9 ucd during a pull", false, projectOpts{services: 1, bigBytes: 48 << 20, sleep: 1}, killDuringPull},
	{"kill -9 ucd (registry) during a GC sweep", false, standard, killDuringGC},
	{"kill -9 ucd (registry) during a context upload", false, projectOpts{services: 1, bigBytes: 64 << 20, sleep: 1}, killDuringUpload},
	{"kill -9 state server, restart", true, standard, killState},
	{"silent stream cut ucd↔state", false, standard, cutStreams},
	{"lost subscriptions (404 on resume)", true, standard, loseSubscriptions},
	{"registry's node killed", false, standard, killRegistryNode},
	{"builder's disk full (tmpfs data dir)", true, projectOpts{services: 2, bigBytes: 8 << 20, sleep: 5}, fillBuilderDisk},
	{"state API unreachable for 30 s", false, standard, unreachable30s},
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

// applyThenBuilding applies p and waits for one of its builds to be running.
func applyThenBuilding(ctx context.Context, c *cluster, p *project) (node string, err error) {
	if err := c.apply(ctx, p); err != nil {
		return "", err
	}
	err = waitUntil(ctx, 2*time.Minute, func() error {
		builds, err := c.store.ListBuilds(ctx, "")
		if err != nil {
			return err
		}
		for _, b := range builds {
			if cur, ok := b.Current(); ok && b.Spec.Project == p.name && cur.Phase == api.BuildBuilding {
				node = cur.Node
				return nil
			}
		}
		return errors.New("no build of the project is running")
	})
	return node, err
}

// restart restarts a killed node after a second, as a supervisor
// would.
func (c *cluster) restart(node string) error {
	time.Sleep(time.Second)
	return c.startNode(node)
}

func killDuringBuild(ctx context.Context, c *cluster, p *project) (string, error) {
	node, err := applyThenBuilding(ctx, c, p)
	if err != nil {
		return "", err
	}
	c.strike()
	c.killNode(node)
	return "killed " + node + " while it built; restarted 1 s later", c.restart(node)
}

func killDuringPull(ctx context.Context, c *cluster, p *project) (string, error) {
	if err := c.apply(ctx, p); err != nil {
		return "", err
	}
	var node string
	err := waitUntilFast(ctx, 3*time.Minute, func() error {
		images, err := c.store.ListImages(ctx, "")
		if err != nil {
			return err
		}
		for _, img := range images {
			for _, pr := range img.Presence {
				if img.Spec.Project == p.name && pr.State == api.PresencePulling {
					node = pr.Node
					return nil
				}
			}
		}
		return errors.New("no pull of the project seen")
	})
	if err != nil {
		return "", err
	}
	c.strike()
	c.killNode(node)
	return "killed " + node + " while it pulled a 48 MiB layer; restarted 1 s later", c.restart(node)
}

// killDuringGC fills the registry with garbage, so that a sweep takes a
// while, starts one, and kills the registry's process (ucd registry serve,
// in its container) in the middle of it. Its node's controller restarts it.
func killDuringGC(ctx context.Context, c *cluster, p *project) (string, error) {
	if err := c.apply(ctx, p); err != nil {
		return "", err
	}
	if err := waitUntil(ctx, 4*time.Minute, func() error { l, err := c.check(ctx, p); return errors.Join(err, l.err()) }); err != nil {
		return "", fmt.Errorf("before the fault: %w", err)
	}
	holder, addr, err := c.registry(ctx)
	if err != nil {
		return "", err
	}
	if err := pushGarbage(ctx, addr, 1500); err != nil {
		return "", err
	}
	time.Sleep(1500 * time.Millisecond) // older than the sweep's grace
	// The registry's storage is in its node's data dir: strike once the
	// sweep has deleted a hundred blobs.
	blobs := filepath.Join(c.dataDir(holder), "registry-volume", "registry", "docker", "registry", "v2", "blobs", "sha256", "*", "*")
	before := countFiles(blobs)
	gc := make(chan string, 1)
	go func() {
		out, err := c.uc(ctx, "", "registry", "gc", "--grace", "1s")
		gc <- strings.TrimSpace(harness.LastLines(out, 1)) + map[bool]string{true: "", false: fmt.Sprintf(" (%v)", err)}[err == nil]
	}()
	if err := waitUntilFast(ctx, time.Minute, func() error {
		if countFiles(blobs) > before-100 {
			return errors.New("the sweep has not begun")
		}
		return nil
	}); err != nil {
		return "", err
	}
	c.strike()
	if out, err := c.docker(ctx, holder, "kill", "-s", "KILL", "uc-registry"); err != nil {
		return "", fmt.Errorf("docker kill uc-registry on %s: %v: %s", holder, err, out)
	}
	return fmt.Sprintf("registry process on %s killed with %d of its %d blobs swept (uc registry gc: %s)",
		holder, before-countFiles(blobs), before, firstLineOf(<-gc)), nil
}

// countFiles counts the paths matching pattern.
func countFiles(pattern string) int {
	files, _ := filepath.Glob(pattern)
	return len(files)
}

// pushGarbage uploads n small unreferenced blobs.
func pushGarbage(ctx context.Context, addr string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := pushBlob(ctx, addr, "chaos/garbage", []byte(fmt.Sprintf("garbage %d %d", i, time.Now().UnixNano()))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func pushBlob(ctx context.Context, addr, repo string, data []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + addr + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc+sep+"digest="+digestOf(data), bytes.NewReader(data))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("push garbage blob: %s", resp.Status)
	}
	return nil
}

// killDuringUpload kills the registry's process while uc apply uploads a
// 64 MiB context to it; the user runs uc apply again, as after any failed
// apply.
func killDuringUpload(ctx context.Context, c *cluster, p *project) (string, error) {
	holder, _, err := c.registry(ctx)
	if err != nil {
		return "", err
	}
	first := make(chan error, 1)
	go func() { first <- c.apply(ctx, p) }()
	// The registry's storage is in its node's data dir: strike once a
	// partial upload of the project's context holds bytes.
	uploads := filepath.Join(c.dataDir(holder), "registry-volume", "registry", "docker", "registry", "v2",
		"repositories", "uc-contexts", p.name, "*", "_uploads", "*", "data")
	if err := waitUntilFast(ctx, 2*time.Minute, func() error { return uploading(uploads) }); err != nil {
		return "", err
	}
	c.strike()
	if out, err := c.docker(ctx, holder, "kill", "-s", "KILL", "uc-registry"); err != nil {
		return "", fmt.Errorf("docker kill uc-registry on %s: %v: %s", holder, err, out)
	}
	note := "registry process on " + holder + " killed while uc apply uploaded the context"
	if err := <-first; err != nil {
		note += fmt.Sprintf("; that apply failed (%s); applied again", lastLineOf(err.Error()))
		err = waitUntil(ctx, 2*time.Minute, func() error { return c.apply(ctx, p) })
		if err != nil {
			return note, err
		}
	} else {
		note += "; that apply succeeded (the upload was done or resumed)"
	}
	return note, nil
}

// uploading reports whether a file matching pattern holds bytes.
func uploading(pattern string) error {
	files, _ := filepath.Glob(pattern)
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 0 {
			return nil
		}
	}
	return errors.New("no upload in progress")
}

func killState(ctx context.Context, c *cluster, p *project) (string, error) {
	if _, err := applyThenBuilding(ctx, c, p); err != nil {
		return "", err
	}
	c.strike()
	c.state.Kill()
	time.Sleep(2 * time.Second)
	return "state server killed during a build; restarted 2 s later", c.waitState(ctx)
}

func cutStreams(ctx context.Context, c *cluster, p *project) (string, error) {
	if _, err := applyThenBuilding(ctx, c, p); err != nil {
		return "", err
	}
	c.strike()
	n := c.tcp.cutAll()
	return fmt.Sprintf("%d connections silenced for good during a build (never closed); new ones pass", n), nil
}

func loseSubscriptions(ctx context.Context, c *cluster, p *project) (string, error) {
	if _, err := applyThenBuilding(ctx, c, p); err != nil {
		return "", err
	}
	c.strike()
	n := c.http.forgetSubscriptions(10 * time.Second)
	time.Sleep(10 * time.Second)
	c.http.mu.Lock()
	defer c.http.mu.Unlock()
	return fmt.Sprintf("%d subscription streams ended during a build; %d resumes answered 404 for 10 s", n, c.http.forgotten), nil
}

// killRegistryNode kills the registry's node outright (its ucd and its
// registry container) once the project converged; it comes back 15 s
// later, after the registry failed over.
func killRegistryNode(ctx context.Context, c *cluster, p *project) (string, error) {
	if err := c.apply(ctx, p); err != nil {
		return "", err
	}
	if err := waitUntil(ctx, 4*time.Minute, func() error { l, err := c.check(ctx, p); return errors.Join(err, l.err()) }); err != nil {
		return "", fmt.Errorf("before the fault: %w", err)
	}
	holder, _, err := c.registry(ctx)
	if err != nil {
		return "", err
	}
	c.strike()
	c.killNode(holder)
	_, _ = c.docker(ctx, holder, "rm", "-f", "uc-registry")
	moved := waitUntil(ctx, time.Minute, func() error {
		node, _, err := c.registry(ctx)
		if err == nil && node == holder {
			err = errors.New("not moved yet")
		}
		return err
	})
	time.Sleep(15 * time.Second)
	note := "killed " + holder + " (ucd and registry container) after the project converged; back 15 s later"
	if moved != nil {
		note += "; the registry did not move: " + moved.Error()
	}
	return note, c.startNode(holder)
}

// fillBuilderDisk fills the data dir of the node that serves the registry
// and builds the project (it holds the registry's storage and the context
// cache), right after uc apply uploaded the contexts; the builds fail on
// the full disk. Space returns once a build says the disk is full.
func fillBuilderDisk(ctx context.Context, c *cluster, p *project) (string, error) {
	holder, _, err := c.registry(ctx)
	if err != nil {
		return "", err
	}
	// Pin the builds to the registry's node, rewriting the project.
	np, err := writeProject(filepath.Dir(p.dir), p.name, projectOpts{services: 2, bigBytes: 8 << 20, sleep: 5, builder: holder})
	if err != nil {
		return "", err
	}
	*p = *np
	if err := c.apply(ctx, p); err != nil {
		return "", err
	}
	filler := filepath.Join(c.dataDir(holder), "filler")
	c.strike()
	if err := fill(filler); err != nil {
		return "", err
	}
	var msg string
	err = waitUntil(ctx, 3*time.Minute, func() error {
		builds, err := c.store.ListBuilds(ctx, "")
		if err != nil {
			return err
		}
		for _, b := range builds {
			for _, st := range b.Status {
				if b.Spec.Project == p.name && strings.Contains(st.Message, "disk full") {
					msg = st.Message
					return nil
				}
			}
		}
		return errors.New("no build of the project says the disk is full")
	})
	if rmErr := os.Remove(filler); rmErr != nil {
		return "", rmErr
	}
	if err != nil {
		return "no status said the disk was full", nil
	}
	return fmt.Sprintf("%s's data dir filled after uc apply; status said %q; space back then", holder, firstLineOf(msg)), nil
}

// fill writes path until its disk is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			return nil // full
		}
	}
}

func unreachable30s(ctx context.Context, c *cluster, p *project) (string, error) {
	if _, err := applyThenBuilding(ctx, c, p); err != nil {
		return "", err
	}
	c.strike()
	c.tcp.unreachable(true)
	time.Sleep(30 * time.Second)
	c.tcp.unreachable(false)
	return "every ucd↔state connection reset and new ones refused for 30 s during a build", nil
}

// waitUntilFast polls every 20 ms, to catch short states such as a pull.
func waitUntilFast(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLineOf(s string) string { return firstLineOf(harness.LastLines(s, 1)) }

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 160 {
		line = line[:160] + "…"
	}
	return line
}
