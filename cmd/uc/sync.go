package main

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/api/gitremote"
	"github.com/ucplane/uc/state"
)

func newSyncCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "GitOps: have the cluster follow a repository and apply a file from it on every commit",
		Long: `A sync's owner node follows a git ref and, on every new commit, applies the
Compose file, Bake file or image monorepo directory at --path exactly as uc apply
would: builds run, images are pre-pulled, and what the file no longer has is
pruned. An invalid file changes nothing; uc get syncs and uc describe sync show
the last commit applied and why a later one was not. Push webhooks
(ucd run --webhook-listen) trigger syncs too.`,
	}
	cmd.AddCommand(newSyncAddCmd(g), newSyncDeleteCmd(g))
	return cmd
}

func newSyncAddCmd(g *globals) *cobra.Command {
	spec := api.SyncSpec{}
	cmd := &cobra.Command{
		Use:   "add NAME --repo URL --path FILE [--ref main] [--interval 1m] [--credential REF]",
		Short: "Record a sync (or change one): its owner applies --path at every new commit of --ref",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Name = args[0]
			if err := checkSync(cmd.Context(), spec); err != nil {
				return err
			}
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			if err := store.PutSync(cmd.Context(), spec); err != nil {
				return explain(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync %s recorded: %s#%s:%s every %s\n", spec.Name, spec.Repo, gitremote.RefName(spec.Ref), spec.Path, spec.Interval)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Repo, "repo", "", "the git repository's URL (required)")
	f.StringVar(&spec.Ref, "ref", "", "the branch or tag to follow (default: the remote's HEAD)")
	f.StringVar(&spec.Path, "path", "", "the Compose file, Bake file or monorepo directory in the repository (required)")
	f.StringVar(&spec.Interval, "interval", "1m", "how often the ref is resolved, at least 10s (push webhooks resolve it at once)")
	f.StringVar(&spec.Credential, "credential", "", "the repository's credential on the nodes: env:VAR (a token) or ssh:default|ssh:/path/to/key")
	return cmd
}

// checkSync refuses a sync that cannot work, before it is recorded: the
// same rules as x-uc-follow, and the ref must exist when this machine can
// ask (a credential that lives only on the nodes is left to them).
func checkSync(ctx context.Context, s api.SyncSpec) error {
	switch {
	case strings.TrimSpace(s.Name) == "" || strings.ContainsAny(s.Name, " \t/"):
		return fmt.Errorf("sync name %q: want a name without spaces or slashes", s.Name)
	case s.Repo == "":
		return fmt.Errorf("--repo is required: the repository to follow")
	case s.Path == "" || path.IsAbs(s.Path) || strings.HasPrefix(path.Clean(s.Path), ".."):
		return fmt.Errorf("--path %q: want a path inside the repository, such as deploy/compose.yaml", s.Path)
	case s.IntervalDuration() == 0:
		return fmt.Errorf("--interval %q: want a duration of at least %s", s.Interval, api.MinRefreshEvery)
	case gitremote.IsCommit(s.Ref):
		return fmt.Errorf("--ref %s is a commit, which never moves: name a branch or tag", s.Ref)
	}
	if s.Credential != "" {
		if err := gitremote.CheckCredentialRef(s.Credential); err != nil {
			return fmt.Errorf("--credential: %w", err)
		}
		if _, err := gitremote.Token(s.Credential); err != nil {
			return nil
		}
	}
	if _, err := gitremote.Resolve(ctx, s.Repo, s.Ref, s.Credential); err != nil {
		return fmt.Errorf("--repo/--ref: %w", err)
	}
	return nil
}

func newSyncDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a sync; what it applied stays (uc delete -f removes a project)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return explain(err)
			}
			if err := store.DeleteSync(cmd.Context(), args[0]); err != nil {
				return explain(notFound(err, "sync", args[0]))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sync %s deleted\n", args[0])
			return nil
		},
	}
}

func (v view) syncsTable(w io.Writer, syncs []state.SyncRecord) {
	fmt.Fprintln(w, "NAME\tREPOSITORY\tREF\tPATH\tPHASE\tAPPLIED\tAGE\tMESSAGE")
	for _, s := range syncs {
		phase, applied, msg, at := api.SyncPending, "-", "", time.Time{}
		if st, ok := s.Current(); ok {
			phase, applied, msg, at = st.Phase, short12(st.Applied), st.Message, st.UpdatedAt
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Spec.Name, s.Spec.Repo, gitremote.RefName(s.Spec.Ref), s.Spec.Path,
			phase, applied, v.ago(at), oneLine(msg, 60))
	}
}

func (v view) describeSync(w io.Writer, s state.SyncRecord) {
	field(w, "Name", s.Spec.Name)
	field(w, "Repository", s.Spec.Repo)
	field(w, "Ref", gitremote.RefName(s.Spec.Ref))
	field(w, "Path", s.Spec.Path)
	field(w, "Interval", s.Spec.Interval)
	field(w, "Credential", s.Spec.Credential)
	field(w, "Generation", fmt.Sprint(s.Meta.Generation))
	st, ok := s.Current()
	if !ok {
		field(w, "Phase", api.SyncPending+": no node has handled it yet")
		return
	}
	field(w, "Phase", st.Phase)
	field(w, "Node", st.Node)
	field(w, "Commit", st.Commit)
	field(w, "Last applied", st.Applied)
	if !st.AppliedAt.IsZero() {
		field(w, "Applied", v.ago(st.AppliedAt)+" ago")
	}
	field(w, "Project", st.Project)
	field(w, "Message", st.Message)
	for _, c := range st.Changes {
		field(w, "Change", c)
	}
}

func short12(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
