package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	dockerclient "github.com/docker/docker/client"
	"github.com/moby/buildkit/client"

	"github.com/ucplane/uc/api"
)

// Builder drivers: how a node reaches a BuildKit.
const (
	// DriverBuildkit is a buildkitd of its own, at an address.
	DriverBuildkit = "buildkit"
	// DriverDocker is the Docker Engine's embedded BuildKit, reached through
	// the Engine API's /grpc and /session endpoints, as buildx's docker
	// driver does. It exports into the engine (the moby exporter); the image
	// is then pushed by the engine.
	DriverDocker = "docker"
)

// Driver is one way to run a solve and get the image into the registry.
type Driver interface {
	Name() string
	// Open connects to the driver's BuildKit.
	Open(ctx context.Context) (*client.Client, error)
	// configure sets the exports and cache of a solve that stores the image
	// under refs.
	configure(opt *client.SolveOpt, spec api.BuildSpec, registry string, refs []string) error
	// finish turns a finished solve into the image's digest in the
	// registry, pushing first if the exporter did not.
	finish(ctx context.Context, resp *client.SolveResponse, refs []string, logw io.Writer) (string, error)
}

// NewDriver returns the named driver: buildkit needs buildkitAddr, docker
// needs dockerHost (and pushes with creds when the registry has auth).
func NewDriver(name, buildkitAddr, dockerHost string, creds api.CredentialSource) (Driver, error) {
	switch name {
	case DriverBuildkit:
		if buildkitAddr == "" {
			return nil, errors.New("the buildkit driver needs --buildkit-addr")
		}
		return &buildkitDriver{addr: buildkitAddr}, nil
	case DriverDocker:
		if dockerHost == "" {
			return nil, errors.New("the docker driver needs --docker-host")
		}
		c, err := dockerclient.NewClientWithOpts(dockerclient.WithHost(dockerHost), dockerclient.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker engine %s: %w", dockerHost, err)
		}
		return &dockerDriver{host: dockerHost, engine: c, creds: creds}, nil
	}
	return nil, fmt.Errorf("unknown build driver %q (want %s or %s)", name, DriverBuildkit, DriverDocker)
}

// Platforms lists the platforms the driver's workers build for, as a node
// advertises them, and which of those run under emulation.
func Platforms(ctx context.Context, d Driver) (all, emulated []string, err error) {
	c, err := d.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s driver: list workers: %w", d.Name(), err)
	}
	for _, w := range workers {
		for i, p := range w.Platforms {
			s := platforms.Format(platforms.Normalize(p))
			if slices.Contains(all, s) {
				continue
			}
			all = append(all, s)
			// A worker lists its host's platform first, then the ones its
			// emulators add (BuildKit's archutil): another CPU architecture
			// than the first is emulated.
			if i > 0 && p.Architecture != w.Platforms[0].Architecture {
				emulated = append(emulated, s)
			}
		}
	}
	return all, emulated, nil
}

type buildkitDriver struct{ addr string }

func (d *buildkitDriver) Name() string { return DriverBuildkit }

func (d *buildkitDriver) Open(ctx context.Context) (*client.Client, error) {
	c, err := client.New(ctx, d.addr)
	if err != nil {
		return nil, transient(fmt.Errorf("connect to buildkitd %s: %w", d.addr, err))
	}
	return c, nil
}

func (d *buildkitDriver) configure(opt *client.SolveOpt, spec api.BuildSpec, registry string, refs []string) (err error) {
	opt.Exports = []client.ExportEntry{{
		Type: client.ExporterImage,
		Attrs: map[string]string{"name": strings.Join(refs, ","), "push": "true", "registry.insecure": "true",
			"rewrite-timestamp": "true"},
	}}
	opt.CacheImports, opt.CacheExports, err = cacheOptions(registry, spec)
	return err
}

func (d *buildkitDriver) finish(_ context.Context, resp *client.SolveResponse, _ []string, _ io.Writer) (string, error) {
	dg := resp.ExporterResponse["containerimage.digest"]
	if dg == "" {
		return "", errors.New("buildkitd returned no image digest")
	}
	return dg, nil
}

type dockerDriver struct {
	host   string
	engine *dockerclient.Client
	creds  api.CredentialSource
}

func (d *dockerDriver) Name() string { return DriverDocker }

func (d *dockerDriver) Open(ctx context.Context) (*client.Client, error) {
	c, err := client.New(ctx, "",
		client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return d.engine.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		client.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return d.engine.DialHijack(ctx, "/session", proto, meta)
		}))
	if err != nil {
		return nil, transient(fmt.Errorf("connect to the BuildKit of docker engine %s: %w", d.host, err))
	}
	return c, nil
}

// configure exports into the engine. The engine's BuildKit (Engine 20.10:
// BuildKit 0.8, classic image store) cannot export registry cache or
// attestations, so builds that ask for them are refused with the reason;
// the default cluster cache travels inline, inside the pushed image.
func (d *dockerDriver) configure(opt *client.SolveOpt, spec api.BuildSpec, registry string, refs []string) error {
	for field, set := range map[string]bool{"cache_to": len(spec.CacheTo) > 0,
		"provenance": attestation(spec.Provenance, "x") != "", "sbom": attestation(spec.SBOM, "x") != ""} {
		if set {
			return fmt.Errorf("%s needs the buildkit driver: the docker driver's BuildKit (the engine's) cannot export it", field)
		}
	}
	if len(spec.Platforms) > 1 {
		return errors.New("a multi-platform build needs the buildkit driver: the docker driver exports into the engine, one platform at a time")
	}
	opt.Exports = []client.ExportEntry{{Type: "moby", Attrs: map[string]string{"name": strings.Join(refs, ",")}}}
	imports, _, err := cacheOptions(registry, spec)
	if err != nil {
		return err
	}
	// The image of the last build carries its cache inline.
	opt.CacheImports = append(imports, registryCache(refs[0]))
	opt.CacheExports = []client.CacheOptionsEntry{{Type: "inline"}}
	return nil
}

// finish pushes every name from the engine to the registry; the registry's
// manifest digest, not the engine's image ID, is the build's result.
func (d *dockerDriver) finish(ctx context.Context, _ *client.SolveResponse, refs []string, logw io.Writer) (string, error) {
	var digest string
	for _, ref := range refs {
		dg, err := d.push(ctx, ref, logw)
		if err != nil {
			return "", fmt.Errorf("push %s from docker engine %s: %w", ref, d.host, err)
		}
		if digest == "" {
			digest = dg
		}
	}
	return digest, nil
}

func (d *dockerDriver) push(ctx context.Context, ref string, logw io.Writer) (string, error) {
	return enginePush(ctx, d.engine, d.creds, ref, logw)
}
