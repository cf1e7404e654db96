package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/state"
)

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	var generation int64
	cmd := &cobra.Command{
		Use:   "logs build NAME [-f]",
		Short: "Print a build's full log, streamed from the node that built it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "build" {
				return fmt.Errorf("unknown kind %q: want build", args[0])
			}
			store, err := g.store()
			if err != nil {
				return err
			}
			return explain(streamBuildLog(cmd, g, store, args[1], generation, follow))
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming until the build finishes")
	cmd.Flags().Int64Var(&generation, "generation", 0, "the spec generation whose build to show (default: the latest)")
	return cmd
}

// streamBuildLog finds the node that ran the build and copies its log.
func streamBuildLog(cmd *cobra.Command, g *globals, store *state.Store, name string, generation int64, follow bool) error {
	ctx := cmd.Context()
	b, err := store.GetBuild(ctx, name)
	if err != nil {
		return notFound(err, "build", name)
	}
	node, gen, err := logSource(b, generation)
	if err != nil {
		return err
	}
	n, err := store.GetNode(ctx, node)
	if err != nil {
		return err
	}
	if n.Capacity.API == "" {
		return fmt.Errorf("node %s publishes no API address; is its ucd older than this uc?", node)
	}
	q := url.Values{"name": {name}, "generation": {strconv.FormatInt(gen, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Capacity.API+"/v1/logs/builds?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := g.nodeClient().Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return fmt.Errorf("node %s at %s did not answer within %s (--request-timeout)", node, n.Capacity.API, g.timeout)
		}
		return fmt.Errorf("node %s at %s: %w", node, n.Capacity.API, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("node %s: %s", node, string(msg))
	}
	_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
	return err
}

// logSource is the node and generation whose log to show: the newest
// build of the requested (or latest) generation.
func logSource(b state.BuildRecord, generation int64) (string, int64, error) {
	var node string
	var gen int64
	for _, st := range b.Status {
		g := st.Detail.Generation
		if st.SpecUID != b.Meta.UID || g == 0 || st.Detail.Reused || (generation != 0 && g != generation) {
			continue
		}
		if g > gen {
			node, gen = st.Node, g
		}
	}
	if node == "" {
		return "", 0, errors.New("no node has built " + b.Spec.Name + " yet (or its image was reused without a build)")
	}
	return node, gen, nil
}
