package prepull

import (
	"context"
	"fmt"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	dockerconfig "github.com/docker/cli/cli/config"

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
	cred, err := resolveCredential(spec.PullCredential, host)
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

// resolveCredential reads env:VAR (user:password) or docker-config:PATH.
func resolveCredential(ref, host string) (api.Credential, error) {
	if name, ok := strings.CutPrefix(ref, api.CredentialEnv); ok {
		v, set := os.LookupEnv(name)
		if !set {
			return api.Credential{}, fmt.Errorf("%s is not set in ucd's environment", name)
		}
		user, pass, ok := strings.Cut(v, ":")
		if !ok || user == "" {
			return api.Credential{}, fmt.Errorf("%s does not hold user:password", name)
		}
		return api.Credential{Username: user, Password: pass}, nil
	}
	path, ok := strings.CutPrefix(ref, api.CredentialDockerConfig)
	if !ok {
		return api.Credential{}, api.CheckCredentialRef(ref)
	}
	return fromDockerConfig(path, host)
}

// fromDockerConfig looks host up in a Docker config file, as the docker
// CLI does (auths, or a credential helper it names).
func fromDockerConfig(path, host string) (api.Credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.Credential{}, err
	}
	defer f.Close()
	cf, err := dockerconfig.LoadFromReader(f)
	if err != nil {
		return api.Credential{}, fmt.Errorf("%s: %w", path, err)
	}
	key := host
	if host == "docker.io" {
		key = "https://index.docker.io/v1/" // where the docker CLI keeps Hub's
	}
	ac, err := cf.GetAuthConfig(key)
	if err != nil {
		return api.Credential{}, fmt.Errorf("%s: %w", path, err)
	}
	if ac.Username == "" && ac.Password == "" {
		return api.Credential{}, fmt.Errorf("%s has no credential for %s", path, host)
	}
	return api.Credential{Username: ac.Username, Password: ac.Password}, nil
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
