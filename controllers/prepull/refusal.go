package prepull

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
)

// The Engine's errors are typed for the controller at this edge, by
// containerd's errdefs: errdefs.IsNotFound for an image or tag the
// registry does not have, errdefs.IsUnauthorized for a credential it
// refuses (or a missing one). Anything else is transient.
//
// The Docker Engine types a missing manifest as a 404 (errdefs NotFound),
// but reports a refused credential as a bare 500 (seen on Engine 28:
// "no basic auth credentials"). So when a pull or a lookup fails untyped,
// typed asks the registry itself, through containerd's resolver (the one
// BuildKit uses), and reads its HTTP status.
func (d *Docker) typed(ctx context.Context, err error, ref, auth string) error {
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err) {
		return err
	}
	switch refusal := d.askRegistry(ctx, ref, auth); {
	case refusal == nil:
		return err
	default:
		return fmt.Errorf("%w (the registry says: %w)", err, refusal)
	}
}

// askRegistry resolves ref at its registry and returns a typed refusal
// (unauthorized or not found), or nil when the registry serves it or
// cannot be asked.
func (d *Docker) askRegistry(ctx context.Context, ref, auth string) error {
	_, err := d.resolveAtRegistry(ctx, ref, auth)
	if isRefusal(err) {
		return err
	}
	return nil
}

// resolveAtRegistry asks ref's registry, as the engine reaches it (plain
// HTTP where the engine would use it), which digest ref names. Refusals
// come back typed: unauthorized, or not found.
func (d *Docker) resolveAtRegistry(ctx context.Context, ref, auth string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	cred := decodeAuth(auth)
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(func(string) (string, string, error) {
			return cred.Username, cred.Password, nil
		}))),
		docker.WithPlainHTTP(d.plainHTTP(ctx)),
	)})
	_, desc, err := resolver.Resolve(ctx, named.String())
	var status remoteerrors.ErrUnexpectedStatus
	switch {
	case err == nil:
		return desc.Digest.String(), nil
	case errors.Is(err, docker.ErrInvalidAuthorization),
		errors.As(err, &status) && (status.StatusCode == http.StatusUnauthorized || status.StatusCode == http.StatusForbidden):
		return "", fmt.Errorf("%w: %w", cerrdefs.ErrUnauthenticated, err)
	}
	return "", err
}

func isRefusal(err error) bool {
	return cerrdefs.IsUnauthorized(err) || cerrdefs.IsNotFound(err)
}

// plainHTTP says which registries the engine reaches over plain HTTP: its
// insecure registries, and loopback, which Docker always trusts.
func (d *Docker) plainHTTP(ctx context.Context) func(string) (bool, error) {
	info, err := d.c.Info(ctx)
	return func(host string) (bool, error) {
		if local, _ := docker.MatchLocalhost(host); local {
			return true, nil
		}
		if err != nil || info.RegistryConfig == nil {
			return false, nil
		}
		if idx, ok := info.RegistryConfig.IndexConfigs[host]; ok {
			return !idx.Secure, nil
		}
		h, _, splitErr := net.SplitHostPort(host)
		if splitErr != nil {
			h = host
		}
		ip := net.ParseIP(h)
		for _, cidr := range info.RegistryConfig.InsecureRegistryCIDRs {
			if ip != nil && (*net.IPNet)(cidr).Contains(ip) {
				return true, nil
			}
		}
		return false, nil
	}
}

// decodeAuth reads an X-Registry-Auth value ("" is anonymous).
func decodeAuth(auth string) registry.AuthConfig {
	var ac registry.AuthConfig
	if b, err := base64.URLEncoding.DecodeString(auth); err == nil {
		_ = json.Unmarshal(b, &ac)
	}
	return ac
}
