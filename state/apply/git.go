package apply

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"

	"github.com/ucplane/uc/api"
)

var commitSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// pinGitContexts resolves every git context's ref to a commit, so that a
// moved branch changes the spec and all builders build the same source.
func pinGitContexts(ctx context.Context, file string, p *api.Project) error {
	for i, b := range p.Builds {
		if !api.IsGitContext(b.Context) {
			continue
		}
		pinned, digest, err := pinGitContext(ctx, b.Context)
		if err != nil {
			return fmt.Errorf("%s: services.%s.build.context: %w", file, b.Service, err)
		}
		p.Builds[i].Context, p.Builds[i].ContextDigest = pinned, digest
	}
	return nil
}

// pinGitContext resolves a git context's ref to a commit with
// `git ls-remote`, so that every builder builds the same source and a moved
// branch changes the spec (and rebuilds). It returns the pinned context
// and the digest to record.
func pinGitContext(ctx context.Context, gitCtx string) (pinned, digest string, err error) {
	url, ref, subdir := api.SplitGitContext(gitCtx)
	sha := ref
	if !commitSHA.MatchString(ref) {
		if sha, err = lsRemote(ctx, url, ref); err != nil {
			return "", "", err
		}
	}
	pinned = url + "#" + sha
	if subdir != "" {
		pinned += ":" + subdir
	}
	return pinned, "git:" + sha, nil
}

func lsRemote(ctx context.Context, url, ref string) (string, error) {
	if ref == "" {
		ref = "HEAD"
	}
	cmd := exec.CommandContext(ctx, "git", "ls-remote", url, ref)
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("git ls-remote %s %s: %s", url, ref, strings.TrimSpace(string(exit.Stderr)))
		}
		return "", fmt.Errorf("git ls-remote %s %s: %w", url, ref, err)
	}
	found := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if sha, name, ok := strings.Cut(line, "\t"); ok {
			found[name] = sha
		}
	}
	// An annotated tag's commit is the peeled "^{}" entry.
	for _, name := range []string{"refs/tags/" + ref + "^{}", ref, "refs/heads/" + ref, "refs/tags/" + ref} {
		if sha, ok := found[name]; ok {
			return sha, nil
		}
	}
	return "", fmt.Errorf("git ls-remote %s: no ref %q", url, ref)
}
