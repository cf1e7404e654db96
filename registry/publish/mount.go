package publish

import (
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Mounts remembers, per target registry, a repository each blob was
// pushed to by this process, so that a later copy of an image sharing
// it (a project's images on one base) asks the registry to mount it from
// there (POST …/blobs/uploads/?mount=…&from=…) instead of uploading it
// again: the registry then links it, where the credential may read the
// source repository, or else asks for the upload as usual.
type Mounts struct {
	mu   sync.Mutex
	seen map[string]map[v1.Hash]name.Reference // registry → blob → an image holding it
}

// wrap returns img with its layers that dst's registry already holds
// (pushed by this process) marked mountable from there.
func (m *Mounts) wrap(img v1.Image, dst name.Reference) v1.Image {
	if m == nil {
		return img
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	from := m.seen[dst.Context().RegistryStr()]
	if len(from) == 0 {
		return img
	}
	return mountable{Image: img, from: from}
}

// record notes img's layers as held at dst.
func (m *Mounts) record(img v1.Image, dst name.Reference) {
	if m == nil {
		return
	}
	layers, err := img.Layers()
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]map[v1.Hash]name.Reference{}
	}
	reg := dst.Context().RegistryStr()
	if m.seen[reg] == nil {
		m.seen[reg] = map[v1.Hash]name.Reference{}
	}
	for _, l := range layers {
		if d, err := l.Digest(); err == nil {
			if _, ok := m.seen[reg][d]; !ok {
				m.seen[reg][d] = dst
			}
		}
	}
}

// mountable is an image whose known layers are mountable from another
// repository of the target registry.
type mountable struct {
	v1.Image
	from map[v1.Hash]name.Reference
}

func (m mountable) Layers() ([]v1.Layer, error) {
	layers, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		if d, err := l.Digest(); err == nil {
			if ref, ok := m.from[d]; ok {
				out[i] = &remote.MountableLayer{Layer: l, Reference: ref}
			}
		}
	}
	return out, nil
}

func (m mountable) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	if ref, ok := m.from[h]; ok {
		return &remote.MountableLayer{Layer: l, Reference: ref}, nil
	}
	return l, nil
}
