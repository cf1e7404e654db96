package prepull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/ucplane/uc/api"
	"github.com/ucplane/uc/state"
)

// Pruning (opt-in per node): images uc pulled onto this node that no spec
// places here any more are removed after a grace period, never while a
// container uses them. Only what uc pulled is touched: the node keeps a
// record of its pulls.

// PullLog is this node's record of the references uc pulled, with when
// each stopped being needed. It lives in the node's data dir.
type PullLog struct {
	path string
	mu   sync.Mutex
	refs map[string]time.Time // ref → unneeded since (zero: needed)
}

// OpenPullLog reads the record, or starts an empty one.
func OpenPullLog(path string) (*PullLog, error) {
	l := &PullLog{path: path, refs: map[string]time.Time{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &l.refs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Pulled records a successful pull of ref.
func (l *PullLog) Pulled(ref string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refs[ref] = time.Time{}
	return l.save()
}

func (l *PullLog) save() error {
	b, err := json.Marshal(l.refs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, l.path)
}

// Pruner removes this node's unneeded pulls.
type Pruner struct {
	store  *state.Store
	engine *client.Client
	log    *PullLog
	node   string
	after  time.Duration
	logger *slog.Logger
}

// NewPruner prunes pulls unneeded for longer than after.
func NewPruner(store *state.Store, engine *client.Client, pulls *PullLog, node string, after time.Duration, log *slog.Logger) *Pruner {
	return &Pruner{store: store, engine: engine, log: pulls, node: node, after: after, logger: log.With("controller", "prune")}
}

// Run prunes every after/4 (at most once a minute) until ctx is done.
func (p *Pruner) Run(ctx context.Context) error {
	t := time.NewTicker(min(max(p.after/4, time.Second), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.Prune(ctx); err != nil && ctx.Err() == nil {
				p.logger.Warn("Prune failed; trying again later.", "err", err)
			}
		}
	}
}

// Prune marks pulls no spec needs here and removes those unneeded for
// longer than the grace period, unless a container uses them.
func (p *Pruner) Prune(ctx context.Context) error {
	needed, err := p.neededRefs(ctx)
	if err != nil {
		return err // an incomplete view of state must not remove anything
	}
	due := p.markUnneeded(needed)
	if len(due) == 0 {
		p.log.mu.Lock()
		defer p.log.mu.Unlock()
		return p.log.save() // the grace periods started survive a restart
	}
	inUse, err := p.imagesInUse(ctx)
	if err != nil {
		return err
	}
	rep := api.PruneReport{At: time.Now()}
	for _, ref := range due {
		p.removeOne(ctx, ref, inUse, &rep)
	}
	p.log.mu.Lock()
	err = p.log.save()
	p.log.mu.Unlock()
	if len(rep.Removed)+len(rep.InUse)+len(rep.Errors) > 0 {
		p.logger.Info("Pruned images nothing places on this node any more.", "removed", rep.Removed, "in_use", rep.InUse, "errors", rep.Errors)
		err = errors.Join(err, p.store.PutNodeDetail(ctx, p.node, api.NodeDetail{LastPrune: &rep}))
	}
	return err
}

// neededRefs are the references this node's presence rows hold now.
func (p *Pruner) neededRefs(ctx context.Context) (map[string]bool, error) {
	imgs, err := p.store.ListImages(ctx, "")
	if err != nil {
		return nil, err
	}
	needed := map[string]bool{}
	for _, img := range imgs {
		for _, row := range img.Presence {
			if row.Node == p.node && row.Detail.Ref != "" {
				needed[row.Detail.Ref] = true
			}
		}
	}
	return needed, nil
}

// markUnneeded starts the grace period of pulls nothing needs, clears it
// for those needed again, and returns those whose grace has passed.
func (p *Pruner) markUnneeded(needed map[string]bool) []string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	now := time.Now()
	var due []string
	for ref, since := range p.log.refs {
		switch {
		case needed[ref]:
			p.log.refs[ref] = time.Time{}
		case since.IsZero():
			p.log.refs[ref] = now
		case now.Sub(since) >= p.after:
			due = append(due, ref)
		}
	}
	slices.Sort(due)
	return due
}

// imagesInUse are the image IDs of every container, running or not.
func (p *Pruner) imagesInUse(ctx context.Context) (map[string]bool, error) {
	cs, err := p.engine.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, c := range cs {
		ids[c.ImageID] = true
	}
	return ids, nil
}

func (p *Pruner) removeOne(ctx context.Context, ref string, inUse map[string]bool, rep *api.PruneReport) {
	info, err := p.engine.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		p.forget(ref) // removed by someone else already
		return
	}
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", ref, err))
		return
	}
	if inUse[info.ID] {
		rep.InUse = append(rep.InUse, ref)
		return
	}
	if _, err := p.engine.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", ref, err))
		return
	}
	p.forget(ref)
	rep.Removed = append(rep.Removed, ref)
}

func (p *Pruner) forget(ref string) {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	delete(p.log.refs, ref)
}
