package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/client-go/util/workqueue"
)

const (
	defaultTimeout = 5 * time.Minute
	// A source that ran at least this long was healthy, so its
	// next failure starts again from the shortest backoff.
	stableRun = time.Minute
)

// Options configures a Controller. The zero value of every field is usable.
type Options struct {
	Name    string        // controller name, used in logs and as the queue name
	Workers int           // concurrent reconciles; default 1
	Timeout time.Duration // per-reconcile timeout; default 5m
	Resync  time.Duration // periodic resync interval; 0 disables
	Lister  Lister        // keys for the resync; also listed once at start
	Logger  *slog.Logger  // default slog.Default(); always tagged controller=Name
	// RateLimiter spaces out retries of failing keys; default
	// workqueue.DefaultTypedControllerRateLimiter.
	RateLimiter workqueue.TypedRateLimiter[string]
}

// Controller feeds keys from sources and resyncs into a rate-limited queue
// and reconciles them with a pool of workers.
type Controller struct {
	name     string
	workers  int
	timeout  time.Duration
	resync   time.Duration
	lister   Lister
	log      *slog.Logger
	r        Reconciler
	sources  []Source
	queue    workqueue.TypedRateLimitingInterface[string]
	started  atomic.Bool
	backOffs func() *backoff.ExponentialBackOff // replaced in tests
}

// New returns a controller that is ready to accept keys; nothing is
// reconciled until Run is called.
func New(opts Options, r Reconciler, sources ...Source) *Controller {
	opts = withDefaults(opts)
	return &Controller{
		name:    opts.Name,
		workers: opts.Workers,
		timeout: opts.Timeout,
		resync:  opts.Resync,
		lister:  opts.Lister,
		log:     opts.Logger.With("controller", opts.Name),
		r:       r,
		sources: sources,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(opts.RateLimiter,
			workqueue.TypedRateLimitingQueueConfig[string]{Name: opts.Name}),
		backOffs: newBackOff,
	}
}

func withDefaults(opts Options) Options {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.DefaultTypedControllerRateLimiter[string]()
	}
	return opts
}

// newBackOff never gives up: a controller keeps retrying its watches for as
// long as the daemon runs.
func newBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0))
}

// Enqueue schedules key for reconciliation. It is a no-op after Run returned.
func (c *Controller) Enqueue(key string) { c.queue.Add(key) }

// EnqueueAfter schedules key for reconciliation once d has elapsed.
func (c *Controller) EnqueueAfter(key string, d time.Duration) { c.queue.AddAfter(key, d) }

// Run starts the sources, the resync loop and the workers, and blocks until
// ctx is done. It then shuts the queue down and waits for every goroutine it
// started, including in-flight reconciles, before returning, so callers can
// safely release what the reconciler uses. Run may be called only once.
func (c *Controller) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("reconcile: controller " + c.name + " was already run")
	}
	c.log.Info("Starting controller.", "workers", c.workers, "sources", len(c.sources))
	var wg sync.WaitGroup
	for i, src := range c.sources {
		wg.Go(func() { c.runSource(ctx, i, src) })
	}
	if c.lister != nil {
		wg.Go(func() { c.runResync(ctx) })
	}
	for range c.workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.log.Info("Stopping controller; waiting for in-flight reconciles to finish.")
	c.queue.ShutDown()
	wg.Wait()
	c.log.Info("Controller stopped.")
	return nil
}

// processNext reconciles one key and reports whether the worker should go on.
func (c *Controller) processNext(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	// A shut-down queue still hands out what it holds; reconciling those
	// keys with a cancelled context would only produce spurious errors.
	if ctx.Err() != nil {
		return false
	}
	c.handle(ctx, key)
	return true
}

// handle reconciles key and decides, from the outcome, when it runs again.
func (c *Controller) handle(ctx context.Context, key string) {
	start := time.Now()
	res, err := c.reconcile(ctx, key)
	log := c.log.With("key", key, "duration", time.Since(start))
	if err != nil && ctx.Err() != nil {
		// Shutting down: the error is the cancellation, not the key's fault.
		log.Debug("Reconcile ended by shutdown.", "err", err)
		c.queue.Forget(key)
		return
	}
	var p *panicError
	wait, waiting := IsWaiting(err)
	switch {
	case waiting:
		log.Debug("Reconciled key; it waits.", "reason", wait.Reason, "message", wait.Message, "requeue_after", wait.After)
		c.queue.Forget(key)
		if wait.After > 0 {
			c.queue.AddAfter(key, wait.After)
		}
	case errors.As(err, &p):
		log.Error("Reconciler panicked; retrying with backoff.", errAttrs(err)...)
		c.queue.AddRateLimited(key)
	case IsTerminal(err):
		log.Error("Reconcile failed with a terminal error; not retrying.", "err", err)
		c.queue.Forget(key)
	case err != nil:
		log.Error("Reconcile failed; retrying with backoff.", "err", err,
			"retries", c.queue.NumRequeues(key))
		c.queue.AddRateLimited(key)
	case res.RequeueAfter > 0:
		log.Debug("Reconciled key; requeueing as asked.", "requeue_after", res.RequeueAfter)
		c.queue.Forget(key)
		c.queue.AddAfter(key, res.RequeueAfter)
	default:
		log.Debug("Reconciled key.")
		c.queue.Forget(key)
	}
}

func (c *Controller) reconcile(ctx context.Context, key string) (res Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = safely(func() error {
		var rerr error
		res, rerr = c.r.Reconcile(ctx, key)
		return rerr
	})
	return res, err
}

// runSource keeps src running until ctx is done, restarting it with backoff
// so that a flapping API server is not hammered.
func (c *Controller) runSource(ctx context.Context, i int, src Source) {
	b := c.backOffs()
	for {
		start := time.Now()
		err := safely(func() error { return src(ctx, c.Enqueue) })
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= stableRun {
			b.Reset()
		}
		delay := b.NextBackOff()
		if err == nil {
			c.log.Warn("Source ended before shutdown; restarting it.", "source", i, "delay", delay)
		} else {
			c.log.Error("Source failed; restarting it.", append(errAttrs(err), "source", i, "delay", delay)...)
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// runResync enqueues every listed key at start and then every resync
// interval. A failed listing is retried with backoff rather than waiting a
// whole interval, since until it succeeds missed events stay uncorrected.
func (c *Controller) runResync(ctx context.Context) {
	b := c.backOffs()
	for {
		delay := c.resync
		if err := c.enqueueListed(ctx); err != nil {
			delay = b.NextBackOff()
			c.log.Error("Listing keys for resync failed; retrying.", append(errAttrs(err), "delay", delay)...)
		} else {
			b.Reset()
			if delay <= 0 {
				return
			}
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

func (c *Controller) enqueueListed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var keys []string
	err := safely(func() (err error) {
		keys, err = c.lister(ctx)
		return err
	})
	if err != nil {
		return err
	}
	for _, key := range keys {
		c.queue.Add(key)
	}
	c.log.Debug("Enqueued listed keys.", "keys", len(keys))
	return nil
}

// sleep waits for d and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
