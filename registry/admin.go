package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"

	"github.com/ucplane/uc/registry/regclient"
)

// uc's own registry endpoints: run a collection, read the last one, and
// metrics. They take the registry's credentials when it has auth.

// authorized lets a request through when the registry has no auth or the
// request carries valid credentials.
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.admin != nil {
			if _, err := s.admin.Authorized(r); err != nil {
				if ch, ok := err.(auth.Challenge); ok {
					ch.SetHeaders(r, w)
				}
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveGC runs a collection with the posted keep set; ?dry_run=true only
// reports what would go.
func (s *Server) serveGC(w http.ResponseWriter, r *http.Request) {
	var keep regclient.KeepSet
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&keep); err != nil {
		http.Error(w, fmt.Sprintf("keep set: %v", err), http.StatusBadRequest)
		return
	}
	dryRun := r.URL.Query().Get("dry_run") == "true"
	rep, err := s.Collect(r.Context(), keep, dryRun)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, rep)
}

func (s *Server) serveLastGC(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	last := s.lastGC
	s.mu.Unlock()
	if last == nil {
		http.Error(w, "no collection has run since the registry started", http.StatusNotFound)
		return
	}
	writeJSON(w, last)
}

// gcTotals are the counters /metrics exposes.
type gcTotals struct {
	runs, manifests, blobs int
	bytes                  int64
	lastDuration           time.Duration
	lastRun                time.Time
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	t := s.totals
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE uc_registry_gc_runs_total counter\nuc_registry_gc_runs_total %d\n", t.runs)
	fmt.Fprintf(w, "# TYPE uc_registry_gc_manifests_removed_total counter\nuc_registry_gc_manifests_removed_total %d\n", t.manifests)
	fmt.Fprintf(w, "# TYPE uc_registry_gc_blobs_removed_total counter\nuc_registry_gc_blobs_removed_total %d\n", t.blobs)
	fmt.Fprintf(w, "# TYPE uc_registry_gc_bytes_freed_total counter\nuc_registry_gc_bytes_freed_total %d\n", t.bytes)
	fmt.Fprintf(w, "# TYPE uc_registry_gc_last_duration_seconds gauge\nuc_registry_gc_last_duration_seconds %g\n", t.lastDuration.Seconds())
	fmt.Fprintf(w, "# TYPE uc_registry_gc_last_run_timestamp_seconds gauge\nuc_registry_gc_last_run_timestamp_seconds %d\n", t.lastRun.Unix())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
