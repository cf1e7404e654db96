package main

import (
	"fmt"

	"github.com/docker/go-units"
)

// peerBytesLabel says what the peer's bytes are: the context's size, not
// a measured transfer.
const peerBytesLabel = "a cold buildctl sends the whole context; a warm one sends changed files through fsutil's diff, not measured here"

// print writes measurement 5's table: totals with uc/peer ratios, each
// side's steps under them, and the checks every repetition passed.
func (r build10Result) print() {
	if r.skipped != "" {
		fmt.Println()
		fmt.Println("build10 section skipped: " + r.skipped)
		return
	}
	t := newTable(fmt.Sprintf("5. build and pre-pull of a %d-service project onto 2 nodes, wall clock incl. process start, ms: median [min..max] (%d repetitions, same run, uc and peer alternating)", build10Services, r.reps),
		"case", "uc", "peer", "uc/peer (medians)", "checked on every repetition")
	for i := range numCases {
		uc, peer := r.uc[i], r.peer[i]
		t.row(caseNames[i]+": until present on 2 nodes", medianCell(uc.present), medianCell(peer.present),
			buildRatio(uc.present, peer.present), r.check10(i))
		for _, step := range []string{st10Apply, st10Wait} {
			t.row("    "+step, medianCell(uc.steps[step]), "", "", "")
		}
		for _, step := range []string{st10PeerBuild, st10PeerPull} {
			t.row("    "+step, "", medianCell(peer.steps[step]), "", "")
		}
	}
	t.flush()
	note("project: services s0..s%d, each its own context (Dockerfile: FROM busybox; ARG NONCE; RUN echo $NONCE > /n && seq 1 100000 | md5sum > /sum;", build10Services-1)
	note("  COPY src/ /src/; RUN ls -R /src | wc -l > /count; 4 small files under src/), x-machines [node1, node2].")
	note("uc: `uc apply --wait -f compose.yaml`, then `uc wait images s0..s%d` until all are present on both nodes; two `ucd run` nodes", build10Services-1)
	note("  on the hack engines (node1 serves state and the registry), default build slots, one buildkitd %s.", r.buildkit)
	note("peer: a script: for each service in turn `buildctl build --frontend dockerfile.v0 --local context=DIR --local dockerfile=DIR")
	note("  --opt build-arg:NONCE=… --output type=image,name=$UC_REGISTRY/peer10/…/sN:latest,push=true`, then for each service")
	note("  `docker pull REF@DIGEST` on node1 and on node2; the same registry and buildkitd as uc.")
	note("(a) fresh NONCE and fresh repositories per repetition, for both sides: nothing is cached after FROM (busybox is cached for both).")
	note("(b) uc: apply says \"nothing changed\" and no build starts; peer: the script runs again, every step cached, every image re-pulled.")
	note("(c) one file under s%d/src/ changed; uc rebuilds s%d only and is done when it is present on both nodes;", build10Edited, build10Edited)
	note("  peer: the script rebuilds all %d (cached except s%d, from its COPY on) and re-pulls all of them.", build10Services, build10Edited)
	note("uc/peer < 1 means uc is faster. Checks: ucd logs (msg=Building.), uc get builds/images -o json, docker image inspect on both engines.")
	note("an untimed warm-up round of each side runs first; the order alternates per repetition (uc first in odd ones).")
	r.bytes.print()
}

// print writes the table of what uc apply uploads for a one-file change
// to the big context, beside what buildctl sends.
func (b bytesResult) print() {
	t := newTable(fmt.Sprintf("5b. bytes uploaded for a one-file change to a %s context (once per run, on the same cluster after the timed rounds)", humanBytes(b.contextSize)),
		"", "first apply (cold)", "one-file change", "notes")
	t.row("uc: bytes uploaded", b.first.upText, b.edit.upText,
		fmt.Sprintf("as printed by uc apply (4 significant digits), of %s / %s in all", b.first.totalText, b.edit.totalText))
	t.row("uc: pieces uploaded", fmt.Sprintf("%d of %d", b.first.uploaded, b.first.pieces), fmt.Sprintf("%d of %d", b.edit.uploaded, b.edit.pieces),
		"one piece per file plus the index; only pieces the registry lacks travel")
	t.row("uc: uc apply --wait (ms)", ms1(b.firstDur), ms1(b.editDur), "process start to exit: hash, ship, apply, build done")
	t.row("changed file ("+bytesNote+")", "-", humanBytes(b.changedSize), fmt.Sprintf("%d bytes", b.changedSize))
	t.row("peer: buildctl --local context=DIR sends", humanBytes(b.contextSize), humanBytes(b.contextSize)+" if cold", peerBytesLabel)
	t.flush()
	note("context: %d files of %s random data, %s and the Dockerfile (FROM busybox; COPY . /ctx); %d files, %d bytes; x-machines [node1].",
		bytesFiles, humanBytes(bytesFileSize), bytesNote, b.contextFiles, b.contextSize)
	note("uc: `uc apply --wait -f compose.yaml` on a fresh project (fresh registry repository), then %s changed and applied again;", bytesNote)
	note("  each apply's line `context P/S: N pieces, M uploaded (X of Y)` parsed; checked: first ≥ %s, change ≤ %s,",
		humanBytes(bytesFirstMin), humanBytes(bytesEditMax))
	note("  1 build per apply (ucd logs), a new digest after the change, the image present on node1 (uc wait images, untimed).")
	note("peer: the context's size, not a measured transfer: " + peerBytesLabel + ".")
}

// humanBytes is n bytes as uc apply prints sizes.
func humanBytes(n int64) string { return units.BytesSize(float64(n)) }

// check10 says what case i verified on every repetition (any failure
// stops the bench instead).
func (r build10Result) check10(i int) string {
	n := build10Services
	switch i {
	case caseCold:
		return fmt.Sprintf("uc: %d builds, 1 each, present on 2 nodes; peer: %d pushed and pulled", n, n)
	case caseNoop:
		return fmt.Sprintf("uc: nothing changed, 0 builds, same digests; peer: same digest %d/%d", r.peerKept[caseNoop], n*r.reps)
	default:
		return fmt.Sprintf("uc: 1 build, s%d new digest, %d kept; peer: s%d new, others kept %d/%d",
			build10Edited, n-1, build10Edited, r.peerKept[caseEdit], (n-1)*r.reps)
	}
}

func (r build10Result) summaryRows(t table) {
	if r.skipped != "" {
		t.row(fmt.Sprintf("%d-service build and pre-pull", build10Services), "skipped: "+r.skipped)
		return
	}
	for _, i := range []int{caseCold, caseNoop, caseEdit} {
		uc, peer := summarize(r.uc[i].present).p50, summarize(r.peer[i].present).p50
		t.row(fmt.Sprintf("%d services %s → present on 2 nodes, uc / peer (median ms)", build10Services, caseNames[i]),
			fmt.Sprintf("%s / %s = %s", ms(uc), ms(peer), buildRatio(r.uc[i].present, r.peer[i].present)))
	}
	b := r.bytes
	t.row(fmt.Sprintf("bytes uploaded for a one-file change to a %s context, uc / peer", humanBytes(b.contextSize)),
		fmt.Sprintf("%s (%d of %d pieces; %s is %d bytes) / %s (%s)", b.edit.upText, b.edit.uploaded, b.edit.pieces,
			bytesNote, b.changedSize, humanBytes(b.contextSize), peerBytesLabel))
	t.row("  that context's first apply: uploaded, uc apply --wait (ms)", fmt.Sprintf("%s, %s", b.first.upText, ms(b.firstDur)))
	t.row("  its one-file change: uc apply --wait (ms)", ms(b.editDur))
}
