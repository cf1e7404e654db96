package main

import (
	"fmt"
	"time"
)

// print writes measurement 4's table and its per-step breakdown.
func (r buildResult) print() {
	if r.skipped != "" {
		fmt.Println()
		fmt.Println("build section skipped: " + r.skipped)
		return
	}
	t := newTable(fmt.Sprintf("4. build and pre-pull of the hello project onto 2 nodes, wall clock incl. process start (%d repetitions, same run, uc and peer alternating)", r.reps),
		"case", "uc median (ms)", "peer median (ms)", "uc/peer", "notes")
	for i := range numCases {
		uc, peer := r.uc[i], r.peer[i]
		t.row(caseNames[i]+": command returns", ms(summarize(uc.cmd).p50), ms(summarize(peer.cmd).p50),
			buildRatio(uc.cmd, peer.cmd), cmdNote(i))
		t.row(caseNames[i]+": time until present on 2 nodes", ms(summarize(uc.present).p50), ms(summarize(peer.present).p50),
			buildRatio(uc.present, peer.present), presentNote(i, r))
	}
	t.flush()
	note("uc: `uc apply -f compose.yaml` then `uc wait images NAME`; two `ucd run` nodes on the hack engines, node1 serving state and the registry; one buildkitd %s.", r.buildkit)
	note("peer: buildctl build --frontend dockerfile.v0 … --output type=image,push=true to the same registry, then docker pull REF@DIGEST on node1, then on node2.")
	note("(a) uses a fresh NONCE build arg (read by the first RUN) and a fresh repository per repetition, for uc and peer alike: nothing is cached after FROM.")
	note("FROM busybox is on both engines and in BuildKit's cache already (hack/up.sh), for both sides.")
	note("uc/peer < 1 means uc is faster. min–max of every number: the breakdown below (uc apply (command) and the totals).")
	note("an untimed warm-up round of each side runs first; the order alternates per repetition (uc first in odd ones).")

	b := newTable("4. per-step breakdown, median ms [min..max]", "step", caseNames[caseCold], caseNames[caseNoop], caseNames[caseEdit])
	for _, step := range []string{stApply, stQueue, stBuild, stPull1, stPull2, stDistribute, stWaitTail, stWait} {
		b.row(append([]string{"uc: " + step}, r.stepCells(r.uc, step)...)...)
	}
	b.row(append([]string{"uc: total until present on 2 nodes"}, r.totalCells(r.uc)...)...)
	for _, step := range []string{stPeerBuild, stPeerPull1, stPeerPull2, stPeerBoth} {
		b.row(append([]string{"peer: " + step}, r.stepCells(r.peer, step)...)...)
	}
	b.row(append([]string{"peer: total until present on 2 nodes"}, r.totalCells(r.peer)...)...)
	b.flush()
	note("build started/finished: build status detail (uc get builds -o json); present: the nodes' presence rows (ms resolution).")
	note("the two uc pulls run in parallel, one per node, inside \"build finished → present on both\"; the peer's run one after the other.")
	note("both engines run on this one host and share its CPU: a pull unpacks each layer in a re-exec of dockerd; the peer's pull on both at once is the same work as uc's.")
	note("apply returned → build started can be negative: ucd may start the build before the uc process has exited.")
}

func cmdNote(i int) string {
	switch i {
	case caseCold:
		return "uc apply is asynchronous; the peer returns when pulled"
	case caseNoop:
		return "uc: \"nothing changed\"; peer: re-runs its pipeline"
	default:
		return "uc: build configured"
	}
}

func presentNote(i int, r buildResult) string {
	switch i {
	case caseCold:
		return "1 build (ucd logs)"
	case caseNoop:
		return fmt.Sprintf("uc: 0 builds; peer: cached build, same digest %d/%d", r.peerNoopSame, r.reps)
	default:
		return "1 more build, new digest; first RUN cached"
	}
}

func buildRatio(uc, peer []time.Duration) string {
	u, p := summarize(uc).p50, summarize(peer).p50
	if len(uc) == 0 || len(peer) == 0 || p <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(u)/float64(p))
}

func (r buildResult) stepCells(side [numCases]caseTimes, step string) []string {
	out := make([]string, numCases)
	for i := range numCases {
		out[i] = medianCell(side[i].steps[step])
	}
	return out
}

func (r buildResult) totalCells(side [numCases]caseTimes) []string {
	out := make([]string, numCases)
	for i := range numCases {
		out[i] = medianCell(side[i].present)
	}
	return out
}

func medianCell(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	d := summarize(ds)
	if d.n == 1 {
		return ms1(d.p50)
	}
	return fmt.Sprintf("%s [%s..%s]", ms1(d.p50), ms1(d.min), ms1(d.max))
}

// ms1 is a duration in milliseconds with one decimal.
func ms1(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

func (r buildResult) summaryRows(t table) {
	if r.skipped != "" {
		t.row("hello build and pre-pull", "skipped: "+r.skipped)
		return
	}
	for _, i := range []int{caseCold, caseNoop, caseEdit} {
		uc, peer := summarize(r.uc[i].present).p50, summarize(r.peer[i].present).p50
		t.row("hello "+caseNames[i]+" → present on 2 nodes, uc / peer (median ms)",
			fmt.Sprintf("%s / %s = %s", ms(uc), ms(peer), buildRatio(r.uc[i].present, r.peer[i].present)))
	}
	for _, i := range []int{caseCold, caseEdit} {
		uc, peer := r.uc[i].steps[stBuild], r.peer[i].steps[stPeerBuild]
		t.row("hello "+caseNames[i]+": uc build / buildctl build+push (median ms)",
			fmt.Sprintf("%s / %s = %s", ms(summarize(uc).p50), ms(summarize(peer).p50), buildRatio(uc, peer)))
		dist := r.uc[i].steps[stDistribute]
		for _, p := range []struct{ name, step string }{{"one docker pull alone", stPeerPull1}, {"docker pull on both at once", stPeerBoth}} {
			peer := r.peer[i].steps[p.step]
			t.row("hello "+caseNames[i]+": uc build finished → present on both / "+p.name+" (median ms)",
				fmt.Sprintf("%s / %s = %s", ms(summarize(dist).p50), ms(summarize(peer).p50), buildRatio(dist, peer)))
		}
	}
}
