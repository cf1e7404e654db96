// Package registrytest serves uc's registry (a real distribution/v3
// registry) for tests, until the test ends.
package registrytest

import (
	"context"
	"testing"

	"github.com/ucplane/uc/registry"
)

// Serve serves a registry with cfg (an empty DataDir is a temporary one,
// an empty Listen a free loopback port) and returns its address.
func Serve(t testing.TB, cfg registry.Config) string {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg.Addr()
}
