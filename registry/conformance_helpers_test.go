package registry

// Helpers for the OCI distribution-spec conformance suite in
// conformance_test.go. They speak plain HTTP, as the spec describes the
// protocol, so that what is checked is the wire behaviour rather than a
// client library's interpretation of it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// Media types the spec and the OCI image spec name.
const (
	mtManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtIndex       = "application/vnd.oci.image.index.v1+json"
	mtConfig      = "application/vnd.oci.image.config.v1+json"
	mtLayer       = "application/vnd.oci.image.layer.v1.tar"
	mtEmpty       = "application/vnd.oci.empty.v1+json"
	mtOctetStream = "application/octet-stream"
)

// startConfRegistry serves a registry on a loopback port with its own data
// dir until the test ends. cfg's DataDir and Listen are filled in.
func startConfRegistry(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.DataDir, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// writeHTPasswd writes an htpasswd file with one bcrypt entry. MinCost
// keeps each authenticated request cheap: the registry checks the hash on
// every request, and the suite makes hundreds.
func writeHTPasswd(t *testing.T, user, pass string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// confClient is a minimal registry client: it resolves the (possibly
// absolute) Locations the registry hands out against its base URL and
// sends basic auth when it has a user.
type confClient struct {
	base       string
	hc         *http.Client
	user, pass string
}

// as is the same client with other credentials.
func (c *confClient) as(user, pass string) *confClient {
	cp := *c
	cp.user, cp.pass = user, pass
	return &cp
}

// answer is a response with its body read, so that callers can check it
// after the connection went back to the pool.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorCodes returns the codes of the spec's JSON error body, nil when
// the body is not one.
func (a answer) errorCodes() []string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(a.body, &e) != nil {
		return nil
	}
	codes := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		codes = append(codes, x.Code)
	}
	return codes
}

// resolve turns a path or a Location header into an absolute URL; the
// spec lets Locations be relative or absolute.
func (c *confClient) resolve(t *testing.T, ref string) string {
	t.Helper()
	base, err := url.Parse(c.base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := base.Parse(ref)
	if err != nil {
		t.Fatalf("bad reference %q: %v", ref, err)
	}
	return u.String()
}

// do sends one request. hdr values of "" remove a header the client
// would otherwise send (the default Accept). A nil body sends none.
func (c *confClient) do(t *testing.T, method, ref string, hdr map[string]string, body []byte) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.resolve(t, ref), rd)
	if err != nil {
		t.Fatal(err)
	}
	// Manifests are only served to clients that accept their media type
	// (content negotiation), so the client accepts the OCI types.
	req.Header.Set("Accept", mtManifest+", "+mtIndex)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, ref, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, ref, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// withQuery adds a query parameter to a Location, keeping the ones the
// registry put there (distribution signs upload state into _state).
func withQuery(t *testing.T, loc, key, val string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("bad location %q: %v", loc, err)
	}
	q := u.Query()
	q.Set(key, val)
	u.RawQuery = q.Encode()
	return u.String()
}

// expect fails the test unless a has the status and, when codes are given,
// exactly those error codes.
func expect(t *testing.T, what string, a answer, status int, codes ...string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: status %d, want %d (body %s)", what, a.status, status, a.body)
	}
	if len(codes) > 0 && !slices.Equal(a.errorCodes(), codes) {
		t.Fatalf("%s: error codes %v, want %v (body %s)", what, a.errorCodes(), codes, a.body)
	}
}

// startUpload opens an upload session (end-4a) and returns its Location.
func (c *confClient) startUpload(t *testing.T, repo string) string {
	t.Helper()
	a := c.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, []byte{})
	expect(t, "POST upload", a, http.StatusAccepted)
	loc := a.header.Get("Location")
	if loc == "" {
		t.Fatal("POST upload: no Location")
	}
	return loc
}

// pushBlob uploads data monolithically (POST then PUT) and returns its
// digest.
func (c *confClient) pushBlob(t *testing.T, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	loc := c.startUpload(t, repo)
	a := c.do(t, http.MethodPut, withQuery(t, loc, "digest", d.String()),
		map[string]string{"Content-Type": mtOctetStream}, data)
	expect(t, "PUT blob "+d.String(), a, http.StatusCreated)
	return d
}

// exists is a HEAD on a blob or manifest: 200 means present.
func (c *confClient) exists(t *testing.T, repo, kind, ref string) bool {
	t.Helper()
	a := c.do(t, http.MethodHead, "/v2/"+repo+"/"+kind+"/"+ref, nil, nil)
	switch a.status {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("HEAD %s/%s/%s: status %d", repo, kind, ref, a.status)
	return false
}

// confDesc is an OCI content descriptor.
type confDesc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int               `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func descOf(mediaType string, data []byte) confDesc {
	return confDesc{MediaType: mediaType, Digest: digest.FromBytes(data), Size: len(data)}
}

// confManifest is an OCI image manifest, with the 1.1 fields for
// artifacts (artifactType, subject).
type confManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        confDesc          `json:"config"`
	Layers        []confDesc        `json:"layers"`
	Subject       *confDesc         `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// confIndex is the OCI image index the referrers API answers with.
type confIndex struct {
	SchemaVersion int        `json:"schemaVersion"`
	MediaType     string     `json:"mediaType"`
	Manifests     []confDesc `json:"manifests"`
}

// confImage is what pushImage pushed.
type confImage struct {
	manifest        []byte
	digest          digest.Digest
	config, layer   []byte
	configD, layerD digest.Digest
}

// newImage builds (without pushing) an image whose config and layer are
// unique to seed, so that tests do not share blobs by accident.
func newImage(t *testing.T, seed string) confImage {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":` + jsonString(seed) + `}`)
	layer := []byte("layer of " + seed + " " + strings.Repeat("x", 100))
	m := confManifest{SchemaVersion: 2, MediaType: mtManifest,
		Config: descOf(mtConfig, cfg), Layers: []confDesc{descOf(mtLayer, layer)}}
	// Indented on purpose: the registry must keep the bytes it was given
	// (a canonicalising registry would change the digest).
	body, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	return confImage{manifest: body, digest: digest.FromBytes(body), config: cfg, layer: layer,
		configD: digest.FromBytes(cfg), layerD: digest.FromBytes(layer)}
}

// pushImage pushes a new image's blobs and its manifest under tag.
func (c *confClient) pushImage(t *testing.T, repo, tag string) confImage {
	t.Helper()
	img := newImage(t, repo+":"+tag)
	c.pushBlob(t, repo, img.config)
	c.pushBlob(t, repo, img.layer)
	a := c.putManifest(t, repo, tag, img.manifest)
	expect(t, "PUT manifest "+repo+":"+tag, a, http.StatusCreated)
	return img
}

func (c *confClient) putManifest(t *testing.T, repo, ref string, body []byte) answer {
	t.Helper()
	return c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref,
		map[string]string{"Content-Type": mtManifest}, body)
}

// tagsList fetches a tags page; query is appended as is.
func (c *confClient) tagsList(t *testing.T, repo, query string) (answer, []string) {
	t.Helper()
	a := c.do(t, http.MethodGet, "/v2/"+repo+"/tags/list"+query, nil, nil)
	if a.status != http.StatusOK {
		return a, nil
	}
	var l struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(a.body, &l); err != nil {
		t.Fatalf("tags list %s: %v (%s)", query, err, a.body)
	}
	if l.Name != repo {
		t.Fatalf("tags list: name %q, want %q", l.Name, repo)
	}
	return a, l.Tags
}

// nextLink returns the target of an RFC 5988 Link header with rel="next",
// "" when there is none.
func nextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for part := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}

// sha256Digest computes a digest with crypto/sha256 directly, so that the
// check of Docker-Content-Digest does not rely on the library the
// registry itself uses.
func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func newConfHTTPClient() *http.Client { return &http.Client{Timeout: 15 * time.Second} }
