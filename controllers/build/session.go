package build

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/docker/cli/cli/config/types"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/buildkit/session/sshforward/sshprovider"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
)

// cacheOptions points the build at registry cache in the internal
// registry: the cluster-wide default for its image, so that any builder
// reuses any other's layers, plus the spec's cache_from; it exports to
// cache_to, or else to the default.
func cacheOptions(registry string, spec api.BuildSpec) (imports, exports []client.CacheOptionsEntry, err error) {
	def, err := api.DefaultCacheRef(registry, spec.Image)
	if err != nil {
		return nil, nil, err
	}
	imports = []client.CacheOptionsEntry{registryCache(def)}
	// A cache scope reads the shared cache and its own; only a trusted
	// scope writes the shared one.
	scoped, hasScope := spec.ScopedCacheRef(def)
	if hasScope {
		imports = append(imports, registryCache(scoped))
		if !spec.CacheScopeTrusted {
			def = scoped
		}
	}
	for _, name := range spec.CacheFrom {
		ref, err := api.InternalRef(registry, name)
		if err != nil {
			return nil, nil, fmt.Errorf("cache_from %q: %w", name, err)
		}
		imports = append(imports, registryCache(ref))
	}
	if len(spec.CacheTo) == 0 {
		return imports, []client.CacheOptionsEntry{cacheExport(def, nil)}, nil
	}
	for _, name := range spec.CacheTo {
		ref, err := api.InternalRef(registry, name)
		if err != nil {
			return nil, nil, fmt.Errorf("cache_to %q: %w", name, err)
		}
		exports = append(exports, cacheExport(ref, spec.CacheToAttrs[name]))
	}
	return imports, exports, nil
}

// cacheExport exports every stage (mode=max) unless the entry says
// otherwise: cache_to's own options win.
func cacheExport(ref string, opts map[string]string) client.CacheOptionsEntry {
	e := registryCache(ref)
	e.Attrs["mode"] = "max"
	maps.Copy(e.Attrs, opts)
	return e
}

func registryCache(ref string) client.CacheOptionsEntry {
	return client.CacheOptionsEntry{Type: "registry", Attrs: map[string]string{
		"ref": ref, "registry.insecure": "true", "oci-mediatypes": "true",
	}}
}

// sessionAttachables serve secrets and SSH from this node to the build.
// Values are read here, at build time, and never leave the session.
func sessionAttachables(spec api.BuildSpec) ([]session.Attachable, error) {
	var out []session.Attachable
	secrets, ssh, err := gitCredential(spec)
	if err != nil {
		return nil, err
	}
	secrets, ssh = append(secrets, spec.Secrets...), append(ssh, spec.SSH...)
	if len(secrets) > 0 {
		sp, err := secretProvider(secrets)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	if len(ssh) > 0 {
		confs := make([]sshprovider.AgentConfig, len(ssh))
		for i, s := range ssh {
			confs[i] = sshprovider.AgentConfig{ID: s.ID, Paths: s.Paths}
		}
		sp, err := sshprovider.NewSSHAgentProvider(confs)
		if err != nil {
			return nil, fmt.Errorf("ssh: %w", err)
		}
		out = append(out, sp)
	}
	return out, nil
}

// gitCredential hands a private git context's credential to BuildKit's
// git source as it asks for it: a token as the secret GIT_AUTH_TOKEN, a
// key or agent as the SSH socket "default" (unless the build forwards
// its own "default").
func gitCredential(spec api.BuildSpec) ([]api.SecretRef, []api.SSHRef, error) {
	ref := spec.GitCredential
	if ref == "" {
		return nil, nil, nil
	}
	url, _, _ := api.SplitGitContext(spec.Context)
	if strings.HasPrefix(ref, gitremote.CredentialEnv) {
		if _, err := gitremote.Token(ref); err != nil {
			return nil, nil, fmt.Errorf("git credential for %s: %w", url, err)
		}
		return []api.SecretRef{{ID: "GIT_AUTH_TOKEN", Env: strings.TrimPrefix(ref, gitremote.CredentialEnv)}}, nil, nil
	}
	path, err := gitremote.SSHPath(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("git credential for %s: %w", url, err)
	}
	if slices.ContainsFunc(spec.SSH, func(s api.SSHRef) bool { return s.ID == "default" }) {
		return nil, nil, nil
	}
	ssh := api.SSHRef{ID: "default"}
	if path != "" {
		ssh.Paths = []string{path}
	}
	return nil, []api.SSHRef{ssh}, nil
}

func secretProvider(refs []api.SecretRef) (session.Attachable, error) {
	sources := make([]secretsprovider.Source, len(refs))
	for i, r := range refs {
		if r.Env != "" {
			if _, ok := os.LookupEnv(r.Env); !ok {
				return nil, fmt.Errorf("secret %s: environment variable %s is not set for ucd on this node", r.ID, r.Env)
			}
		}
		if r.File != "" {
			if _, err := os.Stat(r.File); err != nil {
				return nil, fmt.Errorf("secret %s: %w", r.ID, err)
			}
		}
		sources[i] = secretsprovider.Source{ID: r.ID, FilePath: r.File, Env: r.Env}
	}
	store, err := secretsprovider.NewStore(sources)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return secretsprovider.NewSecretProvider(store), nil
}

// registryAuth answers BuildKit's credential requests for the internal
// registry with its credential, and anonymously for any other registry.
func registryAuth(registry string, creds api.CredentialSource) session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if creds == nil || host != registry {
				return types.AuthConfig{}, nil
			}
			cred, ok := creds(ctx)
			if !ok {
				return types.AuthConfig{}, nil
			}
			return types.AuthConfig{Username: cred.Username, Password: cred.Password, ServerAddress: host}, nil
		},
	})
}
