package regclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// KeepSet is what must survive a sweep, as read from desired state.
type KeepSet struct {
	// Digests are manifests to keep in whatever repository holds them:
	// built images, their last builds, images specs name, context indexes.
	Digests []string `json:"digests"`
	// Tags keep whatever they point at when the sweep runs (cache refs).
	Tags []RepoTag `json:"tags,omitempty"`
	// Grace keeps anything uploaded, re-tagged or relied on by a client
	// within this long; it covers pushes in flight. Unset (nil):
	// DefaultGrace; a zero that is set means zero (uc registry gc --grace 0s).
	Grace *time.Duration `json:"grace,omitempty"`
	// UploadAge purges partial uploads begun longer ago than this (none a
	// client still sends). Zero: the grace. Under disk pressure it is short:
	// an upload a full disk broke holds its bytes until purged.
	UploadAge time.Duration `json:"upload_age,omitempty"`
}

// GraceOrDefault is the grace period a collection with this keep set uses.
func (k KeepSet) GraceOrDefault() time.Duration {
	if k.Grace == nil || *k.Grace < 0 {
		return DefaultGrace
	}
	return *k.Grace
}

// RepoTag names a tag in a repository of this registry.
type RepoTag struct {
	Repo string `json:"repo"`
	Tag  string `json:"tag"`
}

// DefaultGrace is how long new content is kept regardless of the keep set.
const DefaultGrace = time.Hour

// GCReport is what a collection did, or with DryRun would do.
type GCReport struct {
	DryRun           bool          `json:"dry_run"`
	StartedAt        time.Time     `json:"started_at"`
	Duration         time.Duration `json:"duration"`
	ManifestsKept    int           `json:"manifests_kept"`
	ManifestsRemoved []string      `json:"manifests_removed"` // repo@digest
	BlobsKept        int           `json:"blobs_kept"`
	BlobsRemoved     int           `json:"blobs_removed"`
	BytesFreed       int64         `json:"bytes_freed"`
	// Spared counts what the mark chose but a client touched meanwhile.
	Spared int `json:"spared"`
	// Grace is the grace this collection kept new content for.
	Grace time.Duration `json:"grace"`
	// KeptReferencedBytes is what stayed because the keep set (specs,
	// builds, nodes) needs it; KeptYoungBytes what stayed only because it
	// is younger than the grace or a client used it meanwhile.
	KeptReferencedBytes int64 `json:"kept_referenced_bytes"`
	KeptYoungBytes      int64 `json:"kept_young_bytes"`
	// UploadsPurged counts abandoned partial uploads removed (their bytes
	// are in BytesFreed too, and in UploadBytesFreed).
	UploadsPurged    int   `json:"uploads_purged"`
	UploadBytesFreed int64 `json:"upload_bytes_freed"`
}

// RequestGC asks the registry at addr (host:port, or a URL) to collect
// with keep; with dryRun it only reports what would go.
func RequestGC(ctx context.Context, c *http.Client, addr string, keep KeepSet, dryRun bool) (GCReport, error) {
	var rep GCReport
	body, err := json.Marshal(keep)
	if err != nil {
		return rep, err
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/uc/v1/gc?dry_run=%t", base, dryRun), bytes.NewReader(body))
	if err != nil {
		return rep, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return rep, fmt.Errorf("registry %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return rep, fmt.Errorf("registry %s: gc: %s: %s", addr, resp.Status, strings.TrimSpace(string(msg)))
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
