package prepull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Docker is an Engine backed by a Docker Engine API.
type Docker struct {
	c *client.Client
	// Auth is the X-Registry-Auth for pulling ref ("" for anonymous).
	Auth func(ctx context.Context, ref string) string
}

// NewDocker connects to the engine at host (e.g. unix:///var/run/docker.sock),
// negotiating the API version, so Debian's Engine 20.10 works too.
func NewDocker(host string) (*Docker, error) {
	c, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker engine %s: %w", host, err)
	}
	return &Docker{c: c}, nil
}

// Close releases the client.
func (d *Docker) Close() error { return d.c.Close() }

// Pull pulls ref and returns its repository digest.
func (d *Docker) Pull(ctx context.Context, ref string) (string, error) {
	var opts image.PullOptions
	if d.Auth != nil {
		opts.RegistryAuth = d.Auth(ctx, ref)
	}
	rc, err := d.c.ImagePull(ctx, ref, opts)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	// Errors of a pull arrive inside the JSON stream, not as HTTP errors.
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return "", err
	}
	return d.digestOf(ctx, ref)
}

func (d *Docker) digestOf(ctx context.Context, ref string) (string, error) {
	if _, dg, ok := strings.Cut(ref, "@"); ok {
		return dg, nil
	}
	info, err := d.c.ImageInspect(ctx, ref)
	if err != nil {
		return "", err
	}
	for _, rd := range info.RepoDigests {
		if _, dg, ok := strings.Cut(rd, "@"); ok {
			return dg, nil
		}
	}
	return info.ID, nil
}

// Resolve asks the registry, through the engine (its mirrors, insecure
// registries and credentials), which digest ref's tag names now, without
// pulling.
func (d *Docker) Resolve(ctx context.Context, ref string) (string, error) {
	var auth string
	if d.Auth != nil {
		auth = d.Auth(ctx, ref)
	}
	info, err := d.c.DistributionInspect(ctx, ref, auth)
	if err != nil {
		return "", err
	}
	return info.Descriptor.Digest.String(), nil
}

// Has reports whether the engine holds ref.
func (d *Docker) Has(ctx context.Context, ref string) (bool, error) {
	_, err := d.c.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// IsNotFound tells a missing image or tag (retrying cannot help) from a
// registry that is down.
func IsNotFound(err error) bool {
	var jm *jsonmessage.JSONError
	msg := err.Error()
	if errors.As(err, &jm) {
		msg = jm.Message
	}
	for _, s := range []string{"manifest unknown", "not found", "does not exist", "name unknown"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
