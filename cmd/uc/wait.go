package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

func newWaitCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var skipUnready bool
	cmd := &cobra.Command{
		Use:   "wait images [NAME...] [--timeout D] [--skip-unready]",
		Short: "Wait until every needed node has the images, printing progress",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.imagesStore(args)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			w := waiter{store: store, out: cmd.OutOrStdout(), names: args[1:], seen: map[string]string{}, skipUnready: skipUnready}
			return explain(w.run(ctx))
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	cmd.Flags().BoolVar(&skipUnready, "skip-unready", false,
		"do not wait for NotReady nodes that a spec names (x-machines, node.hostname ==); others are never waited for")
	return cmd
}

// waiter re-reads state whenever presence or build status changes and
// prints what moved. It never polls: both tables are subscribed to.
type waiter struct {
	store *state.Store
	read  *state.Reader // the cache, while run runs
	out   io.Writer
	names []string
	// builds, when set, makes the waiter wait for these builds instead of
	// images (uc apply --wait).
	builds []string
	seen   map[string]string // progress line per subject, to print changes only
	// missing names, as of the last check, that are not in state yet: a
	// spec applied through another agent may not have reached this one.
	missing []string
	// lagging names, as of the last check, each needed node that does not
	// hold its image yet and why, for the timeout's message.
	lagging []string
	// skipUnready leaves out unready nodes a spec names (see api.NeedOptions).
	skipUnready bool
}

// run checks after every change the cache sees, heartbeats included: a
// node that falls silent is no longer waited for.
func (w *waiter) run(ctx context.Context) error {
	// A first check reads the state API itself: it fails at once, naming
	// the API, when that is unreachable, and needs no cache when done.
	if done, err := w.check(ctx); done || err != nil {
		return w.unlessTimedOut(ctx, err)
	}
	changed := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cache := state.NewCache(w.store, slog.New(slog.DiscardHandler))
	cache.Start(ctx)
	if err := cache.WaitForSync(ctx); err != nil {
		return w.timedOut(ctx)
	}
	w.read = &cache.Reader
	defer cache.OnChange(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})()
	for {
		done, err := w.check(ctx)
		if done || err != nil {
			return w.unlessTimedOut(ctx, err)
		}
		select {
		case <-ctx.Done():
			return w.timedOut(ctx)
		case <-changed:
		}
	}
}

// unlessTimedOut reports a read cut short by the deadline as the timeout
// it is, naming what is still missing, not as a failed read.
func (w *waiter) unlessTimedOut(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return w.timedOut(ctx)
	}
	return err
}

// reader is the cache once run has started it, else the state API.
func (w *waiter) reader() *state.Reader {
	if w.read == nil {
		return &w.store.Reader
	}
	return w.read
}

// check prints progress and reports whether every image is present on
// every node that needs it, or an error when one cannot get there.
func (w *waiter) check(ctx context.Context) (bool, error) {
	if w.builds != nil {
		return w.checkBuilds(ctx)
	}
	imgs, nodes, err := w.load(ctx)
	if err != nil {
		return false, err
	}
	allDone := len(w.missing) == 0
	var failures []string
	w.lagging = nil
	for _, n := range w.missing {
		w.lagging = append(w.lagging, fmt.Sprintf("image %q not found (see `uc get images`)", n))
	}
	for _, img := range imgs {
		done, failed := w.progress(ctx, img, nodes)
		allDone = allDone && done
		failures = append(failures, failed...)
	}
	if len(failures) > 0 {
		return true, errors.New(strings.Join(failures, "; "))
	}
	return allDone, nil
}

func (w *waiter) load(ctx context.Context) ([]state.ImageRecord, []api.Node, error) {
	imgs, err := w.reader().ListImages(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	w.missing = nil
	for _, n := range w.names {
		if !slices.ContainsFunc(imgs, func(r state.ImageRecord) bool { return r.Spec.Name == n }) {
			w.missing = append(w.missing, n)
			w.say(n+"/spec", fmt.Sprintf("waiting for image %s to appear in state", n))
		}
	}
	if len(w.names) > 0 {
		imgs = slices.DeleteFunc(imgs, func(r state.ImageRecord) bool { return !slices.Contains(w.names, r.Spec.Name) })
	}
	nodes, err := w.reader().ListNodes(ctx)
	return imgs, nodes, err
}

// progress prints one image's build and per-node lines that changed.
func (w *waiter) progress(ctx context.Context, img state.ImageRecord, nodes []api.Node) (done bool, failed []string) {
	name := img.Spec.Name
	if img.Spec.Build != "" {
		if msg, bad := w.buildProgress(ctx, img.Spec.Build); msg != "" {
			w.say(name+"/build", fmt.Sprintf("%s  build: %s", name, msg))
			if bad {
				failed = append(failed, name+": build failed: "+msg)
			}
		}
	}
	need := needOf(img.Spec, nodes, time.Now(), w.skipUnready)
	needed := api.Waited(need)
	for _, n := range need {
		if n.Note != "" { // a node left out never passes silently; printed again when its state changes
			w.sayOn(name+"/"+n.Node+"/need", n.State+fmt.Sprint(n.Wait), fmt.Sprintf("%s  %s", name, n.Note))
		}
	}
	for _, n := range needed {
		p, ok := findPresence(img, n)
		if !ok {
			continue
		}
		w.say(name+"/"+n, fmt.Sprintf("%s  %s: %s%s", name, n, p.State, suffix(p)))
		// A node can fail before anything is ready to pull (resolving a
		// tag with a refused credential); an older generation's failure
		// does not count.
		if p.State == api.PresenceFailed && p.ObservedGeneration == img.Meta.Generation {
			failed = append(failed, fmt.Sprintf("%s on %s: %s", name, n, p.Error))
		}
	}
	want, ready, err := w.reader().WantedDigest(ctx, img)
	if err != nil || !ready {
		w.lagging = append(w.lagging, name+": "+cmp.Or(errString(err), "digest not known yet"))
		w.noteLagging(img, need, "")
		return false, failed
	}
	present, _ := presentOn(img, needed, want)
	w.noteLagging(img, need, want)
	done = len(needed) > 0 && present == len(needed)
	if done {
		w.say(name, fmt.Sprintf("%s  present on %d/%d nodes (%s)", name, present, len(needed), strings.Join(needed, ", ")))
	}
	return done, failed
}

func (w *waiter) buildProgress(ctx context.Context, build string) (msg string, failed bool) {
	b, err := w.reader().GetBuild(ctx, build)
	if err != nil {
		return "", false
	}
	st, ok := b.Current()
	switch {
	case !ok:
		return "pending: no node has reported on it yet" + w.noLiveNode(ctx), false
	case st.Phase == api.BuildBuilding:
		return fmt.Sprintf("building on %s, %d/%d steps", st.Node, st.Detail.StepsDone, st.Detail.StepsTotal), false
	case st.Phase == api.BuildFailed:
		return st.Message, st.ObservedGeneration == b.Meta.Generation
	}
	return fmt.Sprintf("%s on %s (%s)", st.Phase, st.Node, shortDigest(st.Digest)), false
}

func suffix(p api.ImagePresence) string {
	d := p.Detail
	switch {
	case p.Error != "":
		return " (" + p.Error + ")"
	case p.State == api.PresencePulling && (d.LayersTotal > 0 || d.Bytes > 0):
		// The node writes progress at most once a second, so this prints
		// a line per second per pulling node at most.
		return " " + strings.Join(slices.DeleteFunc([]string{layerProgress(d), byteProgress(d)}, func(s string) bool { return s == "" }), ", ")
	case p.Digest != "" && d.Duration > 0:
		return fmt.Sprintf(" %s in %s", shortDigest(p.Digest), d.Duration.Round(time.Millisecond))
	case p.Digest != "": // found on the engine, not pulled
		return " " + shortDigest(p.Digest)
	}
	return ""
}

// noLiveNode says why no node reports when none is live, e.g. " (no live
// node: node1 is NotReady since 17:02:11 (last heartbeat 40s ago))".
func (w *waiter) noLiveNode(ctx context.Context) string {
	nodes, err := w.reader().ListNodes(ctx)
	if err != nil {
		return ""
	}
	return noLiveNode(nodes, time.Now())
}

func noLiveNode(nodes []api.Node, now time.Time) string {
	var why []string
	for _, n := range nodes {
		if n.Live(now, api.LiveTimeout) {
			return ""
		}
		why = append(why, n.Unready(now, api.LiveTimeout))
	}
	return " (no live node: " + cmp.Or(strings.Join(why, "; "), "none has joined; start `ucd run`") + ")"
}

// layerProgress is "1/3 layers", "" when the engine reported no layers.
func layerProgress(d api.PresenceDetail) string {
	if d.LayersTotal == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d layers", d.LayersDone, d.LayersTotal)
}

// byteProgress says what is known of a pull's bytes: "12MiB/40MiB",
// "12MiB downloaded" while the total is unknown, "" when the engine
// reported no sizes (it may report none for small or cached layers).
func byteProgress(d api.PresenceDetail) string {
	switch {
	case d.BytesTotal > 0:
		return units.BytesSize(float64(d.Bytes)) + "/" + units.BytesSize(float64(d.BytesTotal))
	case d.Bytes > 0:
		return units.BytesSize(float64(d.Bytes)) + " downloaded"
	}
	return ""
}

// say prints line when the subject's line changed.
func (w *waiter) say(subject, line string) { w.sayOn(subject, line, line) }

// sayOn prints line when the subject's key changed: a line that counts
// seconds is not printed again every second.
func (w *waiter) sayOn(subject, key, line string) {
	if w.seen[subject] == key {
		return
	}
	w.seen[subject] = key
	fmt.Fprintln(w.out, line)
}

// noteLagging records each waited-for node that lacks the wanted digest
// (any node whose row is not present, while want is not known), and why
// an unready one may not come.
func (w *waiter) noteLagging(img state.ImageRecord, need []api.NodeNeed, want string) {
	if len(api.Waited(need)) == 0 {
		w.lagging = append(w.lagging, img.Spec.Name+": no node to wait for: "+cmp.Or(notes(need), "no node matches its placement"))
	}
	for _, n := range need {
		p, ok := findPresence(img, n.Node)
		switch {
		case !n.Wait:
		case !ok:
			w.lagging = append(w.lagging, fmt.Sprintf("%s on %s: no status yet%s", img.Spec.Name, n.Node, noteSuffix(n)))
		case p.State != api.PresencePresent || want != "" && p.Digest != want:
			w.lagging = append(w.lagging, fmt.Sprintf("%s on %s: %s%s%s", img.Spec.Name, n.Node, p.State, suffix(p), noteSuffix(n)))
		}
	}
}

// notes joins the notes on the nodes an image is placed on.
func notes(need []api.NodeNeed) string {
	var out []string
	for _, n := range need {
		if n.Note != "" {
			out = append(out, n.Note)
		}
	}
	return strings.Join(out, "; ")
}

func noteSuffix(n api.NodeNeed) string {
	if n.Note == "" {
		return ""
	}
	return " (" + n.Note + ")"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *waiter) timedOut(ctx context.Context) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	kind := "images"
	if w.builds != nil {
		kind = "builds"
	}
	if len(w.lagging) == 0 {
		return fmt.Errorf("timed out waiting for %s; see `uc get %s` and `uc describe %s NAME`", kind, kind, strings.TrimSuffix(kind, "s"))
	}
	return fmt.Errorf("timed out waiting for %s: %s", kind, strings.Join(w.lagging, "; "))
}

// checkBuilds prints one progress line per build and reports whether all
// of them built their current generation, or an error naming the failures.
func (w *waiter) checkBuilds(ctx context.Context) (bool, error) {
	allDone := true
	var failures []string
	w.lagging = nil
	for _, name := range w.builds {
		msg, failed := w.buildProgress(ctx, name)
		w.say(name, fmt.Sprintf("%s  %s", name, msg))
		if failed {
			failures = append(failures, name+": "+msg)
		}
		_, ready, err := w.reader().BuildResult(ctx, name)
		if err != nil {
			return false, err
		}
		if !ready {
			w.lagging = append(w.lagging, name+": "+msg)
		}
		allDone = allDone && ready
	}
	if len(failures) > 0 {
		return true, errors.New("build failed: " + strings.Join(failures, "; "))
	}
	return allDone, nil
}
