// Package regclient is the client side of uc's internal registry: the
// credential transport every client uses, the engine's X-Registry-Auth
// value, and the GC request with its wire types, which the server
// (package registry) decodes. It links none of the server, so the uc CLI
// can talk to the registry without distribution's storage drivers.
package regclient

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/ucplane/uc/api"
)

// BasicAuth adds the registry's credential, when it has one, to every
// request; clients that use it talk only to the internal registry.
func BasicAuth(base http.RoundTripper, creds api.CredentialSource) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if creds == nil {
			return base.RoundTrip(req)
		}
		if cred, ok := creds(req.Context()); ok {
			req = req.Clone(req.Context())
			req.SetBasicAuth(cred.Username, cred.Password)
		}
		return base.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// EngineAuth is the X-Registry-Auth value the Docker Engine API takes for
// a push or pull; "{}" (anonymous) without a credential, which Engine
// 20.10 still wants present on a push.
func EngineAuth(cred api.Credential, ok bool, server string) string {
	v := map[string]string{}
	if ok {
		v = map[string]string{"username": cred.Username, "password": cred.Password, "serveraddress": server}
	}
	b, _ := json.Marshal(v)
	return base64.URLEncoding.EncodeToString(b)
}
