// Package registry is uc's internal registry: distribution/v3 embedded in
// ucd, with filesystem storage under the node's data dir and deletes
// enabled (for GC). It serves on a listener of its own so that ucd controls
// its address and its shutdown.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // registers the driver
	"github.com/sirupsen/logrus"
)

// Config is how one registry is served.
type Config struct {
	// DataDir holds the registry's storage (DataDir/registry).
	DataDir string
	// Listen is the address to bind, e.g. 127.0.0.1:5000 (":0" picks a port).
	Listen string
}

// Server is a running registry.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Open binds the listener and prepares the registry application.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	// distribution logs through logrus, and logs every 4xx answer (a HEAD
	// for a blob a client is about to push) at error level. Clients see the
	// errors that matter; uc's logs keep only fatal ones from the registry.
	logrus.SetLevel(logrus.FatalLevel)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("serve registry on %s: %w", cfg.Listen, err)
	}
	app := handlers.NewApp(ctx, configFor(cfg.DataDir))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("/", app)
	return &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}}, nil
}

func configFor(dataDir string) *configuration.Configuration {
	cfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": filepath.Join(dataDir, "registry")},
			"delete":     configuration.Parameters{"enabled": true},
			"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		},
	}
	// Upload state is signed with this secret; one process, so a fresh one
	// per start is enough.
	cfg.HTTP.Secret = randomSecret()
	// With the zero value /v2/_catalog is always empty.
	cfg.Catalog.MaxEntries = 1000
	cfg.Log.AccessLog.Disabled = true
	return cfg
}

// Addr is the address the registry listens on, e.g. 127.0.0.1:5000.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
