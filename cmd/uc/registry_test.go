package main

import (
	"testing"
	"time"
)

func TestKeptSummary(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		grace             time.Duration
		referenced, young int64
		uploads           int
		uploadBytes       int64
		want              string
	}{
		{time.Hour, 0, 0, 0, 0, ""},
		{10 * time.Minute, 12 << 20, 3 << 20, 0, 0,
			"; 12MiB kept: referenced by specs, builds or nodes; 3MiB kept: younger than grace 10m"},
		{time.Hour, 0, 1 << 20, 3, 21 << 20, "; 1MiB kept: younger than grace 1h; 21MiB of 3 abandoned uploads reclaimed"},
		{450 * time.Second, 0, 1024, 0, 0, "; 1KiB kept: younger than grace 7m30s"},
	} {
		if got := keptSummary(tt.grace, tt.referenced, tt.young, tt.uploads, tt.uploadBytes); got != tt.want {
			t.Errorf("keptSummary(%v, %d, %d, %d, %d) = %q, want %q", tt.grace, tt.referenced, tt.young, tt.uploads, tt.uploadBytes, got, tt.want)
		}
	}
}
