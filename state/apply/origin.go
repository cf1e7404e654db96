package apply

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// projectOrigin says where a project is applied from, stably across
// checkouts: a git remote and the Compose file's path in the repository
// when there is one (a CI clone in a fresh directory is the same origin),
// else this machine's name and the file's absolute path.
func projectOrigin(ctx context.Context, files []string) string {
	if len(files) == 0 {
		return ""
	}
	file, err := filepath.Abs(files[0])
	if err != nil {
		file = files[0]
	}
	if remote, rel := gitLocation(ctx, file); remote != "" {
		return "git " + remote + " " + rel
	}
	host, _ := os.Hostname()
	return host + ":" + file
}

// gitLocation is the repository's origin remote and file's path inside
// it, or "" when file is in no repository with an origin remote.
func gitLocation(ctx context.Context, file string) (remote, rel string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dir := filepath.Dir(file)
	git := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	remote = git("config", "--get", "remote.origin.url")
	if remote == "" {
		return "", ""
	}
	return remote, git("rev-parse", "--show-prefix") + filepath.Base(file)
}
