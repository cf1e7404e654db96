// Package registry is uc's internal registry: distribution/v3 embedded in
// ucd, with filesystem storage under the node's data dir and deletes
// enabled (for GC). It serves on a listener of its own so that ucd controls
// its address and its shutdown. Its client side (the credential transport
// and the GC request with its wire types) is package regclient, so that
// clients such as the uc CLI do not link the server.
package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // registers the access controller
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"

	"github.com/ucplane/uc/registry/regclient"
)

// Config is how one registry is served.
type Config struct {
	// DataDir holds the registry's storage (DataDir/registry).
	DataDir string
	// Listen is the address to bind, e.g. 127.0.0.1:5000 (":0" picks a port).
	Listen string
	// HTPasswd, when set, requires HTTP basic auth against this htpasswd
	// file (bcrypt entries), as distribution's htpasswd access controller.
	HTPasswd string
	// TLSCert and TLSKey, when both set, serve HTTPS with this key pair.
	TLSCert, TLSKey string
}

// Server is a running registry.
type Server struct {
	ln  net.Listener
	srv *http.Server
	tls bool
	gc  *collector
	// admin guards uc's own endpoints with the registry's credentials;
	// nil when the registry has no auth.
	admin auth.AccessController

	mu     sync.Mutex
	lastGC *regclient.GCReport
	totals gcTotals
}

// Open binds the listener and prepares the registry application.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	// distribution logs through logrus, and logs every 4xx answer (a HEAD
	// for a blob a client is about to push) at error level. Clients see the
	// errors that matter; uc's logs keep only fatal ones from the registry.
	logrus.SetLevel(logrus.FatalLevel)
	rcfg, err := configFor(cfg)
	if err != nil {
		return nil, err
	}
	tlsConf, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("serve registry on %s: %w", cfg.Listen, err)
	}
	s, err := newServer(ctx, cfg, rcfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.ln, s.tls = ln, tlsConf != nil
	s.srv = &http.Server{Handler: s.routes(handlers.NewApp(ctx, rcfg)), ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsConf}
	return s, nil
}

func newServer(ctx context.Context, cfg Config, rcfg *configuration.Configuration) (*Server, error) {
	fs, err := filesystem.FromParameters(map[string]any{"rootdirectory": storageDir(cfg.DataDir)})
	if err != nil {
		return nil, err
	}
	gc, err := newCollector(ctx, fs, newTouches())
	if err != nil {
		return nil, err
	}
	s := &Server{gc: gc}
	if cfg.HTPasswd != "" {
		if s.admin, err = auth.GetAccessController("htpasswd", rcfg.Auth.Parameters()); err != nil {
			return nil, fmt.Errorf("--htpasswd: %w", err)
		}
	}
	return s, nil
}

// routes serves distribution's API behind touch tracking, plus health
// (no credentials, as a container health check needs), uc's GC endpoint
// and metrics.
func (s *Server) routes(app http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("POST /uc/v1/gc", s.authorized(http.HandlerFunc(s.serveGC)))
	mux.Handle("GET /uc/v1/gc", s.authorized(http.HandlerFunc(s.serveLastGC)))
	mux.Handle("GET /metrics", s.authorized(http.HandlerFunc(s.serveMetrics)))
	mux.Handle("/", s.gc.touches.track(app))
	return mux
}

func storageDir(dataDir string) string { return filepath.Join(dataDir, "registry") }

func configFor(cfg Config) (*configuration.Configuration, error) {
	// No blob-descriptor cache: GC deletes blobs, and a cached descriptor
	// would tell a client that a swept blob still exists, so the client
	// would skip uploading it (distribution #4569). A filesystem stat costs
	// microseconds.
	rcfg := &configuration.Configuration{
		Version: "0.1",
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": storageDir(cfg.DataDir)},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	if cfg.HTPasswd != "" {
		// distribution would create a missing file with a random admin
		// password and log it; a typo in the path must fail instead.
		if _, err := os.Stat(cfg.HTPasswd); err != nil {
			return nil, fmt.Errorf("--htpasswd: %w", err)
		}
		rcfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "uc", "path": cfg.HTPasswd}}
	}
	// Upload state is signed with this secret; one process, so a fresh one
	// per start is enough.
	rcfg.HTTP.Secret = randomSecret()
	// With the zero value /v2/_catalog is always empty.
	rcfg.Catalog.MaxEntries = 1000
	rcfg.Log.AccessLog.Disabled = true
	return rcfg, nil
}

// loadTLS reads the key pair, or returns nil when TLS is off.
func loadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" && cfg.TLSKey == "" {
		return nil, nil
	}
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// Addr is the address the registry listens on, e.g. 127.0.0.1:5000.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.srv.ServeTLS(s.ln, "", "")
			return
		}
		errc <- s.srv.Serve(s.ln)
	}()
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
