#!/usr/bin/env bash
# Stops what hack/up.sh started, in reverse order: the engines (and any
# containerd or shim of theirs left behind), buildkitd, the base registry.
# Only processes whose command line names our own paths are stopped, never
# another engine. Removes the bridges up.sh created, unmounts what is left
# under the run and data directories, and removes pid files and sockets.
# Images and caches stay unless --purge is given; UC_CACHE_DIR always stays.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: hack/down.sh [--purge]"
  echo "  --purge  also delete everything under UC_DATA_DIR (images, build cache)"
}

# highest_node prints the highest node number that up.sh may have started:
# from the env file, and from pid files, bridge markers and exec-roots, in
# case up.sh stopped before writing the env file.
highest_node() {
  local n=$UC_NODES f i
  for f in "$UC_RUN_DIR"/engine[0-9]* "$UC_RUN_DIR"/bridge-ucbr[0-9]*.created; do
    [[ -e $f ]] || continue
    f=${f##*/}
    i=${f//[!0-9]/}
    [[ -n $i ]] && ((10#$i > n)) && n=$((10#$i))
  done
  echo "$n"
}

# stop_all BINARY MARKER NAME [PIDFILE]: the verified pid from the pid file,
# plus any other process of ours found by its unique path.
stop_all() {
  local bin=$1 marker=$2 name=$3 pidfile=${4:-} pid found=
  if [[ -n $pidfile ]] && ours_from_pidfile "$pidfile" "$bin" "$marker"; then
    stop_pid "$OURS_PID" "$name"
    found=1
  fi
  for pid in $(pids_naming "$bin" "$marker"); do
    stop_pid "$pid" "$name ($bin)"
    found=1
  done
  [[ -n $pidfile ]] && rm -f "$pidfile"
  [[ -n $found ]]
}

# remove_leftover_containers I: after a dockerd that died without stopping
# its containers, their runc state is still in the engine's exec-root (its
# runc root is EXEC_ROOT/runtime-runc/moby). `runc delete --force` kills
# each container and removes its cgroups; a shim alone would leave the
# container's processes running.
remove_leftover_containers() {
  local root id
  root=$(engine_execroot "$1")/runtime-runc/moby
  [[ -d $root ]] || return 0
  for id in $(ls -A "$root"); do
    log "engine $1: removing leftover container ${id:0:12} (runc delete --force)"
    runc --root "$root" delete --force "$id" >/dev/null 2>&1 || warn "runc delete --force $id failed"
  done
}

stop_engine() {
  local i=$1 sock execroot br
  sock=$(engine_sock "$i")
  execroot=$(engine_execroot "$i")
  # A managed registry container restarts with its engine (restart policy
  # always); remove it so that a later up.sh starts clean.
  if [[ -S $sock ]] && docker -H "unix://$sock" rm -f uc-registry >/dev/null 2>&1; then
    log "engine $i: removed the uc-registry container"
  fi
  stop_all dockerd "$sock" "engine $i dockerd" "$(engine_pidfile "$i")" ||
    log "engine $i: not running"
  # dockerd stops its managed containerd on SIGTERM; after a SIGKILL (or a
  # crash) they are left behind, found by our exec-root in their arguments.
  stop_all containerd "$execroot/containerd" "engine $i containerd" || true
  remove_leftover_containers "$i"
  stop_all containerd-shim-runc-v2 "$execroot/containerd/" "engine $i shim" || true
  rm -f "$sock" "$UC_RUN_DIR/engine$i.json"

  br=$(engine_bridge "$i")
  if [[ -e $(bridge_marker "$i") ]]; then
    if ip link show "$br" >/dev/null 2>&1; then
      log "bridge $br: removing"
      ip link del "$br"
    fi
    rm -f "$(bridge_marker "$i")"
  elif ip link show "$br" >/dev/null 2>&1; then
    log "bridge $br: left alone (these scripts did not create it)"
  fi
}

# unmount_ours unmounts everything below UC_RUN_DIR and UC_DATA_DIR (overlay
# layers, network namespaces, ...), deepest first; a busy mount is detached
# lazily. Several passes, because a mount can be stacked on another.
unmount_ours() {
  local pass mp any=
  for pass in 1 2 3; do
    mapfile -t mps < <(awk -v a="$UC_RUN_DIR/" -v b="$UC_DATA_DIR/" '
      { m = $2; gsub(/\\040/, " ", m)
        if (index(m, a) == 1 || index(m, b) == 1) print split(m, _, "/") "\t" m }' /proc/mounts |
      sort -t $'\t' -k1,1nr | cut -f2-)
    ((${#mps[@]} > 0)) || break
    for mp in "${mps[@]}"; do
      log "unmounting $mp"
      umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || warn "could not unmount $mp"
      any=1
    done
  done
  [[ -n $any ]] || log "mounts: none under $UC_RUN_DIR or $UC_DATA_DIR"
}

purge_data() {
  [[ $UC_CACHE_DIR == "$UC_DATA_DIR" || $UC_CACHE_DIR == "$UC_DATA_DIR"/* ]] &&
    die "UC_CACHE_DIR ($UC_CACHE_DIR) is inside UC_DATA_DIR; refusing to purge"
  [[ -d $UC_DATA_DIR ]] || return 0
  log "purge: deleting everything under $UC_DATA_DIR (UC_CACHE_DIR $UC_CACHE_DIR is kept)"
  # --one-file-system: should anything still be mounted below, leave it be.
  find "$UC_DATA_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} +
}

# unregister_emulators removes the binfmt_misc handlers up.sh registered,
# and unmounts binfmt_misc if up.sh mounted it and nothing else uses it.
unregister_emulators() {
  local dir=/proc/sys/fs/binfmt_misc marker name
  for marker in "$UC_RUN_DIR"/binfmt-*.registered; do
    [[ -e $marker ]] || continue
    name=${marker##*/binfmt-}
    name=${name%.registered}
    if [[ -e $dir/$name ]]; then
      echo -1 >"$dir/$name" && log "emulation: unregistered $name" || warn "emulation: could not unregister $name"
    fi
    rm -f "$marker"
  done
  [[ -e $UC_RUN_DIR/binfmt_misc.mounted ]] || return 0
  if compgen -G "$dir/*" | grep -qv -e '/register$' -e '/status$'; then
    log "emulation: binfmt_misc left mounted (it holds handlers these scripts did not register)"
  else
    umount "$dir" && log "emulation: unmounted binfmt_misc"
  fi
  rm -f "$UC_RUN_DIR/binfmt_misc.mounted"
}

main() {
  local purge= i n
  case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  uc_config
  # What up.sh recorded wins over defaults: stop what was really started.
  if [[ -f $UC_RUN_DIR/env ]]; then
    set -a
    # shellcheck disable=SC1091
    . "$UC_RUN_DIR/env"
    set +a
    uc_config
  fi
  take_lock
  n=$(highest_node)
  log "down: $n node(s), run dir $UC_RUN_DIR, data dir $UC_DATA_DIR"
  # The env file goes first: nothing should pick up a half-stopped set.
  rm -f "$UC_ENV_FILE"

  for ((i = n; i >= 1; i--)); do stop_engine "$i"; done
  stop_all buildkitd "$UC_BUILDKIT_CONFIG" buildkitd "$UC_RUN_DIR/buildkitd.pid" ||
    log "buildkitd: not running"
  rm -f "$UC_BUILDKIT_SOCK"
  stop_all podman "$UC_PODMAN_SOCK" podman "$UC_RUN_DIR/podman.pid" || log "podman: not running"
  rm -f "$UC_PODMAN_SOCK"
  stop_all ucd "$UC_BASE_REGISTRY_DATA" "base registry" "$UC_RUN_DIR/base-registry.pid" ||
    log "base registry: not running"

  unmount_ours
  unregister_emulators
  # Exec-roots hold only runtime state of stopped engines.
  for ((i = 1; i <= n; i++)); do
    [[ -d $(engine_execroot "$i") ]] && rm -rf --one-file-system "$(engine_execroot "$i")"
  done
  [[ -n $purge ]] && purge_data
  log "down: done in ${SECONDS}s (logs kept in $UC_LOG_DIR${purge:+; data purged})"
}

main "$@"
