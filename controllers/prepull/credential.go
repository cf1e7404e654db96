package prepull

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
	"github.com/ucplane/uc/registry/regclient"
)

// Private registries: an image spec holds only a reference to its pull
// credential; each node resolves it from its own environment or Docker
// config file, so the secret never enters state.

// engineAuth is the X-Registry-Auth for pulling (or resolving) ref.
func (r *Reconciler) engineAuth(ctx context.Context, spec api.ImageSpec, ref string) (string, error) {
	if spec.PullCredential == "" {
		if r.cfg.InternalAuth != nil {
			return r.cfg.InternalAuth(ctx, ref), nil
		}
		return "", nil
	}
	host, err := registryHost(ref)
	if err != nil {
		return "", err
	}
	cred, err := regclient.ResolveCredential(spec.PullCredential, host)
	if err != nil {
		return "", reconcile.Stall("CredentialUnavailable", fmt.Errorf("credential %s on %s: %w", spec.PullCredential, r.cfg.Node, err))
	}
	return regclient.EngineAuth(cred, true, host), nil
}

func registryHost(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return reference.Domain(named), nil
}

// explainAuth names the registry and the credential reference when a
// registry refused a pull (the engine's error typed Unauthorized at the
// edge; see Docker.typed), and makes it terminal: retrying the same
// credential cannot help.
func explainAuth(err error, spec api.ImageSpec, ref string) error {
	if !cerrdefs.IsUnauthorized(err) && !cerrdefs.IsPermissionDenied(err) {
		return err
	}
	host, _ := registryHost(ref)
	if spec.PullCredential == "" {
		return reconcile.Stall("CredentialRefused", fmt.Errorf("registry %s wants a credential and the image spec names none (x-uc-pull-credential): %w", host, err))
	}
	return reconcile.Stall("CredentialRefused", fmt.Errorf("registry %s refused credential %s: %w", host, spec.PullCredential, err))
}
