package build

import (
	"errors"

	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/errdefs"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/reconcile"
)

// maxInputAttempts bounds the retries of a failure that is usually the
// build's input's fault (see classifyFailure): with the build retry
// back-off (1 s, doubling) the last comes about 7 s after the first.
const maxInputAttempts = 4

// attempt counts the failed attempts at one generation of one spec.
type attempt struct {
	uid        string
	generation int64
	n          int
}

// classifyFailure decides by the type of a build's failure what comes
// next. Never by its message: BuildKit's messages are for people.
//   - A RUN step that exited non-zero (BuildKit's gateway ExitError) will
//     fail the same way again: stalled at once.
//   - An error of the Dockerfile frontend or of one build step (BuildKit's
//     FrontendError or VertexError) is usually the input's: a syntax
//     error, an unknown target, a COPY of a missing file. But BuildKit
//     reports a base image whose registry is down with the same types, so
//     it is retried with back-off, and stalled after maxInputAttempts.
//   - Anything else is the infrastructure's and transient: BuildKit or the
//     registry unreachable (gRPC Unavailable and the like), a push that
//     failed, a context fetch that failed, a full disk.
func (r *Reconciler) classifyFailure(st api.BuildStatus, cause error) error {
	var exit *gwpb.ExitError
	var frontend *errdefs.FrontendError
	var vertex *errdefs.VertexError
	switch {
	case reconcile.IsTerminal(cause):
		return cause
	case IsTransient(cause):
		return cause
	case errors.As(cause, &exit):
		return reconcile.Stall("BuildFailed", cause)
	case errors.As(cause, &frontend) || errors.As(cause, &vertex):
		if n := r.countAttempt(st); n >= maxInputAttempts {
			return reconcile.Stall("BuildFailed", cause)
		}
	}
	return cause
}

// countAttempt records one more failed attempt at st's generation and
// returns how many there were.
func (r *Reconciler) countAttempt(st api.BuildStatus) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attempts[st.Name]
	if a.uid != st.SpecUID || a.generation != st.Detail.Generation {
		a = attempt{uid: st.SpecUID, generation: st.Detail.Generation}
	}
	a.n++
	r.attempts[st.Name] = a
	return a.n
}
