package reconcile

import (
	"errors"
	"time"
)

// A reconcile ends in one of four outcomes. Success is a nil error. The
// other three are errors, so that the runtime and a controller's status
// summary read the same value: what a user is told and what the
// controller does next never disagree.
//
//   - Stalled (Stall, or Terminal): a retry cannot help until the spec or
//     the world changes. The key is dropped until an event brings it back.
//   - Waiting (Wait): not a failure; the object waits for something the
//     reason names (another build, a tag's resolution). Nothing is logged
//     as an error; the key comes back on an event, or after After.
//   - Transient (any other error): retried with backoff.

type terminalError struct {
	reason string
	err    error
}

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// Terminal marks err as one that retrying cannot fix (e.g. an invalid spec):
// the controller logs it and drops the key until it is enqueued again.
// Terminal(nil) is nil so that `return res, Terminal(err)` is safe.
func Terminal(err error) error { return Stall("", err) }

// Stall is Terminal with a reason (a CamelCase word for status conditions).
func Stall(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{reason: reason, err: err}
}

// IsTerminal reports whether err, or any error it wraps, was marked Terminal.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}

// Reason is the reason a Stall or Wait was given, or "".
func Reason(err error) string {
	var t *terminalError
	if errors.As(err, &t) {
		return t.reason
	}
	var w *WaitingError
	if errors.As(err, &w) {
		return w.Reason
	}
	return ""
}

// WaitingError says a reconcile has nothing to do until something else
// happens; Message says what, for a person.
type WaitingError struct {
	Reason  string
	Message string
	// After, if positive, looks again after this long even without an event.
	After time.Duration
}

func (e *WaitingError) Error() string { return e.Message }

// Wait ends a reconcile that waits for something other than itself.
func Wait(reason, message string, after time.Duration) error {
	return &WaitingError{Reason: reason, Message: message, After: after}
}

// IsWaiting reports whether err is a Wait, and returns it.
func IsWaiting(err error) (*WaitingError, bool) {
	var w *WaitingError
	ok := errors.As(err, &w)
	return w, ok
}
