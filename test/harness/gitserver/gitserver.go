// Package gitserver serves git repositories on loopback over git's
// smart-HTTP protocol (git http-backend behind net/http/cgi), as a forge
// would, optionally behind a token. Tests push to it with a work tree.
package gitserver

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Server is a git smart-HTTP server over a directory of bare repositories.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	root string
}

// Start serves bare repositories under a temporary root; with a token,
// every request must carry it as BuildKit's GIT_AUTH_TOKEN does (basic
// auth, user x-access-token).
func Start(t testing.TB, token string) *Server {
	t.Helper()
	root := t.TempDir()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(requireToken(token, backend))
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, root: root}
}

func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive: BuildKit and git send "basic".
		user, pass, _ := r.BasicAuth()
		if user != "x-access-token" || subtle.ConstantTimeCompare([]byte(pass), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Repo is a bare repository on the server and a work tree that pushes to it.
type Repo struct {
	URL  string // clone URL
	Work string // work tree; commit there and Push
	bare string
	t    testing.TB
}

// NewRepo makes repository name with files on branch main, pushed.
func (s *Server) NewRepo(t testing.TB, name string, files map[string]string) *Repo {
	t.Helper()
	r := &Repo{URL: s.URL + "/" + name + ".git", Work: t.TempDir(), bare: filepath.Join(s.root, name+".git"), t: t}
	Git(t, s.root, "init", "-q", "--bare", "-b", "main", r.bare)
	Git(t, r.bare, "config", "receive.denyDeleteCurrent", "ignore") // tests delete branches
	Git(t, r.Work, "init", "-q", "-b", "main")
	r.Commit(files, "first")
	r.Push("main")
	return r
}

// Commit writes files into the work tree and commits them; it returns
// the new commit.
func (r *Repo) Commit(files map[string]string, msg string) string {
	r.t.Helper()
	for name, body := range files {
		path := filepath.Join(r.Work, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	Git(r.t, r.Work, "add", "-A")
	Git(r.t, r.Work, "commit", "-q", "--allow-empty", "-m", msg)
	return r.Head()
}

// Head is the work tree's current commit.
func (r *Repo) Head() string {
	r.t.Helper()
	out, err := exec.Command("git", "-C", r.Work, "rev-parse", "HEAD").Output()
	if err != nil {
		r.t.Fatalf("git rev-parse: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Push force-pushes the work tree's HEAD to branch on the server, straight
// into the bare repository (the server's own auth is for clients).
func (r *Repo) Push(branch string) {
	r.t.Helper()
	Git(r.t, r.Work, "push", "-q", "-f", r.bare, "HEAD:refs/heads/"+branch)
}

// ResetTo moves the work tree back to an older commit (for a force-push).
func (r *Repo) ResetTo(commit string) {
	r.t.Helper()
	Git(r.t, r.Work, "reset", "-q", "--hard", commit)
}

// DeleteBranch removes branch on the server.
func (r *Repo) DeleteBranch(branch string) {
	r.t.Helper()
	Git(r.t, r.Work, "push", "-q", r.bare, "--delete", branch)
}

// Git runs git in dir with a fixed identity, failing the test on error.
func Git(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=uc", "GIT_AUTHOR_EMAIL=uc@test", "GIT_COMMITTER_NAME=uc", "GIT_COMMITTER_EMAIL=uc@test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
