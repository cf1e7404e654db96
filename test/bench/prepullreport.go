package main

import (
	"fmt"
	"strings"
	"time"
)

// print writes measurement 8's table: the time until present on all 3
// engines, each engine's pull, and the single-engine limit.
func (r prepullResult) print() {
	if r.skipped != "" {
		fmt.Println()
		fmt.Println("prepull section skipped: " + r.skipped)
		return
	}
	t := newTable(fmt.Sprintf("8. pre-pull of a %d MiB image onto %d engines, wall clock incl. process start, ms: median [min..max] (%d repetitions, same run, uc and peer alternating)",
		prepullBlobSize>>20, prepullNodes, r.reps),
		"measurement", "uc", "peer", "uc/peer (medians)", "notes")
	t.row(fmt.Sprintf("until present on all %d engines", prepullNodes), medianCell(r.ucTotal), medianCell(r.peerTotal),
		buildRatio(r.ucTotal, r.peerTotal), "uc: nodes pull in parallel; peer: one engine after the other")
	t.row("    uc apply (command)", medianCell(r.ucApply), "", "", "")
	t.row("    then uc wait images (command)", medianCell(r.ucWait), "", "", "")
	t.row("    apply start → first pull started", medianCell(r.ucToPull), "", "", "uc: the tag resolved by one node, read by all (detail.started_at)")
	t.row("    last pull done → uc wait returned", medianCell(r.ucTail), "", "", "uc: started_at + duration of the last node's pull")
	for i := range prepullNodes {
		n := ""
		if i == 0 {
			n = "uc: node's presence row, detail.duration (pulls overlap); peer: docker pull, alone"
		}
		t.row(fmt.Sprintf("engine%d: its pull", i+1), medianCell(r.ucNode[i]), medianCell(r.peerPull[i]),
			buildRatio(r.ucNode[i], r.peerPull[i]), n)
	}
	limit := r.limit()
	t.row("limit: one engine's pull, alone", "-", medianCell(limit), "",
		fmt.Sprintf("median of the peer's %d docker pulls, all engines", len(limit)))
	t.row(fmt.Sprintf("until present on all %d ÷ limit", prepullNodes), buildRatio(r.ucTotal, limit), buildRatio(r.peerTotal, limit), "",
		fmt.Sprintf("1 = all %d as fast as one engine alone; %d = one after the other", prepullNodes, prepullNodes))
	t.flush()
	note("where: 3 `ucd run` nodes, node1..node3 on the hack Docker Engines engine1..engine3 (Engine 20.10, one per node); node1 serves")
	note("  the embedded state and the internal registry (--registry-listen %s) in process; node2 and node3 use node1's state.", r.registry)
	note("image: one layer, a tar of /blob holding %d MiB of random bytes, gzip without compression (%s, incompressible), a config and", prepullBlobSize>>20, humanBytes(r.layerSize))
	note("  a Docker schema 2 manifest, pushed by the bench over plain HTTP to the internal registry under a fresh repository per side and")
	note("  repetition (ucpp<nonce>/big:v1, peerpp<nonce>/big:v1); fresh content per repetition, the same bytes for both sides of one.")
	note("cold: before each side the image id is absent from all 3 engines (checked); after it, `docker rmi -f ID` on all 3 (checked gone),")
	note("  for uc after `uc delete -f compose.yaml`, so no node pulls it again.")
	note("uc: `uc apply -f compose.yaml` (one service, `image: REF:v1`, default placement: every node), then `uc wait images NAME`; one node")
	note("  resolves the tag to a digest, then every node pulls REF@DIGEST through its engine, the three at once.")
	note("peer: `docker -H engineN pull REF:v1` for N = 1, 2, 3, one after the other (private DOCKER_CONFIG).")
	note("this machine: the 3 engines, the registry, the nodes and the bench share %d CPUs and one disk, so uc's parallel pulls compete", r.cpus)
	note("  for them (and for the registry); the peer's pulls, one at a time, do not.")
	if r.ucNoDuration > 0 {
		note("uc: %d present rows had no detail.duration; their engine's uc column leaves them out.", r.ucNoDuration)
	}
	note("uc/peer < 1 means uc is faster. An untimed warm-up round of each side runs first; the order alternates per repetition.")
}

func (r prepullResult) summaryRows(t table) {
	if r.skipped != "" {
		t.row("pre-pull onto 3 engines", "skipped: "+r.skipped)
		return
	}
	uc, peer, limit := summarize(r.ucTotal).p50, summarize(r.peerTotal).p50, summarize(r.limit()).p50
	t.row(fmt.Sprintf("pre-pull %d MiB onto %d engines → present, uc / peer (median ms)", prepullBlobSize>>20, prepullNodes),
		fmt.Sprintf("%s / %s = %s", ms(uc), ms(peer), buildRatio(r.ucTotal, r.peerTotal)))
	t.row("  single-engine pull, the limit (median ms); uc / limit",
		fmt.Sprintf("%s; %s", ms(limit), buildRatio(r.ucTotal, r.limit())))
}

// print writes measurement 9's table: per node, CPU, memory and the
// requests reaching the state and the engine in the window.
func (r prepullIdleResult) print() {
	if r.skipped != "" {
		fmt.Println()
		fmt.Println("prepullidle section skipped: " + r.skipped)
		return
	}
	secs := r.window.Seconds()
	t := newTable(fmt.Sprintf("9. idle cluster: %d image specs × %d nodes, all present; %.1f s window after %s settling; /proc/PID/stat at %d Hz",
		r.specs, prepullNodes, secs, r.settle, r.hz),
		"node", "ucd CPU (% of 1 core)", "on-CPU (ms, schedstat)", "RSS (MiB)", "state req/s",
		"state calls: subs opened / queries / tx", "state resp (KiB/s)", "engine API req/s",
		"engine calls: inspect / pull / distribution / containers / other", "peer")
	var cpu, sched float64
	var rss, stateReqs, stateBytes, engineReqs int64
	for _, row := range r.rows {
		cpu, sched, rss = cpu+row.pct, sched+row.schedMs, rss+row.rssKB
		stReq, stSplit, stBytes := "not proxied", "-", "-"
		if row.state != nil {
			stReq = perSec(row.state.total(), secs)
			stSplit = classCells(*row.state, clsSubscribe, clsQuery, clsTx)
			if o := row.state.byClass[clsOther]; o > 0 {
				stSplit += fmt.Sprintf(" (+%d other)", o)
			}
			stBytes = fmt.Sprintf("%.2f", float64(row.state.bytes)/1024/secs)
			stateReqs, stateBytes = stateReqs+row.state.total(), stateBytes+row.state.bytes
		} else if est, ok := r.node1Estimate(); ok {
			stReq = fmt.Sprintf("~%.1f (est.)", est)
		}
		engineReqs += row.engine.total()
		t.row(row.node, fmt.Sprintf("%.3f", row.pct), fmt.Sprintf("%.1f", row.schedMs), mib(row.rssKB), stReq, stSplit, stBytes,
			perSec(row.engine.total(), secs), classCells(row.engine, clsInspect, clsPull, clsDist, clsContainer, clsOther), "-")
	}
	t.row("all 3", fmt.Sprintf("%.3f", cpu), fmt.Sprintf("%.1f", sched), mib(rss), perSec(stateReqs, secs)+" (node2+3)", "",
		fmt.Sprintf("%.2f", float64(stateBytes)/1024/secs), perSec(engineReqs, secs), "", "-")
	t.flush()
	note("setup (untimed for this table): one compose file, services s0000..s%04d, each `image: <UC_BASE_IMAGE>` (busybox from hack/up.sh's", r.specs-1)
	note("  base registry, already on every engine), default placement (every node); uc apply %s ms, then `uc wait images` (all) %s ms;",
		ms1(r.apply), ms1(r.wait))
	note("  ucd logged %d / %d / %d pulls and %d / %d / %d digests found already on the engine, not pulled (node1 / node2 / node3);",
		r.pulls[0], r.pulls[1], r.pulls[2], r.found[0], r.found[1], r.found[2])
	note("  `uc get images -o json` then showed all %d present on all 3 nodes.", r.specs)
	note("where: node1 serves the embedded state and the internal registry (--registry-listen) in process; node2 and node3 reach its state")
	note("  through a counting reverse proxy in the bench (h2c both sides, responses streamed); every node's --docker-host is a counting")
	note("  proxy in front of its own engine's socket. Heartbeat 5 s (ucd's default). The bench sends no request during the window.")
	switch {
	case r.tcpNote != "":
		note("node1's own requests: not counted (its controllers use its own listener, which no proxy sees; %s).", r.tcpNote)
	default:
		est, ok := r.node1Estimate()
		estText := "no estimate (the proxies sent no segments)"
		if ok {
			estText = fmt.Sprintf("~%.1f requests/s (an estimate)", est)
		}
		note("node1's own requests go to its own listener, which no proxy sees; its client sockets to the state sent %d TCP data", r.node1Segs)
		note("  segments in the window (ss -ti), the proxies' upstream sockets %d for %d requests, so node1 made %s.", r.proxySegs, stateReqs, estText)
	}
	var open []string
	for _, row := range r.rows {
		if row.state != nil {
			open = append(open, fmt.Sprintf("%s %d", row.node, row.state.open))
		}
	}
	note("subscription streams open through the proxies at the end of the window: %s.", strings.Join(open, ", "))
	if r.proxyErrors > 0 {
		note("the proxies failed %d requests in the window (502).", r.proxyErrors)
	}
	note("calls: counts in the window, by request path; state resp: response bytes the proxy passed to the node.")
	note("CPU: utime+stime at one-tick resolution (%.0f ms); on-CPU: every thread's schedstat, in ns. RSS at the end of the window.", 1000/float64(r.hz))
	note("peer: none; no tool keeps images pre-pulled on a set of engines, so there is nothing to set beside these numbers (\"-\").")
}

// node1Estimate scales node1's TCP data segments to the state by the
// proxies' segments per request.
func (r prepullIdleResult) node1Estimate() (float64, bool) {
	var reqs int64
	for _, row := range r.rows {
		if row.state != nil {
			reqs += row.state.total()
		}
	}
	if r.tcpNote != "" || r.proxySegs <= 0 || reqs <= 0 || r.window <= 0 {
		return 0, false
	}
	perReq := float64(r.proxySegs) / float64(reqs)
	return float64(r.node1Segs) / perReq / r.window.Seconds(), true
}

func perSec(n int64, secs float64) string {
	if secs <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(n)/secs)
}

func classCells(c reqCounts, classes ...string) string {
	cells := make([]string, len(classes))
	for i, cls := range classes {
		cells[i] = fmt.Sprint(c.byClass[cls])
	}
	return strings.Join(cells, " / ")
}

func (r prepullIdleResult) summaryRows(t table) {
	label := fmt.Sprintf("idle cluster, %d specs × %d nodes", prepullIdleSpecs, prepullNodes)
	if r.skipped != "" {
		t.row(label, "skipped: "+r.skipped)
		return
	}
	secs := r.window.Seconds()
	var cpu, state, engine []string
	for _, row := range r.rows {
		cpu = append(cpu, fmt.Sprintf("%.3f", row.pct))
		if row.state != nil {
			state = append(state, perSec(row.state.total(), secs))
		}
		engine = append(engine, perSec(row.engine.total(), secs))
	}
	t.row(label+": ucd CPU node1 / node2 / node3 (% of one core)", strings.Join(cpu, " / "))
	n1 := "not counted"
	if est, ok := r.node1Estimate(); ok {
		n1 = fmt.Sprintf("~%.1f est.", est)
	}
	t.row(label+": state requests/s node2 / node3 (node1)", fmt.Sprintf("%s (%s)", strings.Join(state, " / "), n1))
	t.row(label+": engine API requests/s node1 / node2 / node3", strings.Join(engine, " / "))
}

// printIdleBeside compares measurement 9 as of an earlier commit with
// this checkout: state requests per second by node, and ucd's CPU.
func printIdleBeside(ref string, was, now prepullIdleResult) {
	if was.skipped != "" || now.skipped != "" {
		return
	}
	t := newTable(fmt.Sprintf("9b. idle cluster, before (uc as of %s) and after (this checkout): %d image specs × %d nodes",
		ref, now.specs, prepullNodes), "node", "state req/s before", "state req/s after", "after / before",
		"state calls before: subs / queries / tx", "after", "ucd CPU % before", "after")
	for i, row := range now.rows {
		old := was.rows[i]
		if row.state == nil || old.state == nil {
			t.row(row.node, "not proxied", "not proxied", "-", "-", "-", fmt.Sprintf("%.3f", old.pct), fmt.Sprintf("%.3f", row.pct))
			continue
		}
		b, a := rate(*old.state, was.window), rate(*row.state, now.window)
		t.row(row.node, fmt.Sprintf("%.2f", b), fmt.Sprintf("%.2f", a), rateRatio(a, b),
			classCells(*old.state, clsSubscribe, clsQuery, clsTx), classCells(*row.state, clsSubscribe, clsQuery, clsTx),
			fmt.Sprintf("%.3f", old.pct), fmt.Sprintf("%.3f", row.pct))
	}
	t.flush()
	note("node2 and node3 reach the state through counting proxies; node1 serves it. A heartbeat is one transaction per node every %s.", "5 s")
}

func rate(r reqCounts, window time.Duration) float64 { return float64(r.total()) / window.Seconds() }

func rateRatio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
