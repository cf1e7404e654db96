package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/registry/gckeep"
	"github.com/ucplane/uc/registry/regclient"
)

func newRegistryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "The internal registry: its status and garbage collection"}
	cmd.AddCommand(newRegistryStatusCmd(g), newRegistryGCCmd(g), newRegistryConfigureCmd(g), newRegistryDisableCmd(g))
	return cmd
}

func newRegistryConfigureCmd(g *globals) *cobra.Command {
	var spec api.RegistrySpec
	var selector string
	cmd := &cobra.Command{
		Use:   "configure [--node NAME | --selector k=v,...] [--port N] [--image REF] [--auth]",
		Short: "Run the internal registry as a container that ucd keeps running and moves when its node dies",
		Long: "Writes the registry spec. One eligible node (one with a Docker Engine, matching --node and --selector)\n" +
			"runs the registry container with host networking on its advertised address; when that node stops\n" +
			"heartbeating another eligible node starts one, and builds restore what it lacks.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			if spec.Selector, err = parseSelector(selector); err != nil {
				return err
			}
			if spec.Port < 0 || spec.Port > 65535 {
				return fmt.Errorf("--port %d: want 1-65535", spec.Port)
			}
			if spec.Node != "" {
				if _, err := store.GetNode(cmd.Context(), spec.Node); err != nil {
					return fmt.Errorf("--node %s: %w", spec.Node, notFound(err, "node", spec.Node))
				}
			}
			if err := store.PutRegistrySpec(cmd.Context(), spec); err != nil {
				return explain(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "registry configured")
			return nil
		},
	}
	cmd.Flags().StringVar(&spec.Node, "node", "", "pin the registry to this node")
	cmd.Flags().StringVar(&selector, "selector", "", "run the registry only on nodes with these labels, k=v,k2=v2")
	cmd.Flags().IntVar(&spec.Port, "port", api.DefaultRegistryPort, "port the registry listens on, on its node's advertised address")
	cmd.Flags().StringVar(&spec.Image, "image", "", "a distribution-compatible registry image instead of uc's own (no uc GC then)")
	cmd.Flags().BoolVar(&spec.Auth, "auth", false, "require basic auth with a generated credential that every node reads from state")
	return cmd
}

func newRegistryDisableCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "disable",
		Short: "Stop running the managed registry container (its data stays on the node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			if err := store.DeleteRegistrySpec(cmd.Context()); err != nil {
				return explain(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "registry disabled")
			return nil
		},
	}
}

// parseSelector reads "k=v,k2=v2".
func parseSelector(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--selector: %q is not k=v", kv)
		}
		out[k] = v
	}
	return out, nil
}

func newRegistryStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which nodes serve the registry, where, and its last garbage collection",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			statuses, err := store.ListRegistryStatus(cmd.Context())
			if err != nil {
				return explain(err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tADDRESS\tREADY\tMESSAGE\tLAST GC")
			for _, st := range statuses {
				ready := "False"
				msg := ""
				for _, c := range st.Conditions {
					if c.Type == api.ConditionReady {
						ready, msg = c.Status, c.Message
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", st.Node, st.Address, ready, msg, gcSummary(st.Detail.GC))
			}
			return w.Flush()
		},
	}
}

// gcSummary is one line about the last collection.
func gcSummary(gc *api.RegistryGC) string {
	switch {
	case gc == nil:
		return "never"
	case gc.Error != "":
		return fmt.Sprintf("%s ago (%s): failed: %s", time.Since(gc.StartedAt).Round(time.Second), gc.Trigger, gc.Error)
	}
	return fmt.Sprintf("%s ago (%s): %d manifests, %d blobs, %s freed in %s%s", time.Since(gc.StartedAt).Round(time.Second),
		gc.Trigger, gc.ManifestsRemoved, gc.BlobsRemoved, units.BytesSize(float64(gc.BytesFreed)), gc.Duration.Round(time.Millisecond),
		keptSummary(gc.Grace, gc.KeptReferencedBytes, gc.KeptYoungBytes, gc.UploadsPurged, gc.UploadBytesFreed))
}

// keptSummary says what a collection could not free and why, and what
// abandoned uploads it reclaimed: "; 12MiB kept: referenced by specs".
func keptSummary(grace time.Duration, referenced, young int64, uploads int, uploadBytes int64) string {
	var b strings.Builder
	if referenced > 0 {
		fmt.Fprintf(&b, "; %s kept: referenced by specs, builds or nodes", units.BytesSize(float64(referenced)))
	}
	if young > 0 {
		fmt.Fprintf(&b, "; %s kept: younger than grace %s", units.BytesSize(float64(young)), shortDuration(grace))
	}
	if uploads > 0 {
		fmt.Fprintf(&b, "; %s of %d abandoned uploads reclaimed", units.BytesSize(float64(uploadBytes)), uploads)
	}
	return b.String()
}

// shortDuration drops a duration's zero tail: 10m, 1h, 7m30s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func newRegistryGCCmd(g *globals) *cobra.Command {
	var dryRun bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc [--dry-run]",
		Short: "Collect the internal registry's garbage now: what no spec, build or node needs",
		Long: "Reads from state what must be kept (every build's current and last successful images, images specs name or\n" +
			"nodes hold, context indexes, cache refs in use), and asks the registry to delete the rest online.\n" +
			"With --dry-run it prints what would go and how much space that frees.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			addr, err := store.RegistryAddress(ctx, time.Now(), api.LiveTimeout)
			if err != nil {
				return explain(err)
			}
			keep, err := gckeep.FromState(ctx, store)
			if err != nil {
				return explain(err)
			}
			keep.Grace = &grace // set, so that --grace 0s means zero
			client := &http.Client{Timeout: 30 * time.Minute, Transport: regclient.BasicAuth(nil, store.CredentialSource(time.Minute))}
			rep, err := regclient.RequestGC(ctx, client, addr, keep, dryRun)
			if err != nil {
				return err
			}
			printGCReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted and the space freed; delete nothing")
	cmd.Flags().DurationVar(&grace, "grace", regclient.DefaultGrace, "keep anything uploaded or used within this long")
	return cmd
}

func printGCReport(w io.Writer, rep regclient.GCReport) {
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	for _, m := range rep.ManifestsRemoved {
		fmt.Fprintf(w, "%s %s\n", verb, m)
	}
	fmt.Fprintf(w, "%s %d manifests and %d blobs, freeing %s; kept %d manifests and %d blobs", verb,
		len(rep.ManifestsRemoved), rep.BlobsRemoved, units.BytesSize(float64(rep.BytesFreed)), rep.ManifestsKept, rep.BlobsKept)
	if rep.Spared > 0 {
		fmt.Fprintf(w, "; %d spared because a client used them during the sweep", rep.Spared)
	}
	fmt.Fprint(w, keptSummary(rep.Grace, rep.KeptReferencedBytes, rep.KeptYoungBytes, rep.UploadsPurged, rep.UploadBytesFreed))
	fmt.Fprintf(w, " (%s)\n", strings.TrimSpace(rep.Duration.Round(time.Millisecond).String()))
}
