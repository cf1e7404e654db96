package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/regclient"
)

// BuildKey hashes everything that determines a build's output: the spec
// without its names (which decide where the image goes, not what it is),
// the digests of the builds it reads and the digests its base images
// resolved to. Two specs with the same key build the same image, so an
// image stored under the key is reused.
func BuildKey(spec api.BuildSpec, inputs, bases map[string]string) string {
	spec.Name, spec.Project, spec.Service, spec.Image = "", "", "", ""
	spec.Tags, spec.CacheFrom, spec.CacheTo = nil, nil, nil
	// Where the branch is followed from and where the image is published
	// do not change what is built: the pinned context carries the commit.
	spec.Follow, spec.GitCredential, spec.Push, spec.PushCredential = "", "", nil, ""
	// A build made off the cluster is the same image, and where a context
	// was shipped is no part of it: ContextDigest is its content.
	spec.BuildOn, spec.ContextRef = "", ""
	digests := map[string]string{}
	for dep, ref := range inputs {
		_, digests[dep], _ = strings.Cut(ref, "@")
	}
	b, _ := json.Marshal(struct {
		Spec   api.BuildSpec
		Inputs map[string]string
		Bases  map[string]string `json:",omitempty"`
	}{spec, digests, bases})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// reusable reports whether a stored image may stand for a new build.
// no_cache and pull ask for a fresh solve (a base image may have moved).
func reusable(spec api.BuildSpec) bool { return !spec.NoCache && !spec.Pull }

// keyTag is the tag an image is stored under for its build key.
func keyTag(key string) string { return "uc-key-" + key[:40] }

// registryClient reads and copies manifests in the internal registry.
type registryClient struct{ http *http.Client }

func newRegistryClient(creds api.CredentialSource) *registryClient {
	return &registryClient{http: &http.Client{Timeout: 30 * time.Second, Transport: regclient.BasicAuth(nil, creds)}}
}

const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// manifest fetches a manifest by tag; ok is false when it does not exist.
func (c *registryClient) manifest(ctx context.Context, registry, repo, tag string) (body []byte, mediaType, digest string, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return nil, "", "", false, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, "", "", false, transient(fmt.Errorf("registry %s: %w", registry, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, "", "", false, nil
	default:
		return nil, "", "", false, transient(fmt.Errorf("registry %s: GET manifest %s:%s: %s", registry, repo, tag, resp.Status))
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return body, resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), err == nil, err
}

// tag stores a manifest under another tag of the same repository.
func (c *registryClient) tag(ctx context.Context, registry, repo, tag string, body []byte, mediaType string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.http.Do(req)
	if err != nil {
		return transient(fmt.Errorf("registry %s: %w", registry, err))
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("registry %s: PUT manifest %s:%s: %s", registry, repo, tag, resp.Status)
	}
	return nil
}

// reuse looks for an image stored under the build key and, when there is
// one, tags it with every name the spec asks for. It returns its digest.
func (c *registryClient) reuse(ctx context.Context, keyRef string, refs []string) (string, bool, error) {
	registry, repo, tag := api.SplitImageRef(keyRef)
	body, mediaType, digest, ok, err := c.manifest(ctx, registry, repo, tag)
	if err != nil || !ok {
		return "", false, err
	}
	for _, ref := range refs {
		reg, r, t := api.SplitImageRef(ref)
		if r != repo || reg != registry {
			continue // extra tags in other repositories are left to a solve
		}
		if err := c.tag(ctx, registry, repo, t, body, mediaType); err != nil {
			return "", false, err
		}
	}
	return digest, true, nil
}
