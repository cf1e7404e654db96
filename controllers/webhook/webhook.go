// Package webhook serves POST /v1/hooks/git: push events from GitHub,
// Gitea and GitLab, signed with a shared secret. A push to a branch that
// builds follow (x-uc-follow) refreshes them, so that their owners
// resolve the branch at once instead of at their next interval. The
// handler only writes a refresh to state: any node may serve it, and the
// owner does the rest.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
	"github.com/ucplane/uc/state"
)

// Path is where push events are posted.
const Path = "/v1/hooks/git"

// maxPayload bounds a push event's body; GitHub caps its payloads at 25 MB.
const maxPayload = 25 << 20

// Refresher is what a push does: refresh the builds and syncs that
// follow it.
type Refresher interface {
	ListBuilds(ctx context.Context, name string) ([]state.BuildRecord, error)
	RefreshBuilds(ctx context.Context, names []string) (refreshed, skipped []string, err error)
	ListSyncs(ctx context.Context, name string) ([]state.SyncRecord, error)
	RefreshSyncs(ctx context.Context, names []string) error
}

// Handler verifies and acts on push events.
type Handler struct {
	Secret []byte
	State  Refresher
	Log    *slog.Logger
}

// Response is the handler's answer, for the forge's delivery log.
type Response struct {
	Event     string   `json:"event"`
	Repo      string   `json:"repository,omitempty"`
	Ref       string   `json:"ref,omitempty"`
	Refreshed []string `json:"refreshed"`
	Syncs     []string `json:"syncs,omitempty"`
	Message   string   `json:"message,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a push event", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		http.Error(w, "reading the event: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	forge, event, err := verify(r.Header, body, h.Secret)
	if err != nil {
		h.Log.Warn("Refused a git webhook.", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	resp, status := h.handle(r.Context(), forge, event, body)
	h.Log.Info("Git webhook.", "forge", forge, "event", event, "repository", resp.Repo, "ref", resp.Ref, "refreshed", resp.Refreshed, "message", resp.Message)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

// handle acts on a verified event.
func (h *Handler) handle(ctx context.Context, forge, event string, body []byte) (Response, int) {
	resp := Response{Event: event, Refreshed: []string{}}
	if !isPush(forge, event) {
		resp.Message = "not a push event: nothing to do"
		return resp, http.StatusOK
	}
	var p pushEvent
	if err := json.Unmarshal(body, &p); err != nil {
		resp.Message = "the push event is not JSON: " + err.Error()
		return resp, http.StatusBadRequest
	}
	urls := p.urls()
	if len(urls) == 0 || p.Ref == "" {
		resp.Message = "the push event names no repository or ref"
		return resp, http.StatusBadRequest
	}
	resp.Repo, resp.Ref = urls[0], p.Ref
	if err := h.refresh(ctx, repoKeys(urls), p, &resp); err != nil {
		resp.Message = "refreshing: " + err.Error()
		return resp, http.StatusServiceUnavailable
	}
	if len(resp.Refreshed)+len(resp.Syncs) == 0 {
		resp.Message = "no build or sync follows this branch"
		return resp, http.StatusOK
	}
	return resp, http.StatusAccepted
}

// refresh refreshes the builds and syncs that follow what was pushed.
func (h *Handler) refresh(ctx context.Context, keys map[string]bool, p pushEvent, resp *Response) error {
	names, err := h.followers(ctx, keys, p)
	if err == nil && len(names) > 0 {
		resp.Refreshed, _, err = h.State.RefreshBuilds(ctx, names)
	}
	if err != nil {
		return err
	}
	syncs, err := h.State.ListSyncs(ctx, "")
	if err != nil {
		return err
	}
	for _, s := range syncs {
		if keys[gitremote.RepoKey(s.Spec.Repo)] && p.names(s.Spec.Ref) {
			resp.Syncs = append(resp.Syncs, s.Spec.Name)
		}
	}
	if len(resp.Syncs) == 0 {
		return nil
	}
	return h.State.RefreshSyncs(ctx, resp.Syncs)
}

func repoKeys(urls []string) map[string]bool {
	keys := map[string]bool{}
	for _, u := range urls {
		keys[gitremote.RepoKey(u)] = true
	}
	return keys
}

// followers are the builds that follow the pushed branch or tag of the
// pushed repository.
func (h *Handler) followers(ctx context.Context, keys map[string]bool, p pushEvent) ([]string, error) {
	recs, err := h.State.ListBuilds(ctx, "")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range recs {
		url, ref, _ := api.SplitGitContext(b.Spec.Context)
		if b.Spec.Follows() && keys[gitremote.RepoKey(url)] && p.names(ref) {
			names = append(names, b.Spec.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// pushEvent is what uc reads of a push event; GitHub and Gitea describe
// the repository under "repository", GitLab under "project".
type pushEvent struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL      string `json:"clone_url"`
		GitURL        string `json:"git_url"`
		SSHURL        string `json:"ssh_url"`
		HTMLURL       string `json:"html_url"`
		GitHTTPURL    string `json:"git_http_url"`
		GitSSHURL     string `json:"git_ssh_url"`
		DefaultBranch string `json:"default_branch"`
	} `json:"repository"`
	Project struct {
		GitHTTPURL    string `json:"git_http_url"`
		GitSSHURL     string `json:"git_ssh_url"`
		WebURL        string `json:"web_url"`
		DefaultBranch string `json:"default_branch"`
	} `json:"project"`
}

// urls are every URL the event gives for the repository.
func (p pushEvent) urls() []string {
	var out []string
	for _, u := range []string{p.Repository.CloneURL, p.Project.GitHTTPURL, p.Repository.GitHTTPURL, p.Repository.SSHURL, p.Repository.GitSSHURL,
		p.Project.GitSSHURL, p.Repository.GitURL, p.Repository.HTMLURL, p.Project.WebURL} {
		if u != "" {
			out = append(out, u)
		}
	}
	return out
}

// names reports whether a spec's ref ("" is the default branch) names
// what was pushed.
func (p pushEvent) names(ref string) bool {
	short := strings.TrimPrefix(strings.TrimPrefix(p.Ref, "refs/heads/"), "refs/tags/")
	if ref == "" {
		def := p.Repository.DefaultBranch
		if def == "" {
			def = p.Project.DefaultBranch
		}
		return def != "" && p.Ref == "refs/heads/"+def
	}
	return ref == p.Ref || ref == short
}

// isPush reports whether the event is a push of a branch or tag.
func isPush(forge, event string) bool {
	if forge == forgeGitLab {
		return event == "Push Hook" || event == "Tag Push Hook"
	}
	return event == "push"
}

const (
	forgeGitHub = "github"
	forgeGitea  = "gitea"
	forgeGitLab = "gitlab"
)

// errUnsigned is an event without any signature uc knows.
var errUnsigned = errors.New("the event carries no signature: set the webhook's secret (GitHub: X-Hub-Signature-256, Gitea: X-Gitea-Signature, GitLab: X-Gitlab-Token)")

// verify checks an event's signature and returns its forge and event
// name. GitHub and Gitea sign the body with HMAC-SHA256; GitLab sends
// the secret itself as a token. Comparisons take constant time.
func verify(h http.Header, body, secret []byte) (forge, event string, err error) {
	switch {
	case h.Get("X-Gitlab-Token") != "":
		if subtle.ConstantTimeCompare([]byte(h.Get("X-Gitlab-Token")), secret) != 1 {
			return "", "", errors.New("X-Gitlab-Token does not match the webhook secret")
		}
		return forgeGitLab, h.Get("X-Gitlab-Event"), nil
	case h.Get("X-Hub-Signature-256") != "":
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok || !validMAC(sig, body, secret) {
			return "", "", errors.New("X-Hub-Signature-256 does not match the body signed with the webhook secret")
		}
		if event := h.Get("X-Gitea-Event"); event != "" {
			return forgeGitea, event, nil
		}
		return forgeGitHub, h.Get("X-GitHub-Event"), nil
	case h.Get("X-Gitea-Signature") != "":
		if !validMAC(h.Get("X-Gitea-Signature"), body, secret) {
			return "", "", errors.New("X-Gitea-Signature does not match the body signed with the webhook secret")
		}
		return forgeGitea, h.Get("X-Gitea-Event"), nil
	}
	return "", "", errUnsigned
}

// validMAC checks a hex HMAC-SHA256 of body.
func validMAC(sigHex string, body, secret []byte) bool {
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// Sign is GitHub's X-Hub-Signature-256 value for body: for tests, and for
// scripts that post events themselves.
func Sign(body, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return fmt.Sprintf("sha256=%x", mac.Sum(nil))
}
