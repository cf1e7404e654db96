package main

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ucplane/uc/state"
	"github.com/ucplane/uc/state/corrosion"
)

const (
	defaultAPI            = "http://127.0.0.1:51002"
	defaultRequestTimeout = 30 * time.Second
)

// globals are the flags every command shares.
type globals struct {
	api   string
	token string
	ca    string
	// timeout bounds each request to the state API (and to a node's
	// API): a whole answer, or the start of a stream.
	timeout time.Duration
}

// imagesStore checks that a command's kind argument is "images" (the only
// kind wait knows) and connects to the state API.
func (g *globals) imagesStore(args []string) (*state.Store, error) {
	if args[0] != "images" {
		return nil, fmt.Errorf("unknown kind %q: want images", args[0])
	}
	return g.store()
}

// store connects to the state API. Nothing is sent until a command runs.
func (g *globals) store() (*state.Store, error) {
	opts := []corrosion.Option{corrosion.WithCAFile(g.ca), corrosion.WithRequestTimeout(g.timeout)}
	if g.token != "" {
		opts = append(opts, corrosion.WithToken(g.token))
	}
	c, err := corrosion.New(g.api, opts...)
	if errors.Is(err, corrosion.ErrCAFile) {
		return nil, fmt.Errorf("--corrosion-ca: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--corrosion-api: %w", err)
	}
	return state.NewStore(c), nil
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "uc",
		Short:         "Declarative builds, registry and pre-pull for small container clusters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.api, "corrosion-api", cmp.Or(os.Getenv("UC_CORROSION_API"), defaultAPI),
		"state API URL (env UC_CORROSION_API)")
	root.PersistentFlags().StringVar(&g.token, "corrosion-token", os.Getenv("UC_CORROSION_TOKEN"),
		"bearer token for the state API (env UC_CORROSION_TOKEN)")
	root.PersistentFlags().StringVar(&g.ca, "corrosion-ca", os.Getenv("UC_CORROSION_CA"),
		"PEM file of CA certificates to trust, besides the system's, for an https:// state API (env UC_CORROSION_CA)")
	root.PersistentFlags().DurationVar(&g.timeout, "request-timeout", defaultRequestTimeout,
		"give up on a request the state API has not answered within this long (0: never); a stream, as in uc wait or uc logs -f, is bounded until it starts")
	root.AddCommand(newApplyCmd(g), newGetCmd(g), newDescribeCmd(g), newDeleteCmd(g), newWaitCmd(g), newLogsCmd(g), newRegistryCmd(g), newRefreshCmd(g), newContextsCmd(g), newImagesCmd(g), newBuildCmd(g), newSyncCmd(g))
	return root
}

// explain adds a hint to errors a person can act on.
func explain(err error) error {
	var unreachable *corrosion.Unreachable
	if errors.As(err, &unreachable) {
		return fmt.Errorf("%w (is `ucd run` or `ucd state serve` running? set --corrosion-api or UC_CORROSION_API)", err)
	}
	var timeout *corrosion.Timeout
	if errors.As(err, &timeout) {
		return fmt.Errorf("%w (--request-timeout)", err)
	}
	return err
}

// nodeClient is the HTTP client for a node's API (build logs): like the
// state API, a node must start answering within the request timeout.
func (g *globals) nodeClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = g.timeout
	return &http.Client{Transport: tr}
}
