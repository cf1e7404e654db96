package contextstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// epoch is a fetched directory's mtime: a context's files carry no time,
// so that the same content always builds the same layers.
var epoch = time.Unix(0, 0)

// contentTime is a fetched file's mtime, made from its content digest.
// BuildKit re-sends a file into its local-source snapshot only when size,
// mode or mtime changed, so one fixed time let an edit that kept a file's
// size go unseen. A time that follows the content makes every change
// visible, and the same content still always gets the same time (and the
// exporter clamps times to SOURCE_DATE_EPOCH anyway).
func contentTime(digest string) time.Time {
	sum, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || len(sum) < 8 {
		return epoch
	}
	secs := int64(binary.BigEndian.Uint32(sum[:4]) & 0x7fffffff)
	nanos := int64(binary.BigEndian.Uint32(sum[4:8]) % 1_000_000_000)
	return time.Unix(secs, nanos)
}

// Fetch materializes the context ref (registry/repo@sha256:…) under dir,
// verifying every piece against its digest. A context already fetched into
// dir is reused: dir is named by the digest.
func Fetch(ctx context.Context, client *http.Client, ref, cacheDir string) (string, error) {
	registry, repo, dg, err := splitDigestRef(ref)
	if err != nil {
		return "", err
	}
	dest := filepath.Join(cacheDir, strings.TrimPrefix(dg, "sha256:"))
	if _, err := os.Stat(dest); err == nil {
		now := time.Now() // when it was last used: the node's janitor keeps recent ones
		_ = os.Chtimes(dest, now, now)
		return dest, nil
	}
	c := &Client{Registry: registry, HTTP: client}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := c.fetchInto(ctx, repo, dg, tmp); err != nil {
		return "", fmt.Errorf("fetch build context %s: %w", ref, err)
	}
	if err := os.Rename(tmp, dest); err != nil && !os.IsExist(err) {
		return "", err
	}
	return dest, nil
}

// splitDigestRef splits host:port/repo@sha256:hex.
func splitDigestRef(ref string) (registry, repo, dg string, err error) {
	name, dg, ok := strings.Cut(ref, "@")
	registry, repo, ok2 := strings.Cut(name, "/")
	if !ok || !ok2 || !strings.HasPrefix(dg, "sha256:") {
		return "", "", "", fmt.Errorf("context reference %q: want registry/repo@sha256:…", ref)
	}
	return registry, repo, dg, nil
}

func (c *Client) fetchInto(ctx context.Context, repo, dg, dir string) error {
	var m manifest
	if err := c.getVerified(ctx, "/v2/"+repo+"/manifests/"+dg, dg, &m); err != nil {
		return err
	}
	var idx Index
	if err := c.getVerified(ctx, "/v2/"+repo+"/blobs/"+m.Config.Digest, m.Config.Digest, &idx); err != nil {
		return err
	}
	for _, e := range idx.Entries {
		if err := c.restore(ctx, repo, dir, e); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	return nil
}

// restore writes one entry; a path that would leave dir is refused, since
// an index is input from the network.
func (c *Client) restore(ctx context.Context, repo, dir string, e Entry) error {
	target := filepath.Join(dir, filepath.FromSlash(e.Path))
	if rel, err := filepath.Rel(dir, target); err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("path leaves the context")
	}
	switch {
	case e.Mode.IsDir():
		if err := os.MkdirAll(target, e.Mode.Perm()|0o700); err != nil {
			return err
		}
	case e.Link != "":
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(e.Link, target); err != nil {
			return err
		}
		return nil // symlink times follow the link target; leave them
	case e.Mode.IsRegular():
		if err := c.writePiece(ctx, repo, e, target); err != nil {
			return err
		}
		return os.Chtimes(target, contentTime(e.Digest), contentTime(e.Digest))
	default:
		return nil // devices, sockets: nothing a build can COPY
	}
	return os.Chtimes(target, epoch, epoch)
}

func (c *Client) writePiece(ctx context.Context, repo string, e Entry, target string) error {
	resp, err := c.do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+e.Digest, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET piece %s: %s", e.Digest, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, e.Mode.Perm())
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != e.Digest {
		return fmt.Errorf("piece digest %s, want %s", got, e.Digest)
	}
	return os.Chmod(target, e.Mode.Perm()) // umask may have narrowed it
}

// getVerified fetches JSON whose bytes must hash to dg.
func (c *Client) getVerified(ctx context.Context, path, dg string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if got := digestOf(body); got != dg {
		return fmt.Errorf("GET %s: digest %s, want %s", path, got, dg)
	}
	return json.Unmarshal(body, v)
}
