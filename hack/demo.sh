#!/usr/bin/env bash
# The main job: real Docker Engines and BuildKit (hack/up.sh), two ucd nodes
# sharing node1's embedded state, the hello project applied, built once,
# pushed to the internal registry, pre-pulled onto both nodes, and run on
# node2. Every process this script starts is stopped by pid when it exits;
# the infrastructure stays up (hack/down.sh stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

hack/up.sh
# shellcheck disable=SC1091
source "${UC_RUN_DIR:-/run/uc-hack}/env"

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

say "Starting ucd node1: embedded state on $LISTEN, registry on $UC_REGISTRY, engine 1, BuildKit"
bin/ucd run --node node1 --data-dir "$WORK/node1" --state-listen "$LISTEN" --labels zone=a \
  --docker-host "$UC_DOCKER_HOST_1" --buildkit-addr "$UC_BUILDKIT_ADDR" --registry-listen "$UC_REGISTRY" \
  --registry-address "${UC_REGISTRY_ADDRESS:-127.0.0.1:5454}" >"$WORK/node1.log" 2>&1 &
PIDS+=($!)
wait_for_nodes 1

say "Starting ucd node2 on engine 2, sharing node1's state"
bin/ucd run --node node2 --data-dir "$WORK/node2" --corrosion-api "$UC_CORROSION_API" --labels zone=b \
  --docker-host "$UC_DOCKER_HOST_2" --buildkit-addr "$UC_BUILDKIT_ADDR" \
  --registry-address "${UC_REGISTRY_ADDRESS:-127.0.0.1:5454}" >"$WORK/node2.log" 2>&1 &
PIDS+=($!)
wait_for_nodes 2
bin/uc get nodes

say "uc apply -f examples/hello/compose.yaml"
bin/uc apply -f examples/hello/compose.yaml

say "Waiting until both nodes have the image"
if ! bin/uc wait images hello/web --timeout 5m; then
  bin/uc describe build hello/web || true
  tail -n 30 "$WORK"/*.log >&2
  exit 1
fi

say "uc get builds"
bin/uc get builds

say "uc get images"
bin/uc get images

say "Running the image once on node2 (engine 2), by digest, as pre-pulled through the registry's stable address"
REF=$(bin/uc get images hello/web -o json | jq -r '.[0].presence[] | select(.node=="node2") | .digest')
REPO="${UC_REGISTRY_ADDRESS:-127.0.0.1:5454}/hello/web@$REF"
docker -H "$UC_DOCKER_HOST_2" run --rm "$REPO"

say "uc apply again: an unchanged project writes nothing and builds nothing"
bin/uc apply -f examples/hello/compose.yaml
