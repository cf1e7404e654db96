package api

import "strings"

// IsGitContext tells a git URL context from a local directory, with the
// rules docker compose applies, plus ssh:// URLs, which BuildKit's git
// source takes.
func IsGitContext(ctx string) bool {
	for _, p := range []string{"git://", "git@", "github.com/", "ssh://"} {
		if strings.HasPrefix(ctx, p) {
			return true
		}
	}
	return (strings.HasPrefix(ctx, "https://") || strings.HasPrefix(ctx, "http://")) &&
		(strings.Contains(ctx, ".git#") || strings.HasSuffix(ctx, ".git") || strings.Contains(ctx, ".git/"))
}

// SplitGitContext splits "URL#ref:subdir" into its parts; ref "" means the
// remote's HEAD.
func SplitGitContext(ctx string) (url, ref, subdir string) {
	url, frag, _ := strings.Cut(ctx, "#")
	ref, subdir, _ = strings.Cut(frag, ":")
	return url, ref, subdir
}

// PinGitContext is the git context ctx with its ref replaced by commit.
func PinGitContext(ctx, commit string) string {
	url, _, subdir := SplitGitContext(ctx)
	pinned := url + "#" + commit
	if subdir != "" {
		pinned += ":" + subdir
	}
	return pinned
}
