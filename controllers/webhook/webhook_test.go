package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/statetest"
)

var secret = []byte("hook-secret")

// TestPushEvents posts push events as each forge signs them to a handler
// over the embedded state, and checks which builds' generations moved.
func TestPushEvents(t *testing.T) {
	store := statetest.Start(t).Store
	ctx := context.Background()
	p := &api.Project{Name: "p", Builds: []api.BuildSpec{
		{Name: "p/main", Project: "p", Service: "main", Image: "p/main", Context: "https://git.example/me/app.git#main:app", Follow: "1m"},
		{Name: "p/default", Project: "p", Service: "default", Image: "p/default", Context: "git@git.example:me/app.git", Follow: "1m"},
		{Name: "p/topic", Project: "p", Service: "topic", Image: "p/topic", Context: "https://git.example/me/app.git#topic", Follow: "1m"},
		{Name: "p/pinned", Project: "p", Service: "pinned", Image: "p/pinned", Context: "https://git.example/me/app.git#" + sha40, ContextDigest: "git:" + sha40},
		{Name: "p/other", Project: "p", Service: "other", Image: "p/other", Context: "https://git.example/me/other.git#main", Follow: "1m"},
	}}
	if _, err := store.ApplyProject(ctx, p, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&Handler{Secret: secret, State: store, Log: slog.New(slog.DiscardHandler)})
	defer srv.Close()

	github := func(ref string) []byte {
		return mustJSON(t, map[string]any{"ref": ref, "repository": map[string]any{
			"clone_url": "https://git.example/me/app.git", "ssh_url": "git@git.example:me/app.git", "default_branch": "main"}})
	}
	gitlab := mustJSON(t, map[string]any{"ref": "refs/heads/topic", "project": map[string]any{
		"git_http_url": "https://git.example/me/app.git", "default_branch": "main"}})
	for _, tc := range []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
		want    []string
	}{
		{"github push to main", github("refs/heads/main"), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign(github("refs/heads/main"), secret)},
			http.StatusAccepted, []string{"p/default", "p/main"}},
		{"gitea push to topic", github("refs/heads/topic"), map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": Sign(github("refs/heads/topic"), secret)[7:]},
			http.StatusAccepted, []string{"p/topic"}},
		{"gitlab push to topic", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": string(secret)},
			http.StatusAccepted, []string{"p/topic"}},
		{"a branch nothing follows", github("refs/heads/dev"), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign(github("refs/heads/dev"), secret)},
			http.StatusOK, nil},
		{"a ping", []byte(`{"zen":"hi"}`), map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": Sign([]byte(`{"zen":"hi"}`), secret)},
			http.StatusOK, nil},
		{"a bad signature", github("refs/heads/main"), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign(github("refs/heads/main"), []byte("wrong"))},
			http.StatusUnauthorized, nil},
		{"a signature of another body", github("refs/heads/main"), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign(github("refs/heads/topic"), secret)},
			http.StatusUnauthorized, nil},
		{"a wrong gitlab token", gitlab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"},
			http.StatusUnauthorized, nil},
		{"no signature", github("refs/heads/main"), map[string]string{"X-GitHub-Event": "push"},
			http.StatusUnauthorized, nil},
		{"not JSON", []byte("ref=main"), map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": Sign([]byte("ref=main"), secret)},
			http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := generations(t, store)
			req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, bytes.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			var moved []string
			for name, gen := range generations(t, store) {
				if gen != before[name] {
					moved = append(moved, name)
				}
			}
			slices.Sort(moved)
			if !slices.Equal(moved, tc.want) {
				t.Errorf("refreshed %v, want %v", moved, tc.want)
			}
		})
	}
}

const sha40 = "0123456789abcdef0123456789abcdef01234567"

func generations(t *testing.T, store *state.Store) map[string]int64 {
	t.Helper()
	recs, err := store.ListBuilds(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, b := range recs {
		out[b.Spec.Name] = b.Meta.Generation
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
