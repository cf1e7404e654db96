package api

import "testing"

func TestIsGitContext(t *testing.T) {
	t.Parallel()
	for ctx, want := range map[string]bool{
		"https://github.com/docker/buildx.git#main:docs": true,
		"git@github.com:docker/buildx.git":               true,
		"https://example.com/repo.git":                   true,
		"./app":                                          false,
		"/abs/app":                                       false,
		"https://example.com/context.tar.gz":             false,
	} {
		if got := IsGitContext(ctx); got != want {
			t.Errorf("IsGitContext(%q) = %v, want %v", ctx, got, want)
		}
	}
}
