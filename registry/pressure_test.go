package registry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/ucplane/uc/registry/regclient"
)

// startUpload begins a blob upload and returns its location.
func (c gcClient) startUpload(t *testing.T, repo string) string {
	t.Helper()
	resp, err := c.http.Post(c.base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return c.base + loc.RequestURI()
}

// patch sends a chunk of an upload and returns the answer's status.
func (c gcClient) patch(t *testing.T, loc string, body io.Reader) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, loc, body)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGCPurgesStaleUploads leaves one partial upload abandoned while
// another is being sent (its PATCH in flight) during a collection with a
// short upload age: the abandoned one is purged and counted, the one in
// progress is not, and it completes. Before, partial uploads were never
// reclaimed.
func TestGCPurgesStaleUploads(t *testing.T) {
	srv, base := gcRegistry(t)
	srv.gc.uploadIdle = time.Second
	c := gcClient{base: base, http: http.DefaultClient}
	abandoned := c.startUpload(t, "app/web")
	if got := c.patch(t, abandoned, bytes.NewReader(randomBytes(300_000))); got != http.StatusAccepted {
		t.Fatalf("patch: %d", got)
	}
	// Idle for longer than uploadIdle, and begun in an earlier second than
	// the upload in progress (starts are stored in whole seconds, and the
	// purge spares every upload begun in or after the second the oldest
	// one in progress began).
	time.Sleep(1100 * time.Millisecond)
	sending := c.startUpload(t, "app/web")
	pr, pw := io.Pipe()
	patched := make(chan int, 1)
	go func() { patched <- c.patch(t, sending, pr) }()
	if _, err := pw.Write(randomBytes(1000)); err != nil { // the PATCH is being served
		t.Fatal(err)
	}

	// A long grace, as a collection under disk pressure has: the upload
	// age alone decides.
	hour := time.Hour
	rep, err := srv.Collect(context.Background(), regclient.KeepSet{Grace: &hour, UploadAge: time.Nanosecond}, false)
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := <-patched; got != http.StatusAccepted {
		t.Errorf("the upload in progress got %d on its PATCH after the purge, want 202", got)
	}
	if rep.UploadsPurged != 1 || rep.UploadBytesFreed != 300_000 || rep.BytesFreed < 300_000 {
		t.Errorf("purged %d uploads, %d bytes (freed %d); want the abandoned one: 1, 300000", rep.UploadsPurged, rep.UploadBytesFreed, rep.BytesFreed)
	}
	if got := c.patch(t, abandoned, bytes.NewReader([]byte("more"))); got != http.StatusNotFound {
		t.Errorf("PATCH of the purged upload: %d, want 404", got)
	}
}

// TestGCReportsWhyItKept collects an image the keep set names and one
// nothing names but that is younger than the grace: the report tells the
// bytes kept for each reason. Once the grace is short, the unreferenced one
// goes and the referenced one stays.
func TestGCReportsWhyItKept(t *testing.T) {
	srv, base := gcRegistry(t)
	c := gcClient{base: base, http: http.DefaultClient}
	must := mustDigest(t)
	used := must(c.pushImage("app/web", "v1", randomBytes(40_000)))
	unused := must(c.pushImage("app/web", "v0", randomBytes(20_000)))
	hour := time.Hour
	keep := regclient.KeepSet{Digests: []string{used.String()}, Grace: &hour}

	rep, err := srv.Collect(context.Background(), keep, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.KeptReferencedBytes < 40_000 || rep.KeptReferencedBytes > 41_000 || rep.KeptYoungBytes < 20_000 || rep.KeptYoungBytes > 21_000 {
		t.Errorf("kept %d referenced, %d young; want about 40000 and 20000", rep.KeptReferencedBytes, rep.KeptYoungBytes)
	}
	if rep.Grace != time.Hour || rep.BlobsRemoved != 0 {
		t.Errorf("grace %v, %d blobs removed; want 1h, none", rep.Grace, rep.BlobsRemoved)
	}

	nano := time.Nanosecond
	keep.Grace = &nano
	if rep, err = srv.Collect(context.Background(), keep, false); err != nil {
		t.Fatal(err)
	}
	if c.exists("app/web", "manifests", unused) || !c.exists("app/web", "manifests", used) {
		t.Error("with a short grace, want the unreferenced image gone and the referenced one kept")
	}
	if rep.KeptYoungBytes != 0 || rep.BytesFreed < 20_000 {
		t.Errorf("short grace: kept %d young, freed %d; want 0 young, about 20000 freed", rep.KeptYoungBytes, rep.BytesFreed)
	}
}
