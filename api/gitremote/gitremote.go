// Package gitremote asks a git remote what a branch or tag points at,
// with `git ls-remote` and the credential a build names, and matches the
// repository URLs that push webhooks carry to the ones specs name.
package gitremote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Credential reference schemes (x-uc-git-credential).
const (
	// CredentialEnv names an environment variable of ucd (or of uc, for
	// apply's check) that holds a token, sent as BuildKit sends
	// GIT_AUTH_TOKEN: HTTP basic auth as x-access-token.
	CredentialEnv = "env:"
	// CredentialSSH names an SSH agent socket or a private key file on the
	// builder node; ssh:default is the agent at $SSH_AUTH_SOCK.
	CredentialSSH = "ssh:"
)

// RefName names a ref for people: "" is the remote's HEAD.
func RefName(ref string) string {
	if ref == "" {
		return "HEAD"
	}
	return ref
}

// IsCommit reports whether ref is a full commit id, which never moves.
func IsCommit(ref string) bool { return commitSHA.MatchString(ref) }

var commitSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// CheckCredentialRef refuses anything but a reference, so that a token
// pasted into a Compose file never reaches state.
func CheckCredentialRef(ref string) error {
	for _, scheme := range []string{CredentialEnv, CredentialSSH} {
		if rest, ok := strings.CutPrefix(ref, scheme); ok {
			if rest == "" {
				return fmt.Errorf("%q names nothing after %s", ref, scheme)
			}
			return nil
		}
	}
	return fmt.Errorf("%q is not a git credential reference: want env:VAR (a token) or ssh:default|ssh:/path/to/key (the secret stays on the nodes)", ref)
}

// NoRefError says the remote has no such branch or tag: deleted, or
// never pushed.
type NoRefError struct{ URL, Ref string }

func (e *NoRefError) Error() string {
	return fmt.Sprintf("git ls-remote %s: no branch or tag %q", e.URL, e.Ref)
}

// Resolve returns the commit ref names on the remote at url ("" is the
// remote's HEAD), authenticating with the credential credRef names.
func Resolve(ctx context.Context, url, ref, credRef string) (string, error) {
	if IsCommit(ref) {
		return ref, nil
	}
	ref = RefName(ref)
	env, err := GitEnv(credRef)
	if err != nil {
		return "", fmt.Errorf("git credential for %s: %w", url, err)
	}
	cmd := exec.CommandContext(ctx, "git", "ls-remote", url, ref)
	cmd.Env = append(append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return "", fmt.Errorf("git ls-remote %s %s: %s", url, ref, strings.TrimSpace(string(exit.Stderr)))
		}
		return "", fmt.Errorf("git ls-remote %s %s: %w", url, ref, err)
	}
	return pick(string(out), url, ref)
}

// pick finds ref in ls-remote's output, as git checkout would: an
// annotated tag's commit is its peeled "^{}" entry.
func pick(out, url, ref string) (string, error) {
	found := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if sha, name, ok := strings.Cut(line, "\t"); ok {
			found[name] = sha
		}
	}
	for _, name := range []string{"refs/tags/" + ref + "^{}", ref, "refs/heads/" + ref, "refs/tags/" + ref} {
		if sha, ok := found[name]; ok {
			return sha, nil
		}
	}
	return "", &NoRefError{URL: url, Ref: ref}
}

// GitEnv is the environment that gives git the credential: a
// token through GIT_CONFIG_* (never on a command line, where ps shows
// it), a key through GIT_SSH_COMMAND, an agent through SSH_AUTH_SOCK.
func GitEnv(ref string) ([]string, error) {
	if ref == "" {
		return nil, nil
	}
	if strings.HasPrefix(ref, CredentialEnv) {
		token, err := Token(ref)
		if err != nil {
			return nil, err
		}
		header := "Authorization: basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
		return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=" + header}, nil
	}
	path, err := SSHPath(ref)
	if err != nil {
		return nil, err
	}
	// No prompt can be answered here; a host seen for the first time is
	// trusted and remembered (known_hosts), a changed key is refused.
	ssh := "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
	switch fi, err := os.Stat(path); {
	case path == "":
		return []string{"GIT_SSH_COMMAND=" + ssh}, nil // the agent at SSH_AUTH_SOCK
	case err == nil && fi.Mode()&os.ModeSocket != 0:
		return []string{"SSH_AUTH_SOCK=" + path, "GIT_SSH_COMMAND=" + ssh}, nil
	}
	return []string{"GIT_SSH_COMMAND=" + ssh + " -o IdentitiesOnly=yes -i " + path}, nil
}

// Token reads the token an env: reference names.
func Token(ref string) (string, error) {
	name, _ := strings.CutPrefix(ref, CredentialEnv)
	token, ok := os.LookupEnv(name)
	if !ok || token == "" {
		return "", fmt.Errorf("environment variable %s is not set on this node", name)
	}
	return token, nil
}

// SSHPath is the agent socket or key file an ssh: reference names; ""
// for ssh:default, the agent at $SSH_AUTH_SOCK.
func SSHPath(ref string) (string, error) {
	path, ok := strings.CutPrefix(ref, CredentialSSH)
	if !ok {
		return "", CheckCredentialRef(ref)
	}
	if path == "default" {
		if os.Getenv("SSH_AUTH_SOCK") == "" {
			return "", errors.New("ssh:default names the SSH agent, but SSH_AUTH_SOCK is not set on this node")
		}
		return "", nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ssh key or agent socket: %w", err)
	}
	return path, nil
}
