package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ucplane/uc/registry/regclient"
)

// gcRegistry serves a registry on loopback for one test.
func gcRegistry(t *testing.T) (*Server, string) {
	t.Helper()
	return gcRegistryIn(t, t.TempDir())
}

// gcRegistryIn serves a registry with its data in dir.
func gcRegistryIn(t *testing.T, dir string) (*Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Open(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, "http://" + srv.Addr()
}

// gcClient pushes and checks content with plain HTTP, as a registry
// client does: HEAD a blob, upload it if missing, then PUT the manifest.
type gcClient struct {
	base string
	http *http.Client
}

func (c gcClient) do(method, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", ociManifest+", "+ociIndex)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

func (c gcClient) exists(repo, kind string, d digest.Digest) bool {
	resp, err := c.do(http.MethodHead, "/v2/"+repo+"/"+kind+"/"+d.String(), "", nil)
	return err == nil && resp.StatusCode == http.StatusOK
}

// pushBlob uploads data unless the registry says it has it.
func (c gcClient) pushBlob(repo string, data []byte) (digest.Digest, error) {
	d := digest.FromBytes(data)
	if c.exists(repo, "blobs", d) {
		return d, nil
	}
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	req, _ = http.NewRequest(http.MethodPut, loc+sep+"digest="+d.String(), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = c.http.Do(req); err != nil {
		return "", err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("finish upload: %s: %s", resp.Status, msg)
	}
	return d, nil
}

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
)

type gcDesc struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int           `json:"size"`
}

// pushImage pushes a config and the given layers and tags the manifest.
func (c gcClient) pushImage(repo, tag string, layers ...[]byte) (digest.Digest, error) {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":%q}`, tag))
	m := map[string]any{"schemaVersion": 2, "mediaType": ociManifest}
	cd, err := c.pushBlob(repo, cfg)
	if err != nil {
		return "", err
	}
	m["config"] = gcDesc{"application/vnd.oci.image.config.v1+json", cd, len(cfg)}
	var descs []gcDesc
	for _, l := range layers {
		ld, err := c.pushBlob(repo, l)
		if err != nil {
			return "", err
		}
		descs = append(descs, gcDesc{"application/vnd.oci.image.layer.v1.tar", ld, len(l)})
	}
	m["layers"] = descs
	return c.pushManifest(repo, tag, ociManifest, m)
}

func (c gcClient) pushManifest(repo, ref, mediaType string, m any) (digest.Digest, error) {
	body, _ := json.Marshal(m)
	req, _ := http.NewRequest(http.MethodPut, c.base+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("put manifest %s:%s: %s: %s", repo, ref, resp.Status, msg)
	}
	return digest.FromBytes(body), nil
}

func ptr[T any](v T) *T { return &v }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustDigest(t *testing.T) func(digest.Digest, error) digest.Digest {
	return func(d digest.Digest, err error) digest.Digest {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
}

// TestGCKeepsReferencedAndSweepsTheRest pushes kept images (by digest, by
// tag, an index with its children, a referrer of a kept image) and
// unreferenced ones, then collects.
func TestGCKeepsReferencedAndSweepsTheRest(t *testing.T) {
	srv, base := gcRegistry(t)
	c := gcClient{base: base, http: http.DefaultClient}
	must := mustDigest(t)
	shared := randomBytes(1000)
	built := must(c.pushImage("app/web", "latest", shared, randomBytes(2000)))
	cache := must(c.pushImage("uc-cache/app/web", "buildcache", randomBytes(3000)))
	child := must(c.pushImage("app/multi", "amd64", randomBytes(1500)))
	index := must(c.pushManifest("app/multi", "latest", ociIndex, map[string]any{"schemaVersion": 2, "mediaType": ociIndex,
		"manifests": []gcDesc{{ociManifest, child, 0}}}))
	// The index is kept by digest; its child only through it. Untag the
	// child so that nothing else keeps it.
	if resp, err := c.do(http.MethodDelete, "/v2/app/multi/manifests/amd64", "", nil); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Logf("untag app/multi:amd64: %v %v (distribution may not delete tags; the child stays referenced by the index)", resp, err)
	}
	referrerLayer := randomBytes(700)
	referrer := must(c.pushReferrer("app/web", built, referrerLayer))
	oldLayer := randomBytes(50_000)
	old := must(c.pushImage("app/web", "v0", shared, oldLayer))
	orphan := must(c.pushImage("junk/thing", "x", randomBytes(40_000)))

	keep := regclient.KeepSet{Digests: []string{built.String(), index.String()}, Tags: []regclient.RepoTag{{Repo: "uc-cache/app/web", Tag: "buildcache"}},
		Grace: new(time.Duration)}

	dry, err := srv.Collect(context.Background(), keep, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.exists("app/web", "manifests", old) {
		t.Fatal("a dry run deleted a manifest")
	}
	rep, err := srv.Collect(context.Background(), keep, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dry.ManifestsRemoved, rep.ManifestsRemoved) || dry.BytesFreed != rep.BytesFreed {
		t.Errorf("dry run said %v (%d bytes), the run removed %v (%d bytes)", dry.ManifestsRemoved, dry.BytesFreed, rep.ManifestsRemoved, rep.BytesFreed)
	}
	for _, k := range []struct {
		repo, what string
		d          digest.Digest
	}{
		{"app/web", "built image", built}, {"uc-cache/app/web", "cache by tag", cache}, {"app/multi", "index", index},
		{"app/multi", "index child", child}, {"app/web", "referrer of a kept image", referrer},
	} {
		if !c.exists(k.repo, "manifests", k.d) {
			t.Errorf("%s %s@%s was swept", k.what, k.repo, k.d)
		}
	}
	if !c.exists("app/web", "blobs", digest.FromBytes(shared)) || !c.exists("app/web", "blobs", digest.FromBytes(referrerLayer)) {
		t.Error("a blob of a kept manifest was swept")
	}
	for _, g := range []struct {
		repo string
		d    digest.Digest
	}{{"app/web", old}, {"junk/thing", orphan}} {
		if c.exists(g.repo, "manifests", g.d) {
			t.Errorf("unreferenced %s@%s survived", g.repo, g.d)
		}
	}
	if c.exists("app/web", "blobs", digest.FromBytes(oldLayer)) {
		t.Error("the unreferenced image's own layer survived")
	}
	if rep.BytesFreed < 90_000 || len(rep.ManifestsRemoved) != 2 {
		t.Errorf("report %+v, want 2 manifests and at least 90000 bytes freed", rep)
	}
	if resp, _ := c.do(http.MethodGet, "/v2/app/web/tags/list", "", nil); resp == nil || resp.StatusCode != http.StatusOK {
		t.Errorf("tags list after GC: %v", resp)
	}
}

// pushReferrer pushes an artifact whose subject is d.
func (c gcClient) pushReferrer(repo string, subject digest.Digest, layer []byte) (digest.Digest, error) {
	empty := []byte("{}")
	ed, err := c.pushBlob(repo, empty)
	if err != nil {
		return "", err
	}
	ld, err := c.pushBlob(repo, layer)
	if err != nil {
		return "", err
	}
	m := map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "artifactType": "application/vnd.uc.test",
		"config":  gcDesc{"application/vnd.oci.empty.v1+json", ed, len(empty)},
		"layers":  []gcDesc{{"application/vnd.uc.test", ld, len(layer)}},
		"subject": gcDesc{ociManifest, subject, 0}}
	body, _ := json.Marshal(m)
	return c.pushManifest(repo, digest.FromBytes(body).String(), ociManifest, m)
}

// TestGCConcurrentPushes collects in a loop while two clients push images
// that share a layer: each HEADs it, skips the upload when it is there,
// and pushes the manifest. Pushes pause at random for longer than the
// grace period, so that the shared layer is unreferenced and old, a sweep
// candidate, when the next push relies on it. Every push must succeed and
// stay pullable, however the sweep interleaves.
func TestGCConcurrentPushes(t *testing.T) {
	srv, base := gcRegistry(t)
	c := gcClient{base: base, http: http.DefaultClient}
	shared := randomBytes(4096)
	sharedDigest := digest.FromBytes(shared)
	mustDigest(t)(c.pushImage("race/app", "seed", shared))
	const grace = 500 * time.Millisecond

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var pushes, failures, reuploads atomic.Int64
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				time.Sleep(time.Duration(mrand.Int64N(int64(2 * grace))))
				if !c.exists("race/app", "blobs", sharedDigest) {
					reuploads.Add(1) // a sweep took it: the push uploads it again
				}
				start := time.Now()
				d, err := c.pushImage("race/app", fmt.Sprintf("p%d-%d", p, i), shared, randomBytes(512))
				took := time.Since(start)
				pushes.Add(1)
				if err == nil && c.exists("race/app", "manifests", d) && c.exists("race/app", "blobs", sharedDigest) {
					continue
				}
				if took >= grace {
					// The grace period covers pushes in flight up to its length.
					t.Logf("push %d/%d took %s, longer than the grace period: %v", p, i, took, err)
					continue
				}
				failures.Add(1)
				t.Errorf("push %d/%d (%s): %v", p, i, took, err)
			}
		}()
	}
	sweeps, spared, removed := 0, 0, 0
	for ctx.Err() == nil {
		rep, err := srv.Collect(context.Background(), regclient.KeepSet{Grace: ptr(grace)}, false)
		if err != nil {
			t.Fatal(err)
		}
		sweeps, spared, removed = sweeps+1, spared+rep.Spared, removed+len(rep.ManifestsRemoved)
	}
	wg.Wait()
	t.Logf("%d pushes during %d sweeps: %d failed; %d manifests swept, %d deletions spared by a touch, shared layer re-uploaded %d times",
		pushes.Load(), sweeps, failures.Load(), removed, spared, reuploads.Load())
	if pushes.Load() < 20 || removed == 0 || reuploads.Load()+int64(spared) == 0 {
		t.Errorf("the race was not exercised: %d pushes, %d swept, %d spared, %d re-uploads", pushes.Load(), removed, spared, reuploads.Load())
	}
}

// TestGCGrace collects through the HTTP API, as uc registry gc does: an
// explicit zero grace sweeps what was just pushed, an unset one keeps it
// for regclient.DefaultGrace.
func TestGCGrace(t *testing.T) {
	for _, tt := range []struct {
		name  string
		grace *time.Duration
		swept bool
	}{
		{"unset: the default hour", nil, false},
		{"explicit zero means zero", ptr(time.Duration(0)), true},
		{"explicit hour", ptr(time.Hour), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, base := gcRegistry(t)
			c := gcClient{base: base, http: http.DefaultClient}
			orphan := mustDigest(t)(c.pushImage("junk/thing", "x", randomBytes(4000)))
			rep, err := regclient.RequestGC(context.Background(), http.DefaultClient, base, regclient.KeepSet{Grace: tt.grace}, false)
			if err != nil {
				t.Fatal(err)
			}
			if swept := !c.exists("junk/thing", "manifests", orphan); swept != tt.swept {
				t.Errorf("grace %v: swept = %v, want %v (report %+v)", tt.grace, swept, tt.swept, rep)
			}
		})
	}
}
