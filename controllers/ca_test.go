package controllers

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestCorrosionCAErrorNamesTheFlag: a CA file that cannot be read stops
// ucd with an error naming --corrosion-ca, as uc's does.
func TestCorrosionCAErrorNamesTheFlag(t *testing.T) {
	t.Parallel()
	err := runNode(context.Background(), Config{CorrosionCA: "/nonexistent/ca.pem"}, "https://127.0.0.1:1", slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "--corrosion-ca: ") {
		t.Errorf("got %v, want an error naming --corrosion-ca", err)
	}
}
