// Package publish copies images between registries by digest, with
// go-containerregistry: the internal registry to external ones (x-uc-push,
// uc images publish) and back (uc images import). Only the blobs the
// target lacks are sent, and a blob the target holds in another of its
// repositories is mounted rather than uploaded, where it allows that.
package publish

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ucplane/uc/api"
)

// Endpoint is one side of a copy.
type Endpoint struct {
	Ref string
	// Credential, when set, is sent as basic auth (or exchanged for a
	// token, as the registry asks).
	Credential *api.Credential
	// Insecure allows plain HTTP (the internal registry on loopback).
	Insecure bool
	// Transport carries the requests; nil: http.DefaultTransport.
	Transport http.RoundTripper
}

// Copy copies the image or index src names to dst and returns its digest,
// which is the same on both sides: the manifest is copied byte for byte.
func Copy(ctx context.Context, src, dst Endpoint) (string, error) {
	return (*Mounts)(nil).Copy(ctx, src, dst)
}

// Copy is Copy that mounts the blobs earlier copies of this Mounts pushed
// to the same registry, instead of uploading them again.
func (m *Mounts) Copy(ctx context.Context, src, dst Endpoint) (string, error) {
	srcRef, err := src.reference()
	if err != nil {
		return "", err
	}
	dstRef, err := dst.reference()
	if err != nil {
		return "", err
	}
	desc, err := remote.Get(srcRef, src.options(ctx)...)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", src.Ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err == nil {
			err = remote.WriteIndex(dstRef, idx, dst.options(ctx)...)
		}
		if err != nil {
			return "", fmt.Errorf("push %s: %w", dst.Ref, err)
		}
		return desc.Digest.String(), nil
	}
	img, err := desc.Image()
	if err == nil {
		err = remote.Write(dstRef, m.wrap(img, dstRef), dst.options(ctx)...)
	}
	if err != nil {
		return "", fmt.Errorf("push %s: %w", dst.Ref, err)
	}
	m.record(img, dstRef)
	return desc.Digest.String(), nil
}

func (e Endpoint) reference() (name.Reference, error) {
	var opts []name.Option
	if e.Insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(e.Ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", e.Ref, err)
	}
	return ref, nil
}

func (e Endpoint) options(ctx context.Context) []remote.Option {
	auth := authn.Anonymous
	if e.Credential != nil {
		auth = &authn.Basic{Username: e.Credential.Username, Password: e.Credential.Password}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if e.Transport != nil {
		opts = append(opts, remote.WithTransport(e.Transport))
	}
	return opts
}

// IsRefused reports whether a registry refused the credential (401 or
// 403): retrying with the same one cannot help.
func IsRefused(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden)
}
