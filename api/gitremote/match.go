package gitremote

import (
	"net/url"
	"strings"
)

// RepoKey names a repository independently of how it is reached: the
// host without port or user, and the path without ".git", so that the
// https, ssh and git:// URLs a push webhook carries match the one a spec
// names (https://github.com/me/app.git, git@github.com:me/app,
// github.com/me/app all give "github.com/me/app").
func RepoKey(raw string) string {
	raw = strings.TrimSpace(raw)
	raw, _, _ = strings.Cut(raw, "#")
	var host, path string
	switch {
	case strings.Contains(raw, "://"):
		u, err := url.Parse(raw)
		if err != nil {
			return strings.ToLower(raw)
		}
		host, path = u.Hostname(), u.Path
	case strings.Contains(raw, ":") && !strings.Contains(strings.SplitN(raw, ":", 2)[0], "/"):
		// scp-like syntax: [user@]host:path
		hostPart, p, _ := strings.Cut(raw, ":")
		host, path = hostPart[strings.LastIndex(hostPart, "@")+1:], p
	default:
		host, path, _ = strings.Cut(raw, "/")
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	return strings.ToLower(host) + "/" + strings.Trim(path, "/")
}
