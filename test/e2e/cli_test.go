// Package e2e runs the real uc and ucd binaries: one `ucd state serve` and
// two `ucd run --corrosion-api` nodes sharing it, driven by `uc` as a user
// would. Every process it starts is stopped by pid.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/test/harness"
)

var (
	repoRoot string
	binDir   string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (code int, err error) {
	if repoRoot, err = findRoot(); err != nil {
		return 1, err
	}
	tmp, err := os.MkdirTemp("", "uc-e2e-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	for _, b := range []string{"uc", "ucd"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b), "./cmd/"+b)
		cmd.Dir = repoRoot
		// Static, as shipped: the registry image is made from ucd itself.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("go build %s: %v\n%s", b, err, out)
		}
	}
	return m.Run(), nil
}

// findRoot walks up from the test's directory to go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// proc is a ucd process.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(dir, name string, args ...string) (*proc, error) {
	p := &proc{log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(binDir, "ucd"), args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Should this test binary die, the kernel stops the daemons too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stop sends SIGTERM and waits; SIGKILL if it does not exit in time.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return errors.New("did not stop on SIGTERM")
	}
}

// cluster is one `ucd state serve` and two `ucd run` nodes sharing it.
type cluster struct {
	dir      string
	apiURL   string // http://127.0.0.1:PORT
	stateDir string
	procs    map[string]*proc
	// nodeArgs adds flags to a node's `ucd run`, e.g. its engine.
	nodeArgs func(node string) []string
	// stable is the registry's stable address all its nodes forward, a
	// port of its own so that no other test's nodes answer on it.
	stable string
}

// stop stops the nodes first and the state they report to last.
func (c *cluster) stop() {
	for _, name := range []string{"node3", "node2", "node1", "state"} {
		if p := c.procs[name]; p != nil {
			_ = p.stop()
		}
	}
}

// startCluster starts the state and, unless stateOnly, both nodes; it waits
// until they are ready and stops everything when the test ends.
func startCluster(t *testing.T, stateOnly bool) *cluster {
	t.Helper()
	return startClusterWith(t, stateOnly, nil)
}

// startClusterWith is startCluster with extra `ucd run` flags per node.
func startClusterWith(t *testing.T, stateOnly bool, nodeArgs func(string) []string) *cluster {
	t.Helper()
	return startClusterAt(t, stateOnly, "", nodeArgs)
}

// startClusterAt starts a cluster whose registry's stable address is
// stable (empty: a free port), for engines that must be told which
// registries speak plain HTTP (Podman).
func startClusterAt(t *testing.T, stateOnly bool, stable string, nodeArgs func(string) []string) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir(), procs: map[string]*proc{}, nodeArgs: nodeArgs, stable: stable}
	c.stopAtEnd(t)
	if err := c.start(stateOnly); err != nil {
		t.Fatal(err)
	}
	return c
}

// stopAtEnd stops the cluster when the test ends, and logs what its
// processes said if the test failed.
func (c *cluster) stopAtEnd(t *testing.T) {
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			for _, name := range []string{"state", "node1", "node2", "node3"} {
				if p := c.procs[name]; p != nil {
					t.Logf("--- %s log:\n%s", name, p.logText())
				}
			}
		}
	})
}

func (c *cluster) start(stateOnly bool) error {
	addr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	c.apiURL = "http://" + addr
	if c.stable == "" {
		if c.stable, err = harness.FreeAddr(); err != nil {
			return err
		}
	}
	c.stateDir = filepath.Join(c.dir, "state")
	st, err := startProc(c.dir, "state", "state", "serve", "--data-dir", c.stateDir, "--listen", addr)
	if err != nil {
		return err
	}
	c.procs["state"] = st
	if err := poll(10*time.Second, func() error {
		select {
		case <-st.done:
			return fmt.Errorf("ucd state serve exited: %v\n%s", st.err, st.logText())
		default:
		}
		resp, err := http.Get(c.apiURL + "/v1/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("health: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("state did not come up: %w", err)
	}
	if stateOnly {
		return nil
	}
	for _, n := range []struct{ name, labels string }{{"node1", "zone=a,disk=ssd"}, {"node2", "zone=b"}} {
		if err := c.startNode(n.name, n.labels); err != nil {
			return err
		}
	}
	return c.waitReady(2)
}

// startNode starts one `ucd run` on the cluster's state, with nodeArgs.
func (c *cluster) startNode(name, labels string) error {
	args := []string{"run", "--node", name, "--data-dir", filepath.Join(c.dir, name),
		"--corrosion-api", c.apiURL, "--labels", labels, "--heartbeat", "1s", "--docker-host", "",
		"--registry-address", c.stable}
	if c.nodeArgs != nil {
		args = append(args, c.nodeArgs(name)...)
	}
	p, err := startProc(c.dir, name, args...)
	if err != nil {
		return err
	}
	c.procs[name] = p
	return nil
}

// waitReady waits until n nodes are ready.
func (c *cluster) waitReady(n int) error {
	return poll(10*time.Second, func() error {
		nodes, err := c.getNodes()
		if err != nil {
			return err
		}
		if ready := countState(nodes, "ready"); ready != n {
			return fmt.Errorf("%d nodes ready: %+v", ready, nodes)
		}
		return nil
	})
}

func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// uc runs the CLI from the repository root against the cluster's state.
func (c *cluster) uc(args ...string) result {
	cmd := exec.Command(filepath.Join(binDir, "uc"), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "UC_CORROSION_API="+c.apiURL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		code = -1
		errb.WriteString(err.Error())
	}
	return result{out.String(), errb.String(), code}
}

// ok runs uc and fails the test unless it succeeds quietly.
func (c *cluster) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := c.uc(args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("uc %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

func (c *cluster) getNodes() ([]map[string]any, error) {
	r := c.uc("get", "nodes", "-o", "json")
	if r.code != 0 {
		return nil, errors.New(r.String())
	}
	var nodes []map[string]any
	return nodes, json.Unmarshal([]byte(r.stdout), &nodes)
}

func countState(nodes []map[string]any, st string) int {
	n := 0
	for _, node := range nodes {
		if node["state"] == st {
			n++
		}
	}
	return n
}

// tableRow finds the table row that starts with name and splits it.
func tableRow(t *testing.T, table, name string) []string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f
		}
	}
	t.Fatalf("no row %s in:\n%s", name, table)
	return nil
}

// writeProject writes a compose file (and a build context) into a fresh
// directory and returns the file's path.
func writeProject(t *testing.T, file, content string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{file: content, "Dockerfile": "FROM busybox\n", "token.txt": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, file)
}

// snapshot is every spec as `uc get … -o json` prints it.
func (c *cluster) snapshot(t *testing.T) string {
	t.Helper()
	return c.ok(t, "get", "builds", "-o", "json") + c.ok(t, "get", "images", "-o", "json")
}

const hello = "examples/hello/compose.yaml"

func TestCLI(t *testing.T) {
	c := startCluster(t, false)
	ok, uc, snapshot := c.ok, c.uc, c.snapshot
	t.Run("get nodes", func(t *testing.T) {
		out := ok(t, "get", "nodes")
		if !strings.HasPrefix(out, "NAME") {
			t.Errorf("no header:\n%s", out)
		}
		for _, n := range []struct{ name, labels string }{{"node1", "disk=ssd,zone=a"}, {"node2", "zone=b"}} {
			row := tableRow(t, out, n.name)
			if row[1] != "Ready" || row[2] != n.labels {
				t.Errorf("row %q, want Ready with labels %s", row, n.labels)
			}
		}
		out = ok(t, "get", "nodes", "node2")
		if strings.Contains(out, "node1") || !strings.Contains(out, "node2") {
			t.Errorf("uc get nodes node2:\n%s", out)
		}
	})

	t.Run("empty state", func(t *testing.T) {
		for _, kind := range []string{"builds", "images"} {
			if out := ok(t, "get", kind, "-o", "json"); strings.TrimSpace(out) != "[]" {
				t.Errorf("uc get %s -o json on an empty state = %q, want []", kind, out)
			}
		}
	})

	t.Run("dry run", func(t *testing.T) {
		before := snapshot(t)
		out := ok(t, "apply", "-f", hello, "--dry-run")
		var doc struct {
			Project string
			Builds  []map[string]any
			Images  []map[string]any
		}
		if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("dry run output is not YAML: %v\n%s", err, out)
		}
		if !strings.HasPrefix(out, "project: hello\n") || len(doc.Builds) != 1 || len(doc.Images) != 1 ||
			doc.Builds[0]["name"] != "hello/web" || doc.Builds[0]["context"] != filepath.Join(repoRoot, "examples/hello") {
			t.Errorf("dry run printed:\n%s", out)
		}
		if after := snapshot(t); after != before {
			t.Errorf("dry run wrote:\n%s", after)
		}
	})

	t.Run("apply", func(t *testing.T) {
		out := changes(ok(t, "apply", "-f", hello))
		if out != "build hello/web created\nimage hello/web created\n" {
			t.Errorf("first apply printed:\n%s", out)
		}
		before := snapshot(t)
		if out := ok(t, "apply", "-f", hello); !strings.HasSuffix(out, "nothing changed\n") || strings.Contains(out, "created") {
			t.Errorf("second apply printed:\n%s", out)
		}
		if after := snapshot(t); after != before {
			t.Errorf("an unchanged apply changed the state:\n%s\nwas:\n%s", after, before)
		}
	})

	t.Run("get builds and images", func(t *testing.T) {
		// No node builds: one of them says so, rather than a bare pending.
		var row []string
		if err := poll(10*time.Second, func() error {
			row = tableRow(t, ok(t, "get", "builds"), "hello/web")
			if row[1] != "hello/web" || row[2] != "1" || row[3] != "failed" || !strings.Contains(strings.Join(row, " "), "no live node runs a builder") {
				return fmt.Errorf("build row %q, want image hello/web, generation 1, failed: no live node runs a builder", row)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
		// Neither node has an engine: neither is waited for, and it says so.
		row = tableRow(t, ok(t, "get", "images"), "hello/web")
		if row[1] != "build:hello/web" || row[3] != "0/0" || row[4] != "skipped(NoEngine):2" || row[5] != "nodes=node1,node2" {
			t.Errorf("image row %q, want build:hello/web present 0/0, skipped(NoEngine):2, on nodes=node1,node2", row)
		}

		var builds []state.BuildRecord
		if err := json.Unmarshal([]byte(ok(t, "get", "builds", "-o", "json")), &builds); err != nil {
			t.Fatal(err)
		}
		if len(builds) != 1 || builds[0].Spec.Name != "hello/web" || builds[0].Meta.Generation != 1 ||
			builds[0].Spec.Args["GREETING"] != "hello" || builds[0].Spec.Context != filepath.Join(repoRoot, "examples/hello") {
			t.Errorf("builds = %+v", builds)
		}
		var images []state.ImageRecord
		if err := yaml.Unmarshal([]byte(ok(t, "get", "images", "hello/web", "-o", "yaml")), &images); err != nil {
			t.Fatal(err)
		}
		if len(images) != 1 || images[0].Spec.Build != "hello/web" || len(images[0].Spec.Placement.Nodes) != 2 {
			t.Errorf("images = %+v", images)
		}
		if r := uc("get", "builds", "-o", "xml"); r.code != 1 || !strings.Contains(r.stderr, "-o xml") {
			t.Errorf("uc get builds -o xml: %v", r)
		}
		if r := uc("get", "volumes"); r.code != 1 || !strings.Contains(r.stderr, "volumes") {
			t.Errorf("uc get volumes: %v", r)
		}
	})

	t.Run("describe", func(t *testing.T) {
		out := ok(t, "describe", "build", "hello/web")
		for _, want := range []string{"Name:", "hello/web", "Context:", filepath.Join(repoRoot, "examples/hello"),
			"GREETING=hello", "Generation:", "Unschedulable", "no live node runs a builder (node1: no builder; node2: no builder)"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe build lacks %q:\n%s", want, out)
			}
		}
		out = ok(t, "describe", "image", "hello/web")
		for _, want := range []string{"Source:", "build:hello/web", "0/0 needed nodes", "node1 has no Docker Engine to pull with: not waited for",
			"node2 has no Docker Engine"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe image lacks %q:\n%s", want, out)
			}
		}
		if r := uc("describe", "build", "hello/nope"); r.code != 1 || !strings.Contains(r.stderr, `"hello/nope" not found`) {
			t.Errorf("describe of a missing build: %v", r)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		const header = "name: hello\nservices:\n  web:\n"
		for _, tc := range []struct {
			name, file, content string
			args                []string
			want                []string
		}{
			{name: "unknown node", file: "nodes.yaml",
				content: header + "    build:\n      context: .\n    x-machines: [node1, node9]\n",
				want:    []string{"nodes.yaml", "services.web.x-machines", `"node9"`, "node1, node2"}},
			{name: "unknown node in a constraint", file: "constraint.yaml",
				content: header + "    image: busybox\n    deploy:\n      placement:\n        constraints: [node.hostname == node9]\n",
				want:    []string{"constraint.yaml", "services.web.deploy.placement.constraints", `"node9"`}},
			{name: "malformed YAML", file: "broken.yaml", content: "services: [web: {\n",
				want: []string{"broken.yaml", "yaml"}},
			{name: "unknown attribute", file: "unknown.yaml", content: header + "    image: busybox\n    bogus: 1\n",
				want: []string{"unknown.yaml", "services.web.bogus", "unknown attribute"}},
			{name: "unreachable git context", file: "git.yaml",
				content: header + "    build:\n      context: https://github.com/docker/buildx.git#main\n",
				want:    []string{"git.yaml: services.web.build.context", "git ls-remote https://github.com/docker/buildx.git main"}},
			{name: "bad constraint", file: "badconstraint.yaml",
				content: header + "    image: busybox\n    deploy:\n      placement:\n        constraints: [node.role == manager]\n",
				want:    []string{"badconstraint.yaml", "services.web.deploy.placement.constraints[0]", "node.role"}},
			{name: "unreachable state API", file: "compose.yaml", content: header + "    image: busybox\n",
				args: []string{"--corrosion-api", "http://127.0.0.1:1"},
				want: []string{"http://127.0.0.1:1", "unreachable"}},
			{name: "missing file", args: []string{"-f", "does-not-exist.yaml"}, want: []string{"does-not-exist.yaml"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := snapshot(t)
				args := append([]string{"apply"}, tc.args...)
				if tc.file != "" {
					args = append(args, "-f", writeProject(t, tc.file, tc.content))
				}
				r := uc(args...)
				if r.code != 1 {
					t.Errorf("exit code %d, want 1: %v", r.code, r)
				}
				if r.stdout != "" {
					t.Errorf("a failed apply printed to stdout: %q", r.stdout)
				}
				if lines := strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n") + 1; lines != 1 || !strings.HasPrefix(r.stderr, "uc: ") {
					t.Errorf("want one line starting with `uc: `, got:\n%s", r.stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("error does not mention %q: %s", w, r.stderr)
					}
				}
				if after := snapshot(t); after != before {
					t.Errorf("a failed apply changed the state:\n%s", after)
				}
			})
		}
	})

	t.Run("apply with an override file", func(t *testing.T) {
		override := writeProject(t, "override.yaml",
			"services:\n  web:\n    build:\n      args:\n        GREETING: hi\n    x-machines: !override [node1]\n")
		out := changes(ok(t, "apply", "-f", hello, "-f", override))
		if out != "build hello/web configured\nimage hello/web configured\n" {
			t.Errorf("apply with override printed:\n%s", out)
		}
		row := tableRow(t, ok(t, "get", "images"), "hello/web")
		if row[3] != "0/0" || row[4] != "skipped(NoEngine):1" || row[5] != "nodes=node1" {
			t.Errorf("image row %q, want 0/0, skipped(NoEngine):1 on nodes=node1", row)
		}
		if row := tableRow(t, ok(t, "get", "builds"), "hello/web"); row[2] != "2" {
			t.Errorf("build row %q, want generation 2", row)
		}
		if out := changes(ok(t, "apply", "-f", hello)); out != "build hello/web configured\nimage hello/web configured\n" {
			t.Errorf("re-applying the base printed:\n%s", out)
		}
		var builds []state.BuildRecord
		if err := json.Unmarshal([]byte(ok(t, "get", "builds", "-o", "json")), &builds); err != nil {
			t.Fatal(err)
		}
		if len(builds) != 1 || builds[0].Meta.Generation != 3 || builds[0].Spec.Args["GREETING"] != "hello" {
			t.Errorf("builds = %+v, want generation 3 with GREETING=hello", builds)
		}
	})

	t.Run("project name flag", func(t *testing.T) {
		out := changes(ok(t, "apply", "-f", hello, "--project-name", "other"))
		if out != "build other/web created\nimage other/web created\n" {
			t.Errorf("apply --project-name other printed:\n%s", out)
		}
		out = ok(t, "delete", "image", "other/web")
		if out != "image other/web deleted\n" {
			t.Errorf("delete image printed %q", out)
		}
		if r := uc("delete", "image", "other/web"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("deleting it again: %v", r)
		}
		ok(t, "delete", "build", "other/web")
		if out := ok(t, "get", "builds"); strings.Contains(out, "other/web") || !strings.Contains(out, "hello/web") {
			t.Errorf("after deleting other/web:\n%s", out)
		}
	})

	t.Run("delete -f", func(t *testing.T) {
		out := ok(t, "delete", "-f", hello)
		if out != "build hello/web deleted\nimage hello/web deleted\n" {
			t.Errorf("delete -f printed:\n%s", out)
		}
		for _, kind := range []string{"builds", "images"} {
			if out := ok(t, "get", kind, "-o", "json"); strings.TrimSpace(out) != "[]" {
				t.Errorf("uc get %s after delete -f = %s", kind, out)
			}
		}
		if out := ok(t, "delete", "-f", hello); out != "nothing changed\n" {
			t.Errorf("second delete -f printed %q", out)
		}
	})

	t.Run("node stops", func(t *testing.T) {
		if err := c.procs["node2"].stop(); err != nil {
			t.Fatalf("node2 did not exit cleanly: %v\n%s", err, c.procs["node2"].logText())
		}
		out := ok(t, "get", "nodes")
		if row := tableRow(t, out, "node2"); row[1] != "Gone" {
			t.Errorf("node2 row %q after SIGTERM, want Gone", row)
		}
		if row := tableRow(t, out, "node1"); row[1] != "Ready" {
			t.Errorf("node1 row %q, want Ready", row)
		}
	})
}

func TestUCD(t *testing.T) {
	ucd := func(args ...string) result {
		cmd := exec.Command(filepath.Join(binDir, "ucd"), args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return result{out.String(), errb.String(), exit.ExitCode()}
		}
		if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), 0}
	}
	t.Run("schema", func(t *testing.T) {
		if r := ucd("schema"); r.code != 0 || r.stdout != state.Schema {
			t.Errorf("ucd schema does not print the schema: %v", r)
		}
	})
	c := startCluster(t, true)
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	stateAddr := strings.TrimPrefix(c.apiURL, "http://")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"state dir in use", []string{"state", "serve", "--data-dir", c.stateDir, "--listen", addr}, []string{"in use", c.stateDir}},
		{"run without --node", []string{"run", "--data-dir", t.TempDir()}, []string{"--node"}},
		{"bad labels", []string{"run", "--node", "n", "--data-dir", t.TempDir(), "--labels", "zone"}, []string{"--labels", `"zone"`}},
		{"run on a busy address", []string{"run", "--node", "n", "--data-dir", t.TempDir(), "--state-listen", stateAddr}, []string{stateAddr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ucd(tc.args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1: %v", r.code, r)
			}
			last := strings.TrimSpace(r.stderr)
			last = last[strings.LastIndex(last, "\n")+1:]
			if !strings.HasPrefix(last, "ucd: ") {
				t.Errorf("last stderr line %q does not start with `ucd: `", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not mention %q", last, w)
				}
			}
		})
	}
}

// changes keeps the per-spec lines of uc apply's output, dropping the lines
// about shipping contexts.
func changes(out string) string {
	var keep []string
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasPrefix(line, "contexts not shipped:") && !strings.HasPrefix(line, "context ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}
