package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
	"github.com/ucplane/uc/test/harness"
)

// registryPort is the managed registry's port: apart from the e2e tests'
// and the benches' registries.
const registryPort = "5004"

// cluster is a state server, the two proxies in front of it, and two ucd
// nodes on the hack engines, each with its data dir on a tmpfs of its own
// (so that one can be filled). The registry is the managed one, which
// fails over.
type cluster struct {
	dir       string
	env       map[string]string
	bins      harness.Binaries
	stateAddr string
	stable    string // the registry's stable address, a port of this cluster's own
	state     *harness.Proc
	tcp       *tcpProxy
	http      *httpProxy
	nodes     map[string]*harness.Proc
	store     *state.Store // straight to the state server, not through the proxies
	struck    time.Time    // when the running fault struck
}

// strike notes that the fault strikes now: its time to converge counts
// from here.
func (c *cluster) strike() { c.struck = time.Now() }

var nodeNames = []string{"node1", "node2"}

func startCluster(ctx context.Context, bins harness.Binaries, env map[string]string, dir string) (*cluster, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	stable, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, env: env, bins: bins, stateAddr: addr, stable: stable, nodes: map[string]*harness.Proc{}}
	if err := c.waitState(ctx); err != nil {
		return nil, err
	}
	if c.http, err = newHTTPProxy(addr); err != nil {
		return nil, err
	}
	if c.tcp, err = newTCPProxy(c.http.addr()); err != nil {
		return nil, err
	}
	client, err := corrosion.New("http://" + addr)
	if err != nil {
		return nil, err
	}
	c.store = state.NewStore(client)
	for _, n := range nodeNames {
		if err := c.mountData(n); err != nil {
			c.cleanup()
			return nil, err
		}
		if err := c.startNode(n); err != nil {
			c.cleanup()
			return nil, err
		}
	}
	if err := c.waitNodes(ctx, 60*time.Second); err != nil {
		c.cleanup()
		return nil, err
	}
	if out, err := c.uc(ctx, "", "registry", "configure", "--port", registryPort); err != nil {
		c.cleanup()
		return nil, fmt.Errorf("uc registry configure: %v: %s", err, out)
	}
	if err := c.waitHealthy(ctx, 2*time.Minute); err != nil {
		c.cleanup()
		return nil, err
	}
	return c, nil
}

func (c *cluster) startState() error {
	p, err := harness.StartProc("ucd state", filepath.Join(c.dir, "state.log"), c.bins.UCD, "state", "serve",
		"--data-dir", filepath.Join(c.dir, "state"), "--listen", c.stateAddr)
	c.state = p
	return err
}

// waitState starts the state server (again, on its data and address, as a
// supervisor would) and waits for it to listen.
func (c *cluster) waitState(ctx context.Context) error {
	if err := c.startState(); err != nil {
		return err
	}
	return waitUntil(ctx, 30*time.Second, func() error {
		conn, err := net.DialTimeout("tcp", c.stateAddr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

func (c *cluster) dataDir(node string) string { return filepath.Join(c.dir, node) }

// mountData gives node's data dir a tmpfs, which the disk-full fault fills.
func (c *cluster) mountData(node string) error {
	dir := c.dataDir(node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1g"); err != nil {
		return fmt.Errorf("mount a tmpfs on %s (chaos runs as root): %w", dir, err)
	}
	return nil
}

func (c *cluster) startNode(node string) error {
	i := strings.TrimPrefix(node, "node")
	p, err := harness.StartProc("ucd "+node, filepath.Join(c.dir, node+".log"), c.bins.UCD, "run", "--node", node,
		"--data-dir", c.dataDir(node), "--corrosion-api", "http://"+c.tcp.addr(), "--heartbeat", "1s",
		"--docker-host", c.env["UC_DOCKER_HOST_"+i], "--buildkit-addr", c.env["UC_BUILDKIT_ADDR"],
		"--advertise-addr", "127.0.0."+i, "--registry-failover-after", "5s",
		"--registry-gc-interval", "5s", "--registry-gc-grace", "30s", "--registry-address", c.stable)
	c.nodes[node] = p
	return err
}

// killNode kills a node's ucd with SIGKILL.
func (c *cluster) killNode(node string) { c.nodes[node].Kill() }

// waitHealthy waits until both nodes are Ready and a registry serves.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	return waitUntil(ctx, timeout, func() error {
		if err := c.nodesLive(ctx); err != nil {
			return err
		}
		_, _, err := c.registry(ctx)
		return err
	})
}

// waitNodes waits until both nodes are Ready.
func (c *cluster) waitNodes(ctx context.Context, timeout time.Duration) error {
	return waitUntil(ctx, timeout, func() error { return c.nodesLive(ctx) })
}

// nodesLive checks that every node's ucd runs and heartbeats.
func (c *cluster) nodesLive(ctx context.Context) error {
	for name, p := range c.nodes {
		if err := p.Exited(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	nodes, err := c.store.ListNodes(ctx)
	if err != nil {
		return err
	}
	live := 0
	for _, n := range nodes {
		if n.Live(time.Now(), api.LiveTimeout) {
			live++
		}
	}
	if live < len(nodeNames) {
		return fmt.Errorf("%d of %d nodes live", live, len(nodeNames))
	}
	return nil
}

// registry is the node serving the registry and its address.
func (c *cluster) registry(ctx context.Context) (node, addr string, err error) {
	statuses, err := c.store.ListRegistryStatus(ctx)
	if err != nil {
		return "", "", err
	}
	addr, err = c.store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
	if err != nil {
		return "", "", err
	}
	for _, st := range statuses {
		if st.Address == addr && api.IsTrue(st.Conditions, api.ConditionReady) {
			return st.Node, addr, nil
		}
	}
	return "", "", errors.New("no ready registry")
}

// uc runs the CLI against the state server (not through the proxies: the
// faults are between ucd and the state).
func (c *cluster) uc(ctx context.Context, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bins.UC, append([]string{"--corrosion-api", "http://" + c.stateAddr}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs the docker CLI against node's engine.
func (c *cluster) docker(ctx context.Context, node string, args ...string) (string, error) {
	host := c.env["UC_DOCKER_HOST_"+strings.TrimPrefix(node, "node")]
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...).CombinedOutput()
	return string(out), err
}

// cleanup stops everything chaos started and removes the registry
// containers, which outlive ucd by design.
func (c *cluster) cleanup() {
	for _, p := range c.nodes {
		p.Stop()
	}
	if c.tcp != nil {
		c.tcp.stop()
	}
	if c.http != nil {
		c.http.stop()
	}
	if c.state != nil {
		c.state.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range nodeNames {
		_, _ = c.docker(ctx, n, "rm", "-f", "uc-registry")
		_ = syscall.Unmount(c.dataDir(n), syscall.MNT_DETACH)
	}
}

// waitUntil polls fn every 200 ms until it returns nil or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
