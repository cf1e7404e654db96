// Package reconcile is the runtime shared by every controller of the daemon:
// a rate-limited work queue of string keys fed by watches (Sources) and a
// periodic resync (Lister), drained by workers that call a Reconciler.
//
// It follows kubernetes/sample-controller and controller-runtime's internal
// controller: reconciles are level-triggered and keyed, so the same key is
// never reconciled by two workers at once and repeated events for a key that
// is still queued collapse into one reconcile.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// Result tells the controller what to do after a successful reconcile.
// It is ignored when the reconcile returns an error, because the error
// path already schedules a retry with backoff.
type Result struct {
	// RequeueAfter, if positive, reconciles the key again after this delay
	// even if nothing changed, e.g. to poll an external system.
	RequeueAfter time.Duration
}

// Reconciler drives the real state of the object named by key towards its
// desired state. It must be idempotent: it can be called at any time, any
// number of times, for keys that no longer exist.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (Result, error)
}

// Func adapts a plain function to a Reconciler.
type Func func(ctx context.Context, key string) (Result, error)

// Reconcile calls f.
func (f Func) Reconcile(ctx context.Context, key string) (Result, error) { return f(ctx, key) }

// Source is a watch: it runs until ctx is done and only ever enqueues keys.
// If it returns before ctx is done, with or without an error, the controller
// logs it and restarts it with exponential backoff, as a watch that ended
// early has stopped delivering events.
type Source func(ctx context.Context, enqueue func(key string)) error

// Lister returns every key the controller owns. The controller enqueues them
// all at start and on every resync so that missed events are eventually
// corrected (level-triggered).
type Lister func(ctx context.Context) ([]string, error)

// panicError carries a recovered panic to the code that logs it, so that
// the panic is logged exactly once and with the stack of the panicking call.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// safely runs fn and turns a panic into an error, so that one bad object or
// watch cannot take down the whole daemon.
func safely(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return fn()
}

// errAttrs returns the log attributes for err, adding the stack when err
// comes from a recovered panic.
func errAttrs(err error) []any {
	attrs := []any{"err", err}
	var p *panicError
	if errors.As(err, &p) {
		attrs = append(attrs, "stack", string(p.stack))
	}
	return attrs
}
