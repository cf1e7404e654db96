package regclient

import (
	"fmt"
	"os"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"

	"github.com/ucplane/uc/api"
)

// ResolveCredential reads a credential reference for host: env:VAR
// (user:password) or docker-config:PATH. The secret is read where it is
// used, on the node, and never stored.
func ResolveCredential(ref, host string) (api.Credential, error) {
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
