package prepull

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// Docker is an Engine backed by a Docker Engine API: Docker's, or
// Podman's Docker-compatible one.
type Docker struct {
	c *client.Client

	mu           sync.Mutex
	engineKnown  bool // podman is known: the engine answered once
	enginePodman bool
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

// Client is the engine's API client.
func (d *Docker) Client() *client.Client { return d.c }

// Close releases the client.
func (d *Docker) Close() error { return d.c.Close() }

// Pull pulls ref and returns its repository digest, reporting per-layer
// progress as the engine streams it.
func (d *Docker) Pull(ctx context.Context, ref, auth string, progress func(Progress)) (string, error) {
	return d.PullPlatform(ctx, ref, auth, "", progress)
}

// PullPlatform pulls one platform of ref ("" is the engine's own), as
// docker pull --platform does.
func (d *Docker) PullPlatform(ctx context.Context, ref, auth, platform string, progress func(Progress)) (string, error) {
	rc, err := d.c.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth, Platform: platform})
	if err != nil {
		return "", d.typed(ctx, err, ref, auth)
	}
	defer rc.Close()
	if err := followPull(rc, progress); err != nil {
		return "", d.typed(ctx, err, ref, auth)
	}
	return d.digestOf(ctx, ref)
}

// Progress is a pull's state: layers done of those seen, and the bytes
// downloaded of those the engine announced.
type Progress struct {
	LayersDone, LayersTotal int
	Bytes, BytesTotal       int64
}

type layerProgress struct {
	current, total int64
	done           bool
}

// followPull reads the engine's JSON stream. Errors of a pull arrive
// inside it, not as HTTP errors.
func followPull(r io.Reader, progress func(Progress)) error {
	dec := json.NewDecoder(r)
	layers := map[string]*layerProgress{}
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != nil {
			return m.Error
		}
		if trackLayer(layers, m) && progress != nil {
			progress(sumLayers(layers))
		}
	}
}

// trackLayer folds one message into the layers; false if it is not about
// a layer.
func trackLayer(layers map[string]*layerProgress, m jsonmessage.JSONMessage) bool {
	l, known := layers[m.ID]
	switch {
	case m.ID == "":
		return false
	case !known && (m.Status == "Pulling fs layer" || m.Status == "Already exists" || m.Status == "Waiting"):
		l = &layerProgress{}
		layers[m.ID] = l
	case !known:
		return false
	}
	switch m.Status {
	case "Downloading":
		if m.Progress != nil {
			l.current, l.total = m.Progress.Current, m.Progress.Total
		}
	case "Download complete", "Verifying Checksum":
		l.current = l.total
	case "Pull complete", "Already exists":
		l.current, l.done = l.total, true
	}
	return true
}

func sumLayers(layers map[string]*layerProgress) Progress {
	p := Progress{LayersTotal: len(layers)}
	for _, l := range layers {
		p.Bytes += l.current
		p.BytesTotal += l.total
		if l.done {
			p.LayersDone++
		}
	}
	return p
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
func (d *Docker) Resolve(ctx context.Context, ref, auth string) (string, error) {
	info, err := d.c.DistributionInspect(ctx, ref, auth)
	if client.IsErrNotFound(err) && d.isPodman(ctx) {
		// Podman (4.3) has no distribution endpoint: ask the registry.
		return d.resolveAtRegistry(ctx, ref, auth)
	}
	if err != nil {
		return "", d.typed(ctx, err, ref, auth)
	}
	return info.Descriptor.Digest.String(), nil
}

// isPodman reports whether the engine is Podman's compatible API.
func (d *Docker) isPodman(ctx context.Context) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.engineKnown {
		v, err := d.c.ServerVersion(ctx)
		if err != nil {
			return false // asked again next time
		}
		d.engineKnown = true
		d.enginePodman = slices.ContainsFunc(v.Components, func(c types.ComponentVersion) bool { return strings.HasPrefix(c.Name, "Podman") })
	}
	return d.enginePodman
}

// Has reports whether the engine holds ref.
func (d *Docker) Has(ctx context.Context, ref string) (bool, error) {
	_, err := d.c.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
