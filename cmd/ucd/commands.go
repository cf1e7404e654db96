package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/ucplane/uc/controllers"
	"github.com/ucplane/uc/controllers/build"
	"github.com/ucplane/uc/controllers/managedregistry"
	"github.com/ucplane/uc/controllers/prepull"
	"github.com/ucplane/uc/controllers/webhook"
	"github.com/ucplane/uc/registry"
	"github.com/ucplane/uc/registry/regclient"
	"github.com/ucplane/uc/state"
)

const defaultStateListen = "127.0.0.1:51002"

func newRootCmd(log *slog.Logger) *cobra.Command {
	root := &cobra.Command{
		Use:           "ucd",
		Short:         "uc's node daemon: reconciles builds, the registry and pre-pulls on this node",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newRunCmd(log), newStateCmd(log), newRegistryCmd(log), newSchemaCmd(), newBuildCmd(), newImageCmd())
	return root
}

func newRunCmd(log *slog.Logger) *cobra.Command {
	cfg := controllers.Config{Version: version, Logger: log}
	var labels, webhookSecretFile, contextMax, logsMax string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "run --node NAME --data-dir DIR",
		Short: "Run this node's controllers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			if cfg.Node == "" || cfg.DataDir == "" {
				return errors.New("--node and --data-dir are required")
			}
			if err := checkEntitlements(cfg.Entitlements); err != nil {
				return err
			}
			slices.Sort(cfg.Entitlements)
			if cfg.WebhookSecret, err = webhookSecret(cfg.WebhookListen, webhookSecretFile); err != nil {
				return err
			}
			if cfg.ContextRetention.MaxBytes, err = sizeFlag("--context-cache-max", contextMax); err != nil {
				return err
			}
			if cfg.LogRetention.MaxBytes, err = sizeFlag("--build-logs-max", logsMax); err != nil {
				return err
			}
			if cfg.CorrosionAPI == "" {
				e := exposure{listen: cfg.StateListen, token: cfg.CorrosionToken, insecure: insecure,
					listenFlag: "--state-listen", tokenFlag: "--corrosion-token"}
				if err := e.check(log); err != nil {
					return err
				}
			}
			cfg.Logger = log.With("node", cfg.Node)
			return controllers.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Node, "node", "", "this node's name (required)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for this node's data (required)")
	f.StringVar(&cfg.CorrosionAPI, "corrosion-api", "", "Corrosion agent API URL; empty serves the embedded state")
	f.StringVar(&cfg.CorrosionToken, "corrosion-token", "", "bearer token for the Corrosion API")
	f.StringVar(&cfg.CorrosionCA, "corrosion-ca", "", "PEM file of CA certificates to trust, besides the system's, for an https:// --corrosion-api")
	f.StringVar(&cfg.StateListen, "state-listen", defaultStateListen, "address the embedded state listens on")
	f.BoolVar(&insecure, "insecure", false, "serve the embedded state beyond loopback without --corrosion-token (logged as a warning)")
	f.StringVar(&labels, "labels", "", "node labels, k=v,k2=v2")
	f.StringArrayVar(&cfg.SchemaPaths, "schema", nil, "extra schema file or directory for the embedded state (repeatable)")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", 5*time.Second, "how often the node heartbeats")
	f.StringVar(&cfg.DockerHost, "docker-host", defaultDockerHost(), "this node's Docker Engine, for pre-pulls (empty: none)")
	f.StringVar(&cfg.BuildkitAddr, "buildkit-addr", "", "this node's buildkitd address, for the buildkit driver")
	f.StringSliceVar(&cfg.NativePlatforms, "builder-platforms", nil, "the platforms this node's builder builds natively, e.g. linux/arm64, instead of what BuildKit reports first (as buildx create --platform); the rest it reports are advertised as emulated")
	f.StringVar(&cfg.BuildDriver, "build-driver", "", "how this node builds: buildkit (--buildkit-addr) or docker (the --docker-host engine's BuildKit); default buildkit if --buildkit-addr is set, else the node does not build")
	f.StringVar(&cfg.RegistryAddress, "registry-address", controllers.DefaultRegistryAddress,
		"the internal registry's stable address: a loopback host:port, the same on every node, forwarded to wherever the registry runs now; engines and BuildKit pull and push there")
	f.StringVar(&cfg.RegistryListen, "registry-listen", "", "serve the internal registry in this process on this address, e.g. 127.0.0.1:5000 (instead of the managed registry container)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "127.0.0.1", "the IP other nodes reach this node at; a managed registry here listens on it")
	f.DurationVar(&cfg.RegistryFailoverAfter, "registry-failover-after", managedregistry.DefaultFailoverAfter, "how long the registry's node may be silent before another node starts the registry")
	f.DurationVar(&cfg.RegistryGC.GCInterval, "registry-gc-interval", managedregistry.DefaultGCInterval, "collect the registry's garbage this often (0: never on a schedule)")
	f.IntVar(&cfg.RegistryGC.GCDiskPercent, "registry-gc-disk-percent", managedregistry.DefaultGCDiskPercent, "collect when the registry's filesystem is this full, in percent (0: never)")
	f.DurationVar(&cfg.RegistryGC.GCGrace, "registry-gc-grace", regclient.DefaultGrace, "GC keeps anything uploaded or used within this long")
	f.StringVar(&cfg.NodeAPIListen, "node-api-listen", "127.0.0.1:0", "where a builder node serves its API (full build logs)")
	f.IntVar(&cfg.MaxBuilds, "max-builds", build.DefaultMaxBuilds, "builds this node runs at once; more wait as queued")
	f.DurationVar(&cfg.BaseWatch, "base-watch", build.DefaultBaseWatch, "check this often whether the bases of builds that do not follow them (x-uc-rebuild-on-base) moved, and say so in their status (0: never)")
	f.IntVar(&cfg.MaxPulls, "max-pulls", prepull.DefaultMaxPulls, "images this node pre-pulls at once")
	f.DurationVar(&cfg.PruneAfter, "prune-after", 0, "remove images uc pulled here once no spec places them here for this long (never one a container uses); 0: never")
	f.StringVar(&contextMax, "context-cache-max", "5GiB", "a builder keeps the contexts it fetched up to this size, oldest removed first (the current builds' always kept)")
	f.DurationVar(&cfg.ContextRetention.MaxAge, "context-cache-max-age", build.DefaultContextRetention.MaxAge, "and none unused for longer than this")
	f.StringVar(&logsMax, "build-logs-max", "1GiB", "a builder keeps build logs up to this size, oldest removed first (each build's current generation always kept)")
	f.DurationVar(&cfg.LogRetention.MaxAge, "build-logs-max-age", build.DefaultLogRetention.MaxAge, "and none older than this")
	f.StringVar(&cfg.WebhookListen, "webhook-listen", "", "serve POST "+webhook.Path+" here for push events of GitHub, Gitea and GitLab, which refresh the builds that follow the pushed branch (empty: off)")
	f.StringVar(&webhookSecretFile, "webhook-secret-file", "", "file holding the webhooks' shared secret (required with --webhook-listen)")
	f.StringSliceVar(&cfg.Entitlements, "allow-entitlement", nil, "build entitlements this node grants: network.host, security.insecure (repeatable)")
	return cmd
}

// parseLabels reads "k=v,k2=v2".
// sizeFlag parses a size such as 5GiB.
func sizeFlag(name, v string) (int64, error) {
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s %q: want a size such as 5GiB", name, v)
	}
	return n, nil
}

// webhookSecret reads the webhooks' secret: a webhook endpoint without
// one would let anyone trigger builds.
func webhookSecret(listen, file string) ([]byte, error) {
	if listen == "" {
		return nil, nil
	}
	if file == "" {
		return nil, errors.New("--webhook-listen needs --webhook-secret-file: push events are only trusted when signed with the shared secret")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--webhook-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) < 16 {
		return nil, fmt.Errorf("--webhook-secret-file %s: the secret is %d bytes; use at least 16 (e.g. openssl rand -hex 32)", file, len(secret))
	}
	return secret, nil
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--labels: %q is not k=v", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func newStateCmd(log *slog.Logger) *cobra.Command {
	state := &cobra.Command{Use: "state", Short: "The embedded single-node state"}
	var sc controllers.StateConfig
	var insecure bool
	serve := &cobra.Command{
		Use:   "serve --data-dir DIR [--listen ADDR] [--token T | --insecure] [--schema PATH]",
		Short: "Serve the embedded state on its own, for several ucd run processes to share",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sc.DataDir == "" {
				return errors.New("--data-dir is required")
			}
			e := exposure{listen: sc.Listen, token: sc.Token, insecure: insecure, listenFlag: "--listen", tokenFlag: "--token"}
			if err := e.check(log); err != nil {
				return err
			}
			return serveState(cmd, sc, log)
		},
	}
	serve.Flags().StringVar(&sc.DataDir, "data-dir", "", "directory for the state database (required)")
	serve.Flags().StringVar(&sc.Listen, "listen", defaultStateListen, "address to listen on")
	serve.Flags().StringVar(&sc.Token, "token", "", "require this bearer token")
	serve.Flags().BoolVar(&insecure, "insecure", false, "serve beyond loopback without --token (logged as a warning)")
	serve.Flags().StringArrayVar(&sc.SchemaPaths, "schema", nil, "extra schema file or directory of *.sql (repeatable), as Corrosion's db.schema_paths")
	state.AddCommand(serve)
	return state
}

func serveState(cmd *cobra.Command, sc controllers.StateConfig, log *slog.Logger) error {
	lock, err := controllers.LockDataDir(sc.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	srv, ln, err := controllers.OpenEmbedded(cmd.Context(), sc, log)
	if err != nil {
		return err
	}
	log.Info("Serving the embedded state.", "addr", ln.Addr().String(), "data_dir", sc.DataDir)
	return srv.Serve(cmd.Context(), ln)
}

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print uc's state schema, for a Corrosion agent's db.schema_paths",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), state.Schema) },
	}
}

func newRegistryCmd(log *slog.Logger) *cobra.Command {
	reg := &cobra.Command{Use: "registry", Short: "The internal registry"}
	var cfg registry.Config
	serve := &cobra.Command{
		Use:   "serve --data-dir DIR --listen ADDR [--htpasswd FILE] [--tls-cert F --tls-key F]",
		Short: "Serve the registry (distribution/v3, filesystem storage, deletes enabled)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DataDir == "" {
				return errors.New("--data-dir is required")
			}
			srv, err := registry.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			log.Info("Serving the registry.", "addr", srv.Addr(), "data_dir", cfg.DataDir)
			return srv.Serve(cmd.Context())
		},
	}
	serve.Flags().StringVar(&cfg.DataDir, "data-dir", "", "directory for the registry's storage (required)")
	serve.Flags().StringVar(&cfg.Listen, "listen", "127.0.0.1:5000", "address to listen on")
	serve.Flags().StringVar(&cfg.HTPasswd, "htpasswd", "", "require basic auth against this htpasswd file (bcrypt)")
	serve.Flags().StringVar(&cfg.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	serve.Flags().StringVar(&cfg.TLSKey, "tls-key", "", "the certificate's private key (PEM)")
	probe := &cobra.Command{
		Use:   "probe URL",
		Short: "Exit 0 if URL answers 200 (the registry container's health check)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := &http.Client{Timeout: 3 * time.Second}
			resp, err := c.Get(args[0])
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %s", args[0], resp.Status)
			}
			return nil
		},
	}
	reg.AddCommand(serve, probe)
	return reg
}

// defaultDockerHost is DOCKER_HOST, else the standard socket if it exists.
func defaultDockerHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		return "unix:///var/run/docker.sock"
	}
	return ""
}

func checkEntitlements(es []string) error {
	for _, e := range es {
		if e != "network.host" && e != "security.insecure" {
			return fmt.Errorf("--allow-entitlement: unknown entitlement %q (want network.host or security.insecure)", e)
		}
	}
	return nil
}
