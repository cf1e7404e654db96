// Package poll waits in tests for what happens in other goroutines or
// processes. It imports nothing of uc, so that every package's tests can
// use it, even those that state/statetest imports.
package poll

import (
	"testing"
	"time"
)

// Timeout bounds a wait. It is generous on purpose: it stops a hang, it
// does not measure speed.
const Timeout = 15 * time.Second

// Eventually waits until cond holds and fails the test, naming what it
// waited for, if it does not within Timeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !until(cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Value polls get until ok accepts what it returns, and returns that. On a
// timeout the failure shows the last value and error, which say why.
func Value[T any](t testing.TB, what string, get func() (T, error), ok func(T) bool) T {
	t.Helper()
	var v T
	var err error
	if !until(func() bool { v, err = get(); return err == nil && ok(v) }) {
		t.Fatalf("timed out waiting for %s: last %+v, err %v", what, v, err)
	}
	return v
}

// until calls cond every 10 ms until it holds, for up to Timeout, and
// reports whether it held.
func until(cond func() bool) bool {
	deadline := time.Now().Add(Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
