package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/client-go/util/workqueue"

	"github.com/ucplane/uc/test/harness/poll"
)

// waitFor is generous on purpose: it bounds a hang, it does not measure speed.
const waitFor = 10 * time.Second

// counter records how many times each key was reconciled.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *counter) inc(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[key]++
	return c.counts[key]
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// testOptions uses a fast rate limiter and a silent logger.
func testOptions() Options {
	return Options{
		Name:        "test",
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, 10*time.Millisecond),
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func fastBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Millisecond),
		backoff.WithMaxInterval(5*time.Millisecond),
		backoff.WithMaxElapsedTime(0))
}

// start runs c and returns a function that stops it and waits for Run.
func start(t *testing.T, c *Controller) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(waitFor):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestEnqueueReconciles(t *testing.T) {
	t.Parallel()
	var n counter
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to be reconciled", func() bool { return n.get("a") == 1 })
}

func TestDuplicatesCoalesce(t *testing.T) {
	t.Parallel()
	var n counter
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}))
	for range 5 {
		c.Enqueue("a")
	}
	// With one worker the queue is FIFO, so once the sentinel is done every
	// copy of "a" that was queued has been processed.
	c.Enqueue("sentinel")
	start(t, c)
	poll.Eventually(t, "sentinel to be reconciled", func() bool { return n.get("sentinel") == 1 })
	if got := n.get("a"); got != 1 {
		t.Fatalf("a reconciled %d times, want 1", got)
	}
}

func TestErrorIsRetried(t *testing.T) {
	t.Parallel()
	var n counter
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		if n.inc(key) <= 3 {
			return Result{}, errors.New("boom")
		}
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to succeed after 3 failures", func() bool { return n.get("a") == 4 })
	poll.Eventually(t, "a's backoff to be forgotten", func() bool { return c.queue.NumRequeues("a") == 0 })
}

func TestTerminalErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	var n counter
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		if key == "a" {
			return Result{}, Terminal(errors.New("invalid spec"))
		}
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to be reconciled", func() bool { return n.get("a") == 1 })
	// A retry would come after ~1ms; the sentinel comes much later.
	c.EnqueueAfter("sentinel", 100*time.Millisecond)
	poll.Eventually(t, "sentinel to be reconciled", func() bool { return n.get("sentinel") == 1 })
	if got := n.get("a"); got != 1 {
		t.Fatalf("a reconciled %d times, want 1", got)
	}
	if got := c.queue.NumRequeues("a"); got != 0 {
		t.Fatalf("NumRequeues(a) = %d, want 0", got)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	base := errors.New("base")
	err := Terminal(base)
	if !IsTerminal(err) || !errors.Is(err, base) {
		t.Fatalf("Terminal(base) = %v: IsTerminal %v, Is(base) %v", err, IsTerminal(err), errors.Is(err, base))
	}
	if wrapped := errors.Join(errors.New("ctx"), err); !IsTerminal(wrapped) {
		t.Fatal("IsTerminal does not see through wrapping")
	}
	if IsTerminal(base) || IsTerminal(nil) {
		t.Fatal("IsTerminal is true for a plain or nil error")
	}
	if Terminal(nil) != nil {
		t.Fatal("Terminal(nil) is not nil")
	}
}

func TestPanicIsRecoveredAndRetried(t *testing.T) {
	t.Parallel()
	var n counter
	var buf syncBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	c := New(opts, Func(func(_ context.Context, key string) (Result, error) {
		if n.inc(key) == 1 {
			panic("kaboom")
		}
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to be retried after the panic", func() bool { return n.get("a") == 2 })
	poll.Eventually(t, "the panic to be logged with its stack", func() bool {
		for _, rec := range buf.records(t) {
			if rec["err"] == "panic: kaboom" && rec["stack"] != nil && rec["key"] == "a" {
				return true
			}
		}
		return false
	})
}

func TestRequeueAfter(t *testing.T) {
	t.Parallel()
	var n counter
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		if n.inc(key) < 3 {
			return Result{RequeueAfter: 5 * time.Millisecond}, nil
		}
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to be requeued twice", func() bool { return n.get("a") == 3 })
}

func TestTimeoutCancelsReconcile(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	opts := testOptions()
	opts.Timeout = 20 * time.Millisecond
	c := New(opts, Func(func(ctx context.Context, _ string) (Result, error) {
		select {
		case <-ctx.Done():
			got <- ctx.Err()
		case <-time.After(waitFor):
			got <- nil
		}
		return Result{}, Terminal(errors.New("done"))
	}))
	start(t, c)
	c.Enqueue("a")
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reconcile ctx error = %v, want DeadlineExceeded", err)
	}
}

func TestResyncEnqueuesListedKeys(t *testing.T) {
	t.Parallel()
	var n counter
	opts := testOptions()
	opts.Resync = 5 * time.Millisecond
	opts.Lister = func(context.Context) ([]string, error) { return []string{"a", "b"}, nil }
	c := New(opts, Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}))
	start(t, c)
	poll.Eventually(t, "a and b to be resynced repeatedly", func() bool { return n.get("a") >= 3 && n.get("b") >= 3 })
}

func TestListerRunsOnceAtStart(t *testing.T) {
	t.Parallel()
	var n counter
	var lists atomic.Int32
	opts := testOptions()
	opts.Lister = func(context.Context) ([]string, error) {
		if lists.Add(1) == 1 {
			return nil, errors.New("api unavailable")
		}
		return []string{"a"}, nil
	}
	c := New(opts, Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}))
	c.backOffs = fastBackOff
	start(t, c)
	poll.Eventually(t, "a to be listed after a failed listing", func() bool { return n.get("a") == 1 })
	c.EnqueueAfter("sentinel", 50*time.Millisecond)
	poll.Eventually(t, "sentinel to be reconciled", func() bool { return n.get("sentinel") == 1 })
	if got := lists.Load(); got != 2 {
		t.Fatalf("lister called %d times without resync, want 2", got)
	}
}

func TestSourceEnqueues(t *testing.T) {
	t.Parallel()
	var n counter
	src := func(ctx context.Context, enqueue func(string)) error {
		enqueue("x")
		<-ctx.Done()
		return nil
	}
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}), src)
	start(t, c)
	poll.Eventually(t, "x to be reconciled", func() bool { return n.get("x") == 1 })
}

func TestFailingSourceIsRestarted(t *testing.T) {
	t.Parallel()
	var n counter
	var runs atomic.Int32
	src := func(ctx context.Context, enqueue func(string)) error {
		switch runs.Add(1) {
		case 1:
			return errors.New("watch failed")
		case 2:
			panic("watch panicked")
		}
		enqueue("x")
		<-ctx.Done()
		return nil
	}
	c := New(testOptions(), Func(func(_ context.Context, key string) (Result, error) {
		n.inc(key)
		return Result{}, nil
	}), src)
	c.backOffs = fastBackOff
	start(t, c)
	poll.Eventually(t, "x to be reconciled by the third run", func() bool { return n.get("x") == 1 })
	if got := runs.Load(); got != 3 {
		t.Fatalf("source ran %d times, want 3", got)
	}
}

func TestRunJoinsWorkersAndSources(t *testing.T) {
	t.Parallel()
	inFlight := make(chan struct{})
	var reconcileDone, sourceDone atomic.Bool
	src := func(ctx context.Context, _ func(string)) error {
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		sourceDone.Store(true)
		return nil
	}
	c := New(testOptions(), Func(func(ctx context.Context, _ string) (Result, error) {
		close(inFlight)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		reconcileDone.Store(true)
		return Result{}, nil
	}), src)
	stop := start(t, c)
	c.Enqueue("a")
	<-inFlight
	stop()
	if !reconcileDone.Load() || !sourceDone.Load() {
		t.Fatalf("Run returned early: reconcile done %v, source done %v", reconcileDone.Load(), sourceDone.Load())
	}
	c.Enqueue("b") // must not panic or block after shutdown
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	c := New(testOptions(), Func(func(context.Context, string) (Result, error) { return Result{}, nil }))
	start(t, c)
	poll.Eventually(t, "Run to start", c.started.Load)
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("second Run returned nil")
	}
}

func TestLoggerCarriesControllerName(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	opts := testOptions()
	opts.Name = "widgets"
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := New(opts, Func(func(context.Context, string) (Result, error) {
		return Result{}, Terminal(errors.New("bad widget"))
	}))
	stop := start(t, c)
	c.Enqueue("w1")
	poll.Eventually(t, "the terminal error to be logged", func() bool {
		for _, rec := range buf.records(t) {
			if rec["level"] == "ERROR" && rec["key"] == "w1" && rec["err"] == "bad widget" {
				return true
			}
		}
		return false
	})
	stop()
	recs := buf.records(t)
	if len(recs) < 3 {
		t.Fatalf("got %d log records, want start, error and stop", len(recs))
	}
	for _, rec := range recs {
		if rec["controller"] != "widgets" {
			t.Errorf("record without controller=widgets: %v", rec)
		}
	}
}

// syncBuffer lets the test read logs while workers are still writing them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	data := bytes.Clone(b.buf.Bytes())
	b.mu.Unlock()
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20) // panic records carry a stack
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("bad log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestWaitIsNotAFailure: a Wait is requeued after its After, is never
// counted as a failure (no backoff), and logs no error.
func TestWaitIsNotAFailure(t *testing.T) {
	t.Parallel()
	var n counter
	var buf syncBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	c := New(opts, Func(func(_ context.Context, key string) (Result, error) {
		if n.inc(key) < 3 {
			return Result{}, Wait("WaitingForDependency", "waiting for build p/base", 5*time.Millisecond)
		}
		return Result{}, nil
	}))
	start(t, c)
	c.Enqueue("a")
	poll.Eventually(t, "a to come back after each wait", func() bool { return n.get("a") == 3 })
	if got := c.queue.NumRequeues("a"); got != 0 {
		t.Errorf("NumRequeues(a) = %d after waits, want 0 (a wait is not a failure)", got)
	}
	for _, rec := range buf.records(t) {
		if rec["level"] == "ERROR" {
			t.Errorf("a wait logged an error: %v", rec)
		}
	}
}

func TestOutcomeReasons(t *testing.T) {
	t.Parallel()
	stalled := fmt.Errorf("build p/web: %w", Stall("BuildFailed", errors.New("exit code: 3")))
	if !IsTerminal(stalled) || Reason(stalled) != "BuildFailed" {
		t.Errorf("Stall: terminal %v, reason %q", IsTerminal(stalled), Reason(stalled))
	}
	waiting := Wait("Waiting", "waiting for node2 to resolve the tag", 0)
	if w, ok := IsWaiting(waiting); !ok || w.Message != waiting.Error() || IsTerminal(waiting) || Reason(waiting) != "Waiting" {
		t.Errorf("Wait: %v %v", w, ok)
	}
	if Reason(errors.New("transient")) != "" || Stall("x", nil) != nil {
		t.Error("a plain error has a reason, or Stall(nil) is not nil")
	}
}
