package gitremote

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Checkout fetches ref's tip from url into the work tree dir (made on
// first use, reused after: paths inside it stay the same across commits)
// and returns the commit checked out. The tree's origin names url, so
// that files in it say where they come from. Only the one commit is
// fetched (--depth 1).
func Checkout(ctx context.Context, dir, url, ref, credRef string) (string, error) {
	env, err := GitEnv(credRef)
	if err != nil {
		return "", fmt.Errorf("git credential for %s: %w", url, err)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		if _, err := git("init", "-q"); err != nil {
			return "", err
		}
	}
	_, _ = git("remote", "remove", "origin")
	steps := [][]string{{"remote", "add", "origin", url}, {"fetch", "-q", "--depth", "1", "origin", RefName(ref)},
		{"checkout", "-q", "--force", "FETCH_HEAD"}, {"clean", "-qfdx"}}
	for _, args := range steps {
		if _, err := git(args...); err != nil {
			return "", fmt.Errorf("check out %s of %s: %w", RefName(ref), url, err)
		}
	}
	return git("rev-parse", "HEAD")
}
