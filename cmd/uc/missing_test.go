package main

import (
	"context"
	"testing"
	"time"

	"github.com/ucplane/uc/state/statetest"
)

// TestGetMissingName: `uc get KIND NAME` for a name that is not there
// fails, as kubectl does, rather than print an empty table and exit 0.
func TestGetMissingName(t *testing.T) {
	t.Parallel()
	s := statetest.Start(t)
	for _, c := range []struct{ kind, want string }{
		{"images", "image \"shop/nope\" not found (see `uc get images`)"},
		{"builds", "build \"shop/nope\" not found (see `uc get builds`)"},
		{"nodes", "node \"shop/nope\" not found (see `uc get nodes`)"},
	} {
		out, err := runUC(context.Background(), "get", c.kind, "shop/nope", "--corrosion-api", s.Addr)
		if err == nil || err.Error() != c.want {
			t.Errorf("uc get %s shop/nope: got %v (output %q), want %q", c.kind, err, out, c.want)
		}
		if _, err := runUC(context.Background(), "get", c.kind, "--corrosion-api", s.Addr); err != nil {
			t.Errorf("uc get %s (no name, nothing there): %v, want an empty list", c.kind, err)
		}
	}
}

// TestWaitForUnseenSpec: a spec not in state yet (applied through another
// agent, not replicated here yet) is waited for, and said so, rather than
// failed at once; at the timeout the message names it.
func TestWaitForUnseenSpec(t *testing.T) {
	t.Parallel()
	s := statetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := runUC(ctx, "wait", "images", "shop/late", "--timeout", "2s", "--corrosion-api", s.Addr)
	if want := "waiting for image shop/late to appear in state\n"; out != want {
		t.Errorf("output: got %q, want %q", out, want)
	}
	want := "timed out waiting for images: image \"shop/late\" not found (see `uc get images`)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
