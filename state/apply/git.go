package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
)

// pinGitContexts resolves every git context's ref to a commit, so that a
// moved branch changes the spec and all builders build the same source. A
// followed context (x-uc-follow) keeps its branch, which its builder
// resolves; apply only checks that the branch exists when it can.
func pinGitContexts(ctx context.Context, file string, p *api.Project) error {
	for i, b := range p.Builds {
		if !api.IsGitContext(b.Context) {
			continue
		}
		if b.Follows() {
			if err := checkFollowed(ctx, b); err != nil {
				return fmt.Errorf("%s: services.%s.build.context: %w", file, b.Service, err)
			}
			continue
		}
		pinned, digest, err := pinGitContext(ctx, b)
		if err != nil {
			return fmt.Errorf("%s: services.%s.build.context: %w", file, b.Service, err)
		}
		p.Builds[i].Context, p.Builds[i].ContextDigest = pinned, digest
	}
	return nil
}

// pinGitContext resolves a git context's ref to a commit, so that every
// builder builds the same source and a moved branch changes the spec (and
// rebuilds). It returns the pinned context and the digest to record.
func pinGitContext(ctx context.Context, b api.BuildSpec) (pinned, digest string, err error) {
	url, ref, _ := api.SplitGitContext(b.Context)
	sha, err := gitremote.Resolve(ctx, url, ref, b.GitCredential)
	if err != nil {
		if b.GitCredential != "" {
			err = fmt.Errorf("%w (uc apply pins the commit with the credential as this machine has it; with x-uc-follow, the builder resolves the branch with its own)", err)
		}
		return "", "", err
	}
	return api.PinGitContext(b.Context, sha), "git:" + sha, nil
}

// checkFollowed refuses a followed branch that does not exist, when this
// machine can ask: a credential that lives only on the builder nodes (an
// SSH key there, a token in ucd's environment) is left to them.
func checkFollowed(ctx context.Context, b api.BuildSpec) error {
	if strings.HasPrefix(b.GitCredential, gitremote.CredentialSSH) {
		return nil
	}
	if _, err := gitremote.Token(b.GitCredential); b.GitCredential != "" && err != nil {
		return nil
	}
	url, ref, _ := api.SplitGitContext(b.Context)
	_, err := gitremote.Resolve(ctx, url, ref, b.GitCredential)
	return err
}
