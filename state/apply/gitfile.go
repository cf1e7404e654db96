package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
)

// A Compose (or Bake) file named by a git URL, as
// https://host/repo.git#main:deploy/compose.yaml: uc checks the ref's
// commit out into a work tree of its own and reads the file there, so
// that its relative contexts are that repository's, at that commit. The
// work tree lives in the user's cache, one per repository, reused: the
// contexts keep their paths, and an unchanged commit changes no spec.

// checkoutGitFiles replaces every file of opts that is a git URL with its
// path in a checkout at the ref's commit.
func checkoutGitFiles(ctx context.Context, opts *Options) error {
	opts.Compose.Files = slices.Clone(opts.Compose.Files) // the caller's keep naming the URL
	for i, f := range opts.Compose.Files {
		if !api.IsGitContext(f) {
			continue
		}
		local, err := checkoutGitFile(ctx, f)
		if err != nil {
			return fmt.Errorf("-f %s: %w", f, err)
		}
		opts.Compose.Files[i] = local
	}
	return nil
}

func checkoutGitFile(ctx context.Context, f string) (string, error) {
	url, ref, file := api.SplitGitContext(f)
	if file == "" || path.IsAbs(file) || strings.HasPrefix(path.Clean(file), "..") {
		return "", fmt.Errorf("name the file inside the repository after the ref: URL#REF:path/to/compose.yaml")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(gitremote.RepoKey(url)))
	dir := filepath.Join(cache, "uc", "repos", hex.EncodeToString(sum[:8]))
	if _, err := gitremote.Checkout(ctx, dir, url, ref, ""); err != nil {
		return "", err
	}
	local := filepath.Join(dir, filepath.FromSlash(path.Clean(file)))
	if _, err := os.Stat(local); err != nil {
		return "", fmt.Errorf("%s is not in %s at %s", file, url, gitremote.RefName(ref))
	}
	return local, nil
}
