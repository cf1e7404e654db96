package main

import (
	"fmt"
	"runtime"
	"time"
)

// print writes measurement 6's table: both collectors side by side, then
// what each row means and anything that went wrong.
func (r gcResult) print() {
	t := newTable(fmt.Sprintf("6. Registry GC of %d unreferenced + %d referenced images while a client pushes in a loop (one run, same machine; uc online, peer offline)",
		r.unref, r.ref),
		"", "uc", "peer", "uc/peer", "notes")
	during, before, after := summarize(r.pushes.during), summarize(r.pushes.before), summarize(r.pushes.after)
	t.row("sweep time (ms)", ms1(r.uc.sweep), ms1(r.peer.sweep), gcRatio(r.uc.sweep, r.peer.sweep),
		fmt.Sprintf("uc: Collect wall clock (its GCReport.Duration: %s ms); peer: MarkAndSweep wall clock", ms1(r.ucReport.Duration)))
	t.row("longest push stall (ms)", ms1(during.max), ms1(r.peer.sweep), gcRatio(during.max, r.peer.sweep),
		"uc: slowest push overlapping the sweep; peer: registry stopped for the whole sweep")
	t.row("push latency during GC, median (ms)", ms1(during.p50), "-", "",
		fmt.Sprintf("uc before GC: median %s, max %s (n=%d); after GC: median %s, max %s (n=%d)",
			ms1(before.p50), ms1(before.max), before.n, ms1(after.p50), ms1(after.max), after.n))
	t.row("failed pushes", fmt.Sprintf("%d of %d", r.pushes.failed, r.pushes.total), "- (none possible)", "",
		"failed: any request failed, or manifest, tag or blobs missing right after the push")
	t.row("pushes served during GC", fmt.Sprintf("%d of %d overlapping", r.pushes.served, r.pushes.overlapped), "0", "",
		"pushes whose [start, end] overlaps the sweep and that succeeded")
	t.row("manifests removed", fmt.Sprint(r.uc.removed.manifests), fmt.Sprint(r.peer.removed.manifests), "",
		fmt.Sprintf("revision links deleted, of %d unreferenced; uc's GCReport says %d", r.unref, len(r.ucReport.ManifestsRemoved)))
	t.row("revisions left without their manifest blob", fmt.Sprint(r.uc.dangling), fmt.Sprint(r.peer.dangling), "",
		"revision links whose manifest blob the sweep deleted (the API answers 404 for them)")
	t.row("blobs removed", fmt.Sprint(r.uc.removed.blobs), fmt.Sprint(r.peer.removed.blobs), "",
		fmt.Sprintf("%d expected (manifest, config, layer each); uc's GCReport says %d", 3*r.unref, r.ucReport.BlobsRemoved))
	t.row("bytes freed", gcBytes(r.uc.removed.bytes), gcBytes(r.peer.removed.bytes), "",
		fmt.Sprintf("%s expected (the unreferenced images' blobs); uc's GCReport says %s", gcBytes(r.expectBytes), gcBytes(r.ucReport.BytesFreed)))
	t.row("referenced images intact", fmt.Sprintf("%d/%d", r.uc.refIntact, r.ref), fmt.Sprintf("%d/%d", r.peer.refIntact, r.ref), "",
		"manifest by digest and by tag (same digest), config and layer: HEAD 200")
	t.row("unreferenced images gone", fmt.Sprintf("%d/%d", r.uc.unrefGone, r.unref), fmt.Sprintf("%d/%d", r.peer.unrefGone, r.unref), "",
		"manifest, config and layer: HEAD 404")
	t.flush()
	r.notes()
}

func (r gcResult) notes() {
	note("uc: registry.Server.Collect(KeepSet{Digests: the %d referenced manifests, Grace: %s}) on the serving in-process registry;", r.ref, r.grace)
	note("  one client pushed new images in a loop, alone for %s before the sweep, during it, and for %s after it.", r.around, r.around)
	note("peer: distribution v3.1.2 storage.MarkAndSweep(GCOpts{RemoveUntagged: true, Quiet: true}) on a `cp -a` copy of the same storage")
	note("  taken before any GC, with no registry serving it: upstream requires the registry stopped or read-only during GC (it races")
	note("  with pushes: distribution #3045, #1609), so its stall is the whole sweep, a lower bound (stopping and restarting not counted).")
	note("sweep times are not the same load: uc sweeps while the client pushes and the registry serves it (%d CPUs shared);", runtime.NumCPU())
	note("  the peer runs alone, and deletes no revision links when it leaves them behind (below).")
	note("images: an OCI manifest, a unique config and one unique %d-byte random layer each; referenced ones tagged %s:tN, unreferenced", gcLayerSize, gcRefRepo)
	note("  ones pushed by digest only (no tag) into junk/r0..r%d; filled by %d concurrent pushers in %s.", gcUnrefRepos-1, gcFillers, r.fill.Round(time.Millisecond))
	note("push latency: config and layer (HEAD, POST, PUT each), then PUT manifest: 7 requests; the check after each push is not timed.")
	note("removed counts: storage census before vs after (manifest revision links, blob data files), the loop's own pushes left out;")
	note("  checks through the registry API (the peer's on a registry started on its swept copy). uc/peer < 1 means uc is faster.")
	if r.peer.dangling > 0 {
		note("peer left %d revision links: with RemoveUntagged, MarkAndSweep (garbagecollect.go) skips an untagged manifest when its", r.peer.dangling)
		note("  repository has no tags at all (Tags.All fails with ErrRepositoryUnknown: \"return nil\"), so the manifest is never swept,")
		note("  yet it was never marked either, so its blobs, its own manifest blob included, are deleted. junk/r* hold no tags here.")
	}
	gcList("failed push", r.pushes.errs)
	gcList("uc check: unexpected answer", r.uc.oddStatus)
	gcList("peer check: unexpected answer", r.peer.oddStatus)
}

// gcList prints up to five problems of one kind and how many there were.
func gcList(what string, items []string) {
	for i, s := range items {
		if i == 5 {
			note("… %d more", len(items)-5)
			return
		}
		note("%s: %s", what, s)
	}
}

func gcRatio(uc, peer time.Duration) string {
	if peer <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(uc)/float64(peer))
}

// gcBytes is exact bytes with a readable size beside them.
func gcBytes(n int64) string { return fmt.Sprintf("%s (%d)", humanBytes(n), n) }

func (r gcResult) summaryRows(t table) {
	t.row(fmt.Sprintf("registry GC, %d unreferenced + %d referenced: sweep uc / peer (ms)", r.unref, r.ref),
		fmt.Sprintf("%s / %s (uc online, peer offline)", ms1(r.uc.sweep), ms1(r.peer.sweep)))
	longest := time.Duration(0)
	for _, d := range r.pushes.during {
		longest = max(longest, d)
	}
	t.row("registry GC: longest push stall uc / peer (ms); failed pushes", fmt.Sprintf("%s / %s; %d of %d",
		ms1(longest), ms1(r.peer.sweep), r.pushes.failed, r.pushes.total))
}
