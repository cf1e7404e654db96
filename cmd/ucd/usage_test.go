package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/ucplane/uc/cmd/internal/usagecheck"
)

// TestUsageMatchesFlags: every flag a usage line names exists on its
// command, and every required flag is in the usage line.
func TestUsageMatchesFlags(t *testing.T) {
	t.Parallel()
	for _, m := range usagecheck.Mismatches(newRootCmd(slog.New(slog.NewTextHandler(io.Discard, nil)))) {
		t.Error(m)
	}
}
