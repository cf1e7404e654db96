// Package contextstore ships build contexts through the internal registry
// as content-addressed pieces: one blob per file plus an index, tied
// together by an OCI manifest. Only pieces the registry lacks are uploaded,
// so a one-file change uploads about that file. Builders fetch a context by
// the manifest's digest and verify every piece.
package contextstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ucplane/uc/api/buildcontext"
)

// Media types of a shipped context.
const (
	IndexMediaType    = "application/vnd.uc.context.index.v1+json"
	PieceMediaType    = "application/vnd.uc.context.file.v1"
	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
)

// Entry is one path of a context.
type Entry struct {
	Path   string      `json:"path"`
	Mode   fs.FileMode `json:"mode"`
	Size   int64       `json:"size,omitempty"`
	Digest string      `json:"digest,omitempty"` // regular files
	Link   string      `json:"link,omitempty"`   // symlinks
}

// Index lists a context's entries in lexical order.
type Index struct {
	Entries []Entry `json:"entries"`
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	ArtifactType  string       `json:"artifactType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// Stats say what a push did.
type Stats struct {
	Pieces, Uploaded          int
	BytesTotal, BytesUploaded int64
}

// Client talks to one registry over plain HTTP (the internal registry is
// reached on loopback or a private network).
type Client struct {
	Registry string
	HTTP     *http.Client
}

// New returns a client for the registry at addr (host:port).
func New(addr string) *Client {
	return &Client{Registry: addr, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// Push packs dir (honouring .dockerignore and the size limit) into repo and
// returns the context's reference, registry/repo@sha256:….
func (c *Client) Push(ctx context.Context, repo, dir, dockerfile string, limit int64) (string, Stats, error) {
	var idx Index
	paths := map[string]string{} // digest → a file with that content
	err := buildcontext.Walk(dir, dockerfile, limit, func(path, rel string, info fs.FileInfo) error {
		e, err := entryOf(path, rel, info)
		if e.Digest != "" {
			paths[e.Digest] = path
		}
		idx.Entries = append(idx.Entries, e)
		return err
	})
	if err != nil {
		return "", Stats{}, err
	}
	var st Stats
	var layers []descriptor
	for _, e := range idx.Entries {
		if e.Digest == "" || paths[e.Digest] == "" {
			continue
		}
		d := descriptor{MediaType: PieceMediaType, Digest: e.Digest, Size: e.Size}
		if err := c.ensureBlob(ctx, repo, d, func() (io.ReadCloser, error) { return os.Open(paths[e.Digest]) }, &st); err != nil {
			return "", st, err
		}
		delete(paths, e.Digest) // each piece once
		layers = append(layers, d)
	}
	return c.pushManifest(ctx, repo, idx, layers, &st)
}

func entryOf(path, rel string, info fs.FileInfo) (Entry, error) {
	e := Entry{Path: rel, Mode: info.Mode()}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(path)
		e.Link = link
		return e, err
	case info.Mode().IsRegular():
		dg, err := fileDigest(path)
		e.Size, e.Digest = info.Size(), dg
		return e, err
	}
	return e, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func (c *Client) pushManifest(ctx context.Context, repo string, idx Index, layers []descriptor, st *Stats) (string, Stats, error) {
	body, err := json.Marshal(idx)
	if err != nil {
		return "", *st, err
	}
	cfg := descriptor{MediaType: IndexMediaType, Digest: digestOf(body), Size: int64(len(body))}
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if err := c.ensureBlob(ctx, repo, cfg, open, st); err != nil {
		return "", *st, err
	}
	if layers == nil {
		layers = []descriptor{}
	}
	m, err := json.Marshal(manifest{SchemaVersion: 2, MediaType: ManifestMediaType, ArtifactType: IndexMediaType, Config: cfg, Layers: layers})
	if err != nil {
		return "", *st, err
	}
	dg := digestOf(m)
	if err := c.put(ctx, "/v2/"+repo+"/manifests/"+dg, ManifestMediaType, m); err != nil {
		return "", *st, err
	}
	return c.Registry + "/" + repo + "@" + dg, *st, nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ensureBlob uploads a piece unless the registry has it already.
func (c *Client) ensureBlob(ctx context.Context, repo string, d descriptor, open func() (io.ReadCloser, error), st *Stats) error {
	st.Pieces++
	st.BytesTotal += d.Size
	resp, err := c.do(ctx, http.MethodHead, "/v2/"+repo+"/blobs/"+d.Digest, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := c.upload(ctx, repo, d.Digest, rc); err != nil {
		return err
	}
	st.Uploaded++
	st.BytesUploaded += d.Size
	return nil
}

// upload is the distribution-spec's two-step monolithic upload.
func (c *Client) upload(ctx context.Context, repo, dg string, body io.Reader) error {
	resp, err := c.do(ctx, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("registry %s: start upload to %s: %s", c.Registry, repo, resp.Status)
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + c.Registry + loc
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc+sep+"digest="+dg, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	put, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("registry %s: %w", c.Registry, err)
	}
	put.Body.Close()
	if put.StatusCode != http.StatusCreated {
		return fmt.Errorf("registry %s: upload %s: %s", c.Registry, dg, put.Status)
	}
	return nil
}

func (c *Client) put(ctx context.Context, path, mediaType string, body []byte) error {
	resp, err := c.do(ctx, http.MethodPut, path, mediaType, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("registry %s: PUT %s: %s %s", c.Registry, path, resp.Status, msg)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Registry+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method == http.MethodGet && strings.Contains(path, "/manifests/") {
		req.Header.Set("Accept", ManifestMediaType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", c.Registry, err)
	}
	return resp, nil
}
