#!/usr/bin/env bash
# The main job for now: two ucd nodes on one embedded state, the hello
# project applied, and the state it produced. Every process this script
# starts is stopped by pid when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=${UC_DEMO_LISTEN:-127.0.0.1:51002}
export UC_CORROSION_API="http://$LISTEN"
WORK=$(mktemp -d /tmp/uc-demo.XXXXXX)
PIDS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Stop in reverse order: node1 serves the state node2 reports to.
cleanup() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for_nodes() {
  for _ in $(seq 1 100); do
    if [ "$(bin/uc get nodes 2>/dev/null | grep -c ' Ready ')" -ge "$1" ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "demo: nodes did not become Ready; logs in $WORK/*.log" >&2
  cat "$WORK"/*.log >&2
  return 1
}

say "Starting ucd node1 on the embedded state ($LISTEN)"
bin/ucd run --node node1 --data-dir "$WORK/node1" --state-listen "$LISTEN" --labels zone=a >"$WORK/node1.log" 2>&1 &
PIDS+=($!)
wait_for_nodes 1

say "Starting ucd node2, sharing node1's state"
bin/ucd run --node node2 --data-dir "$WORK/node2" --corrosion-api "$UC_CORROSION_API" --labels zone=b >"$WORK/node2.log" 2>&1 &
PIDS+=($!)
wait_for_nodes 2
bin/uc get nodes

say "uc apply -f examples/hello/compose.yaml"
bin/uc apply -f examples/hello/compose.yaml

say "uc apply again: an unchanged project writes nothing"
bin/uc apply -f examples/hello/compose.yaml

say "uc get builds"
bin/uc get builds

say "uc get images"
bin/uc get images

say "uc describe image hello/web"
bin/uc describe image hello/web

say "Builds stay pending and images 0/N until the build and prepull controllers land."
say "Stopping the nodes (they mark themselves gone)"
