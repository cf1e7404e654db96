// Package controllers runs one node's controllers together, as `ucd run`
// does: it opens the state (a Corrosion agent, or the embedded state it
// serves itself), checks the schema, and runs the node, build, pre-pull
// and registry controllers (one package each below this one) until it is
// told to stop. It sits at the root of controllers/ because that is where
// a reader looks for what wires them together, as controller-runtime's
// manager does; cmd/ucd stays a thin main (flags only), and tests start a
// whole node in process through Run.
package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	dockerclient "github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"

	apitypes "github.com/ucplane/uc/api"
	"github.com/ucplane/uc/controllers/build"
	"github.com/ucplane/uc/controllers/gitsync"
	"github.com/ucplane/uc/controllers/managedregistry"
	"github.com/ucplane/uc/controllers/node"
	"github.com/ucplane/uc/controllers/prepull"
	"github.com/ucplane/uc/controllers/webhook"
	"github.com/ucplane/uc/registry/forward"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
)

// Config is `ucd run`'s configuration.
type Config struct {
	Node           string
	DataDir        string
	CorrosionAPI   string // empty: serve the embedded state on StateListen
	CorrosionToken string
	StateListen    string
	SchemaPaths    []string // extra schema for the embedded state
	Labels         map[string]string
	// DockerHost is this node's Docker Engine; empty disables pre-pull.
	DockerHost string
	// BuildkitAddr is this node's buildkitd.
	BuildkitAddr string
	// BuildDriver is how this node builds: "buildkit" (BuildkitAddr) or
	// "docker" (DockerHost's embedded BuildKit). Empty: buildkit when
	// BuildkitAddr is set, else the node does not build.
	BuildDriver string
	// NativePlatforms, when set, are the platforms this node's builder
	// builds natively, instead of what its workers report first (as
	// buildx create --platform declares a node's platforms).
	NativePlatforms []string
	// NodeAPIListen is where a builder serves its node API (build logs);
	// default 127.0.0.1 on a free port. The address is published in state.
	NodeAPIListen string
	// MaxBuilds limits concurrent builds on this node (0: the default).
	MaxBuilds int
	// BaseWatch is how often the bases of builds that do not follow them
	// are checked for a move, reported in status (0: never).
	BaseWatch time.Duration
	// MaxPulls limits concurrent pre-pulls on this node (0: the default).
	MaxPulls int
	// PruneAfter, when set, removes images uc pulled here that no spec
	// places here any more, after this long (never while in use).
	PruneAfter time.Duration
	// Entitlements are the build entitlements this node grants.
	Entitlements []string
	// RegistryListen, when set, makes this node serve the internal registry.
	RegistryListen string
	// RegistryAddress is the internal registry's stable address: a
	// loopback host:port, the same on every node, that this node forwards
	// to wherever the registry runs now. Default DefaultRegistryAddress.
	RegistryAddress string
	// AdvertiseAddr is the IP other nodes reach this node at; a managed
	// registry on this node listens there. Default 127.0.0.1.
	AdvertiseAddr string
	// RegistryFailoverAfter is how long the registry's node may be silent
	// before another node starts the registry (0: the default, 30 s).
	RegistryFailoverAfter time.Duration
	// RegistryGC is how the served registry is collected (interval, disk
	// threshold, grace); only the GC fields are read.
	RegistryGC managedregistry.Config
	Version    string
	Heartbeat  time.Duration
	// StartTimeout is how long to wait for an unreachable state API at
	// start before giving up; default 30 s.
	StartTimeout time.Duration
	// CorrosionCA is a PEM file of CA certificates to trust for an
	// https:// CorrosionAPI, besides the system's.
	CorrosionCA string
	// ContextRetention and LogRetention bound a builder's fetched contexts
	// and build logs (zero fields: the defaults).
	ContextRetention build.Retention
	LogRetention     build.Retention
	// WebhookListen, when set, serves push webhooks (webhook.Path) there,
	// checked against WebhookSecret.
	WebhookListen string
	WebhookSecret []byte
	Logger        *slog.Logger
}

// DefaultRegistryAddress is the registry's stable address when
// RegistryAddress is unset.
const DefaultRegistryAddress = "127.0.0.1:5454"

// DefaultStartTimeout is how long Run waits for the state API at start.
const DefaultStartTimeout = 30 * time.Second

// Run runs the daemon until ctx is done. On a clean stop the node marks
// itself gone before the embedded state (if any) shuts down.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	api := cfg.CorrosionAPI
	stopState := func() error { return nil }
	if api == "" {
		var err error
		api, stopState, err = startEmbedded(ctx, StateConfig{
			DataDir: cfg.DataDir, Listen: cfg.StateListen, Token: cfg.CorrosionToken, SchemaPaths: cfg.SchemaPaths,
		}, log)
		if err != nil {
			return err
		}
	}
	err := runNode(ctx, cfg, api, log)
	return errors.Join(err, stopState())
}

// startEmbedded serves the embedded state in this process. It runs on its
// own context so that it outlives the controllers during shutdown.
func startEmbedded(ctx context.Context, sc StateConfig, log *slog.Logger) (string, func() error, error) {
	lock, err := LockDataDir(sc.DataDir)
	if err != nil {
		return "", nil, err
	}
	srv, ln, err := OpenEmbedded(ctx, sc, log)
	if err != nil {
		lock.Close()
		return "", nil, err
	}
	stateCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(stateCtx, ln) }()
	log.Info("Serving the embedded state.", "addr", ln.Addr().String())
	stop := func() error {
		cancel()
		defer lock.Close()
		return <-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}

func runNode(ctx context.Context, cfg Config, api string, log *slog.Logger) error {
	opts := []corrosion.Option{corrosion.WithCAFile(cfg.CorrosionCA)}
	if cfg.CorrosionToken != "" {
		opts = append(opts, corrosion.WithToken(cfg.CorrosionToken))
	}
	client, err := corrosion.New(api, opts...)
	if errors.Is(err, corrosion.ErrCAFile) {
		return fmt.Errorf("--corrosion-ca: %w", err)
	}
	if err != nil {
		return err
	}
	store := state.NewStore(client)
	if err := waitForSchema(ctx, store, cmp.Or(cfg.StartTimeout, DefaultStartTimeout), log); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the node ever registered: a clean stop
		}
		return err
	}
	cache := state.NewCache(store, log)
	cache.Start(ctx)
	if err := cache.WaitForSync(ctx); err != nil {
		return nil // stopped while listing: a clean stop
	}
	runnables, closeAll, err := assemble(cache, cfg, log)
	if err != nil {
		return err
	}
	defer closeAll()
	log.Info("Node is running its controllers.", "state", api, "runnables", len(runnables))
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range runnables {
		g.Go(func() error { return run(gctx) })
	}
	runErr := g.Wait()
	return errors.Join(runErr, markGone(store, cfg.Node, log))
}

// runnable runs until its context is done.
type runnable func(context.Context) error

// assemble builds this node's controllers from its configuration: every
// node heartbeats; builders build (the others only report builds nobody
// can run); nodes with an engine pre-pull; one node may serve the registry.
func assemble(cache *state.Cache, cfg Config, log *slog.Logger) ([]runnable, func(), error) {
	store := cache.Store()
	capacity := apitypes.NodeCapacity{}
	stable, forwarder, err := registryForwarder(cache, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	runs := []runnable{forwarder}
	closeAll := func() {}
	creds := cache.CredentialSource()
	driver, err := buildDriver(cfg, creds)
	if err != nil {
		return nil, nil, err
	}
	if driver != nil {
		capacity.Builders = []string{driver.Name()}
		capacity.Platforms, capacity.Emulated = probePlatforms(driver, log)
		if len(cfg.NativePlatforms) > 0 {
			native, err := normalPlatforms(cfg.NativePlatforms)
			if err != nil {
				return nil, nil, fmt.Errorf("--builder-platforms: %w", err)
			}
			capacity.Platforms, capacity.Emulated = declareNative(capacity.Platforms, native)
		}
		capacity.Entitlements = cfg.Entitlements
		logDir := filepath.Join(cfg.DataDir, "logs", "builds")
		api, serve, err := nodeAPI(cmp.Or(cfg.NodeAPIListen, "127.0.0.1:0"), build.LogHandler(logDir))
		if err != nil {
			return nil, nil, err
		}
		capacity.API = api
		buildCfg := build.Config{Node: cfg.Node, Driver: driver, MaxBuilds: cfg.MaxBuilds, LogDir: logDir,
			ContextCacheDir: filepath.Join(cfg.DataDir, "contexts"), DataDir: cfg.DataDir, Credentials: creds, Registry: stable,
			BaseWatch: cmp.Or(cfg.BaseWatch, -1)}
		if cfg.DockerHost != "" {
			engine, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(cfg.DockerHost), dockerclient.WithAPIVersionNegotiation())
			if err != nil {
				return nil, nil, fmt.Errorf("docker engine %s: %w", cfg.DockerHost, err)
			}
			buildCfg.Engine = engine
			closeAll = func() { engine.Close() }
		}
		runs = append(runs, serve, build.New(cache, buildCfg, log).Run,
			build.Janitor(cache.Reader, buildCfg, cfg.ContextRetention, cfg.LogRetention, log))
	} else {
		// Says why a build cannot run when no live node builds at all.
		runs = append(runs, build.New(cache, build.Config{Node: cfg.Node}, log).Run)
	}
	capacity.Address = cmp.Or(cfg.AdvertiseAddr, "127.0.0.1")
	if cfg.DockerHost != "" {
		engine, err := prepull.NewDocker(cfg.DockerHost)
		if err != nil {
			return nil, nil, err
		}
		closeBuild := closeAll
		closeAll = func() { closeBuild(); engine.Close() }
		capacity.Engine = true
		pulls, err := prepull.OpenPullLog(filepath.Join(cfg.DataDir, "prepull", "pulls.json"))
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, prepull.New(cache, engine, prepull.Config{Node: cfg.Node, MaxPulls: cfg.MaxPulls,
			InternalAuth: internalRegistryAuth(cache, stable, creds), Pulls: pulls, Registry: stable}, log).Run)
		if cfg.PruneAfter > 0 {
			runs = append(runs, prepull.NewPruner(store, engine.Client(), pulls, cfg.Node, cfg.PruneAfter, log).Run)
		}
		if cfg.RegistryListen == "" { // a node serving the registry in process takes no part in the managed one
			managed, err := managedRegistry(cache, cfg, capacity.Address, log)
			if err != nil {
				return nil, nil, err
			}
			runs = append(runs, managed)
		}
	}
	if cfg.WebhookListen != "" {
		hooks, err := webhookServer(cfg.WebhookListen, &webhook.Handler{Secret: cfg.WebhookSecret, State: store, Log: log.With("component", "webhook")})
		if err != nil {
			return nil, nil, err
		}
		runs = append(runs, hooks)
	}
	runs = append(runs, gitsync.New(cache, gitsync.Config{Node: cfg.Node, Dir: filepath.Join(cfg.DataDir, "syncs")}, log).Run)
	nodeCfg := node.Config{Name: cfg.Node, Labels: cfg.Labels, Version: cfg.Version, Heartbeat: cfg.Heartbeat, Capacity: capacity}
	runs = append(runs, node.New(cache, nodeCfg, log).Run)
	if cfg.RegistryListen != "" {
		regCfg := cfg.RegistryGC
		regCfg.Node, regCfg.DataDir, regCfg.Listen = cfg.Node, cfg.DataDir, cfg.RegistryListen
		runs = append(runs, func(ctx context.Context) error { return managedregistry.Run(ctx, store, regCfg, log) })
	}
	return runs, closeAll, nil
}

// managedRegistry is the controller that runs the registry container when
// this node holds it.
func managedRegistry(cache *state.Cache, cfg Config, addr string, log *slog.Logger) (runnable, error) {
	engine, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(cfg.DockerHost), dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", cfg.DockerHost, err)
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	mcfg := managedregistry.ManagedConfig{Config: cfg.RegistryGC, Address: addr, Binary: bin, FailoverAfter: cfg.RegistryFailoverAfter,
		Credentials: cache.CredentialSource()}
	mcfg.Node, mcfg.DataDir = cfg.Node, cfg.DataDir
	ctrl := managedregistry.NewManaged(cache, engine, mcfg, log)
	return func(ctx context.Context) error {
		defer engine.Close()
		return ctrl.Run(ctx)
	}, nil
}

// internalRegistryAuth authenticates the engine's pulls from the internal
// registry with its credential; other registries get none.
func internalRegistryAuth(cache *state.Cache, stable string, creds apitypes.CredentialSource) func(context.Context, string) string {
	return func(ctx context.Context, ref string) string {
		host, _, _ := apitypes.SplitImageRef(ref)
		registry, err := cache.NodeRegistry(ctx, stable, time.Now())
		if err != nil || host != registry {
			return ""
		}
		cred, ok := creds(ctx)
		return regclient.EngineAuth(cred, ok, registry)
	}
}

// registryForwarder serves the registry's stable address on this node
// (registry/forward), forwarding to wherever the cache says the registry
// runs now.
func registryForwarder(cache *state.Cache, cfg Config, log *slog.Logger) (string, runnable, error) {
	stable := cmp.Or(cfg.RegistryAddress, DefaultRegistryAddress)
	if err := checkStableAddress(stable, cfg.RegistryListen); err != nil {
		return "", nil, err
	}
	f := &forward.Forwarder{Listen: stable, Log: log.With("component", "registry-forward"),
		Target: func(ctx context.Context) (string, error) {
			return cache.RegistryAddress(ctx, time.Now(), apitypes.LiveTimeout)
		}}
	return stable, f.Run, nil
}

// checkStableAddress refuses a stable address that is not a loopback
// host:port, or that the in-process registry itself listens on.
func checkStableAddress(addr, registryListen string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return fmt.Errorf("--registry-address %q: want a loopback host:port with a fixed port, e.g. %s", addr, DefaultRegistryAddress)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--registry-address %q: the stable address is each node's own loopback port; %s is not a loopback IP (engines trust 127.0.0.0/8 without flags)", addr, host)
	}
	if addr == registryListen {
		return fmt.Errorf("--registry-address %q: --registry-listen serves the registry on the same address; the stable address forwards to it and needs a port of its own", addr)
	}
	return nil
}

// buildDriver is the node's builder driver, or nil when it does not build.
func buildDriver(cfg Config, creds apitypes.CredentialSource) (build.Driver, error) {
	name := cfg.BuildDriver
	if name == "" {
		if cfg.BuildkitAddr == "" {
			return nil, nil
		}
		name = build.DriverBuildkit
	}
	d, err := build.NewDriver(name, cfg.BuildkitAddr, cfg.DockerHost, creds)
	if err != nil {
		return nil, fmt.Errorf("--build-driver: %w", err)
	}
	return d, nil
}

// normalPlatforms parses platforms into their normal form (linux/arm64).
func normalPlatforms(list []string) ([]string, error) {
	out := make([]string, len(list))
	for i, p := range list {
		normal, err := apitypes.NormalPlatform(p)
		if err != nil {
			return nil, err
		}
		out[i] = normal
	}
	return out, nil
}

// declareNative advertises the declared platforms as native, and every
// other platform the workers report as emulated.
func declareNative(reported, native []string) (all, emulated []string) {
	all = slices.Clone(native)
	for _, p := range reported {
		if !slices.Contains(all, p) {
			all = append(all, p)
			emulated = append(emulated, p)
		}
	}
	return all, emulated
}

// probePlatforms asks the driver's workers what they build for. A driver
// that is down at start is still advertised, with no platforms: it then
// takes only builds that name none.
func probePlatforms(d build.Driver, log *slog.Logger) (all, emulated []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, emulated, err := build.Platforms(ctx, d)
	if err != nil {
		log.Warn("Cannot list the builder's platforms; advertising none.", "driver", d.Name(), "err", err)
	}
	return all, emulated
}

// nodeAPI binds this node's own HTTP API, which serves the full build
// logs that only this node keeps, and returns its address and server.
func nodeAPI(listen string, logs http.Handler) (string, runnable, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", nil, fmt.Errorf("serve the node API on %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/logs/builds", logs)
	return ln.Addr().String(), serveHTTP(ln, mux), nil
}

// webhookServer binds the push webhook endpoint.
func webhookServer(listen string, hooks http.Handler) (runnable, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("serve webhooks on %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(webhook.Path, hooks)
	return serveHTTP(ln, mux), nil
}

// serveHTTP serves handler on ln until the context is done.
func serveHTTP(ln net.Listener, handler http.Handler) runnable {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(shut)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// waitForSchema retries while the state API is unreachable (an agent may
// still be starting) but fails at once when the schema is incomplete.
func waitForSchema(ctx context.Context, store *state.Store, timeout time.Duration, log *slog.Logger) error {
	bo := backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(timeout))
	return backoff.RetryNotify(func() error {
		err := store.CheckSchema(ctx)
		var unreachable *corrosion.Unreachable
		if err != nil && !errors.As(err, &unreachable) && !gatewayError(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx), func(err error, d time.Duration) {
		log.Warn("State API is not answering yet; retrying.", "err", err, "retry_in", d)
	})
}

// gatewayError is a proxy in front of the state API saying that the API
// behind it is not answering (yet): 502, 503 or 504.
func gatewayError(err error) bool {
	var apiErr *corrosion.APIError
	return errors.As(err, &apiErr) && (apiErr.Status == http.StatusBadGateway ||
		apiErr.Status == http.StatusServiceUnavailable || apiErr.Status == http.StatusGatewayTimeout)
}

func markGone(store *state.Store, name string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := store.MarkNodeGone(ctx, name); err != nil {
		return err
	}
	log.Info("Node marked itself gone.")
	return nil
}

// listen opens the state listener with an error that names the address.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve embedded state on %s: %w", addr, err)
	}
	return ln, nil
}
