#!/usr/bin/env bash
# Brings up the real parts that uc's tests and `make demo` need on a plain
# Debian machine without systemd: Debian packages, a buildkitd built at the
# version go.mod pins, a base registry standing in for Docker Hub, UC_NODES
# Docker Engines (one per node), and a busybox base image. Safe to re-run:
# every step checks first and says "already ..." when there is nothing to do.
# hack/down.sh stops all of it. Settings: see uc_config in hack/lib.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export DEBIAN_FRONTEND=noninteractive
# A system GOFLAGS such as -mod=vendor must not leak into our builds.
export GOWORK=off GOFLAGS=-buildvcs=false
PACKAGES=(docker.io docker-compose podman openssh-server runc containerd busybox-static qemu-user-static iproute2 jq skopeo ca-certificates curl openssh-client git)
# Foreign CPUs that builds may target, run under QEMU through binfmt_misc.
EMULATED=(aarch64)
# The base image's platforms: this machine's and the emulated ones.
BASE_PLATFORMS=linux/amd64,linux/arm64
# Used when the product's go.mod does not require buildkit (yet).
TOOLS_MOD=$UC_REPO/hack/tools
OCI_ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'

# Commands run at exit, whatever happened: temporary files, policy-rc.d.
CLEANUP=()
on_exit() {
  local rc=$? c
  for c in "${CLEANUP[@]}"; do eval "$c" || true; done
  ((rc == 0)) || printf 'uc-hack: up.sh FAILED (exit %d); logs are in %s\n' "$rc" "$UC_LOG_DIR" >&2
}

# ================================================================ a. packages

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# foreign_daemons lists dockerd/containerd processes that are not ours.
foreign_daemons() {
  local p
  for p in /proc/[0-9]*; do
    read_argv "${p#/proc/}"
    ((${#ARGV[@]} > 0)) || continue
    case ${ARGV[0]##*/} in dockerd | containerd) ;; *) continue ;; esac
    [[ " ${ARGV[*]} " == *"$UC_RUN_DIR/"* ]] || echo "${p#/proc/}"
  done
  return 0
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    log "packages: already installed (${PACKAGES[*]})"
    return
  fi
  log "packages: installing ${missing[*]} (apt log: $UC_LOG_DIR/apt.log)"
  local before rc=0
  before=" $(foreign_daemons | tr '\n' ' ') "
  # Without systemd, the maintainer scripts of docker.io and containerd try
  # invoke-rc.d. A policy-rc.d that answers 101 ("forbidden") makes them skip
  # starting the system daemons, so no engine we did not start is left running.
  # An existing policy-rc.d belongs to the machine: use it as it is.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from uc hack/up.sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CLEANUP+=("rm -f /usr/sbin/policy-rc.d")
  fi
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}"
  } >>"$UC_LOG_DIR/apt.log" 2>&1 || rc=$?
  ((rc == 0)) || { show_log_tail "$UC_LOG_DIR/apt.log"; die "apt-get failed (exit $rc)"; }
  # Report, never kill: a daemon we did not start is not ours to stop.
  for p in $(foreign_daemons); do
    [[ $before == *" $p "* ]] && continue
    warn "the package install left a daemon running that these scripts did not start:" \
      "pid $p: $(cmdline_of "$p"); it is left alone (stop it yourself if unwanted)"
  done
}

# ================================================================ b. buildkit

# set_buildkit_version sets BUILDKIT_VERSION to the buildkit version that the
# product's go.mod pins, so buildkitd matches our client, else to the one
# hack/tools/go.mod pins.
set_buildkit_version() {
  if BUILDKIT_VERSION=$(cd "$UC_REPO" && go list -m -f '{{.Version}}' github.com/moby/buildkit 2>/dev/null) &&
    [[ -n $BUILDKIT_VERSION ]]; then
    :
  else
    BUILDKIT_VERSION=$(cd "$TOOLS_MOD" && go list -m -f '{{.Version}}' github.com/moby/buildkit) ||
      die "cannot read the buildkit version from go.mod or hack/tools/go.mod"
    log "buildkit: go.mod does not require github.com/moby/buildkit; using hack/tools/go.mod's $BUILDKIT_VERSION"
  fi
  BUILDKITD=$UC_CACHE_DIR/buildkit-$BUILDKIT_VERSION/buildkitd
  BUILDCTL=$UC_CACHE_DIR/buildkit-$BUILDKIT_VERSION/buildctl
}

# The documented way: build inside the downloaded buildkit module, whose own
# go.mod and go.sum pin its dependencies (`go install pkg@v` refuses it
# because that go.mod has exclude directives).
build_buildkit_in_module() {
  local v=$1 out=$2 ldflags=$3 src
  src=$(cd "$out" && go mod download -json "github.com/moby/buildkit@$v" | jq -r .Dir) || return 1
  [[ -d $src/cmd/buildkitd ]] || return 1
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" ./cmd/buildkitd ./cmd/buildctl)
}

# The fallback: hack/tools, a module of its own with tool directives, so the
# product's go.mod never carries buildkitd's dependencies. For another
# version than it pins, a throwaway copy is re-resolved; the checkout's copy
# stays as committed.
build_buildkit_in_tools_module() {
  local v=$1 out=$2 ldflags=$3 mod=$TOOLS_MOD pinned
  pinned=$(cd "$mod" && go list -m -f '{{.Version}}' github.com/moby/buildkit) || return 1
  if [[ $pinned != "$v" ]]; then
    mkdir -p "$out/tools" && cp "$mod/go.mod" "$mod/go.sum" "$out/tools/" && mod=$out/tools
    (cd "$mod" && go get -tool "github.com/moby/buildkit/cmd/buildkitd@$v" "github.com/moby/buildkit/cmd/buildctl@$v") || return 1
  fi
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/" \
    github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl)
}

# build_buildkit VERSION: cached per version outside the checkout, so a fresh
# clone (CI) reuses it. Built into a temporary directory and renamed into
# place, so an interrupted build never leaves a broken cached binary.
build_buildkit() {
  local v=$1 dir=$UC_CACHE_DIR/buildkit-$1 tmp
  local ldflags="-s -w -X github.com/moby/buildkit/version.Version=$v"
  local buildlog=$UC_LOG_DIR/buildkit-build.log
  if [[ -x $dir/buildkitd && -x $dir/buildctl ]]; then
    log "buildkit $v: already built ($dir)"
    return
  fi
  log "buildkit $v: building buildkitd and buildctl into $dir (about 3 min cold; log: $buildlog)"
  mkdir -p "$UC_CACHE_DIR"
  tmp=$(mktemp -d "$UC_CACHE_DIR/.buildkit-$v.XXXXXX")
  CLEANUP+=("rm -rf '$tmp'")
  if ! build_buildkit_in_module "$v" "$tmp" "$ldflags" >>"$buildlog" 2>&1; then
    log "buildkit $v: building inside the downloaded module failed; trying the hack/tools module"
    build_buildkit_in_tools_module "$v" "$tmp" "$ldflags" >>"$buildlog" 2>&1 ||
      { show_log_tail "$buildlog"; die "could not build buildkit $v"; }
  fi
  mkdir -p "$dir"
  mv -f "$tmp/buildkitd" "$dir/buildkitd"
  mv -f "$tmp/buildctl" "$dir/buildctl"
}

# ================================================================ c. ucd

# ucd_is_current: bin/ucd exists and no Go source or go.mod/go.sum is newer.
ucd_is_current() {
  local bin=$UC_REPO/bin/ucd
  [[ -x $bin ]] || return 1
  [[ -z $(find "$UC_REPO" \( -name .git -o -path "$UC_REPO/hack/tools" \) -prune -o \
    \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit) ]]
}

build_ucd() {
  local bin=$UC_REPO/bin/ucd tmp buildlog=$UC_LOG_DIR/ucd-build.log
  if ucd_is_current; then
    log "bin/ucd: already up to date"
    return
  fi
  log "bin/ucd: building (log: $buildlog)"
  mkdir -p "$UC_REPO/bin"
  tmp=$UC_REPO/bin/.ucd.tmp.$$
  CLEANUP+=("rm -f '$tmp'")
  if (cd "$UC_REPO" && CGO_ENABLED=0 go build -o "$tmp" ./cmd/ucd) >"$buildlog" 2>&1; then
    mv -f "$tmp" "$bin" # a rename: a running ucd keeps its old file
  elif [[ -x $bin ]]; then
    # Others edit the tree while we run: a broken build must not take the
    # infrastructure down, and the existing binary still serves a registry.
    show_log_tail "$buildlog"
    warn "go build ./cmd/ucd failed; using the existing bin/ucd"
  else
    show_log_tail "$buildlog"
    die "go build ./cmd/ucd failed and there is no bin/ucd"
  fi
}

# ================================================================ d. base registry

start_base_registry() {
  local pidfile=$UC_RUN_DIR/base-registry.pid logfile=$UC_LOG_DIR/base-registry.log pid
  if ours_from_pidfile "$pidfile" ucd "$UC_BASE_REGISTRY_DATA"; then
    pid=$OURS_PID
    log "base registry: already running (pid $pid, http://$UC_BASE_REGISTRY)"
    return
  fi
  tcp_in_use "$UC_BASE_REGISTRY" &&
    die "base registry: $UC_BASE_REGISTRY is taken by a process these scripts did not start; free it or set UC_BASE_REGISTRY"
  mkdir -p "$UC_BASE_REGISTRY_DATA"
  log "base registry: starting bin/ucd registry serve on $UC_BASE_REGISTRY (data $UC_BASE_REGISTRY_DATA)"
  # OTEL_TRACES_EXPORTER=none: distribution otherwise exports traces every 5 s.
  pid=$(OTEL_TRACES_EXPORTER=none start_daemon base-registry "$logfile" \
    "$UC_REPO/bin/ucd" registry serve --data-dir "$UC_BASE_REGISTRY_DATA" --listen "$UC_BASE_REGISTRY")
  echo "$pid" >"$pidfile"
  wait_for 30 "base registry" "$logfile" "$pid" curl -sf "http://$UC_BASE_REGISTRY/healthz"
  log "base registry: ready (pid $pid)"
}

# ================================================================ e. emulation

# register_emulators lets buildkitd run foreign binaries (RUN steps of an
# arm64 build) under Debian's qemu-user-static. The F flag makes the kernel
# open the interpreter now, so it works inside build containers too.
# hack/down.sh undoes only what is recorded here as ours.
register_emulators() {
  local dir=/proc/sys/fs/binfmt_misc arch conf
  if [[ ! -e $dir/register ]]; then
    mount -t binfmt_misc binfmt_misc "$dir" || die "emulation: cannot mount binfmt_misc on $dir"
    touch "$UC_RUN_DIR/binfmt_misc.mounted"
    log "emulation: mounted binfmt_misc on $dir"
  fi
  for arch in "${EMULATED[@]}"; do
    if [[ -e $dir/qemu-$arch ]]; then
      log "emulation: qemu-$arch already registered"
      continue
    fi
    conf=/usr/lib/binfmt.d/qemu-$arch.conf
    [[ -r $conf ]] || die "emulation: $conf is missing (is qemu-user-static installed?)"
    cat "$conf" >"$dir/register" || die "emulation: registering $conf with binfmt_misc failed"
    touch "$UC_RUN_DIR/binfmt-qemu-$arch.registered"
    log "emulation: registered qemu-$arch ($(sed -n 's/^interpreter //p' "$dir/qemu-$arch"))"
  done
}

# ================================================================ f. buildkitd

write_buildkitd_config() {
  cat <<EOF
# Written by hack/up.sh; edits are overwritten.
root = "$UC_DATA_DIR/buildkit"
# buildkitd may grant these; each ucd decides per node which it allows
# (ucd run --allow-entitlement). Top-level keys must precede the tables.
insecure-entitlements = ["network.host", "security.insecure"]

[grpc]
  address = ["unix://$UC_BUILDKIT_SOCK"]

# Debian's runc with overlayfs; no containerd worker.
# The build cache is collected past UC_BUILDKIT_CACHE_MAX, or when less
# than UC_BUILDKIT_MIN_FREE of the disk is free, keeping at least
# UC_BUILDKIT_CACHE_RESERVED (BuildKit's default policies, with these
# bounds): see the README.
[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  gc = true
  reservedSpace = "${UC_BUILDKIT_CACHE_RESERVED:-2GB}"
  maxUsedSpace = "${UC_BUILDKIT_CACHE_MAX:-20GB}"
  minFreeSpace = "${UC_BUILDKIT_MIN_FREE:-10%}"

[worker.containerd]
  enabled = false

# There is no Docker Hub here: FROM busybox resolves through the base registry.
[registry."docker.io"]
  mirrors = ["$UC_BASE_REGISTRY"]

[registry."$UC_BASE_REGISTRY"]
  http = true
  insecure = true

[registry."$UC_REGISTRY"]
  http = true
  insecure = true

# The internal registry's stable address, the one every node's ucd
# forwards: set once, wherever the registry runs.
[registry."$UC_REGISTRY_ADDRESS"]
  http = true
  insecure = true

EOF
}

# keep_or_restart NAME BIN MARKER PIDFILE CONF SOCK: with CONF.new just
# written, succeeds when our daemon already runs with that CONF (nothing to
# do). Otherwise it stops ours if its settings changed, puts CONF.new in
# place and makes sure SOCK is free for the daemon the caller starts.
keep_or_restart() {
  local name=$1 bin=$2 marker=$3 pidfile=$4 conf=$5 sock=$6
  if ours_from_pidfile "$pidfile" "$bin" "$marker"; then
    if cmp -s "$conf.new" "$conf"; then
      rm -f "$conf.new"
      log "$name: already running (pid $OURS_PID, unix://$sock)"
      return 0
    fi
    log "$name: configuration changed; restarting (pid $OURS_PID)"
    stop_pid "$OURS_PID" "$name"
    rm -f "$pidfile"
  fi
  mv -f "$conf.new" "$conf"
  unix_in_use "$sock" && die "$name: $sock is served by a process these scripts did not start"
  rm -f "$sock"
  return 1
}

start_buildkitd() {
  local pidfile=$UC_RUN_DIR/buildkitd.pid logfile=$UC_LOG_DIR/buildkitd.log pid
  write_buildkitd_config >"$UC_BUILDKIT_CONFIG.new"
  keep_or_restart buildkitd buildkitd "$UC_BUILDKIT_CONFIG" "$pidfile" "$UC_BUILDKIT_CONFIG" "$UC_BUILDKIT_SOCK" && return
  mkdir -p "$UC_DATA_DIR/buildkit"
  log "buildkitd: starting $BUILDKITD (unix://$UC_BUILDKIT_SOCK)"
  pid=$(start_daemon buildkitd "$logfile" "$BUILDKITD" --config "$UC_BUILDKIT_CONFIG")
  echo "$pid" >"$pidfile"
  wait_for 60 buildkitd "$logfile" "$pid" "$BUILDCTL" --addr "unix://$UC_BUILDKIT_SOCK" debug workers
  log "buildkitd: ready (pid $pid)"
}

# ================================================================ g. engines

ensure_bridge() {
  local i=$1 br addr
  br=$(engine_bridge "$i")
  addr=172.31.$i.1/24
  if ! ip link show "$br" >/dev/null 2>&1; then
    log "bridge $br: creating ($addr)"
    ip link add "$br" type bridge
    touch "$(bridge_marker "$i")"
  elif [[ ! -e $(bridge_marker "$i") ]]; then
    log "bridge $br: already present (not created by these scripts; used as it is)"
    return
  else
    log "bridge $br: already present"
  fi
  # Finish a bridge of ours that an interrupted run left half set up.
  ip -4 addr show dev "$br" | grep -qF "inet $addr " || ip addr add "$addr" dev "$br"
  ip link set "$br" up
}

# check_dockerd: the flags we pass exist, and no system containerd would be
# picked up instead of a managed one. dockerd uses a containerd listening on
# /run/containerd/containerd.sock when that socket exists, and then every
# engine would share it; each node must have its own.
check_dockerd() {
  local help flag
  help=$(dockerd --help 2>&1) || die "dockerd --help failed"
  for flag in --config-file --data-root --exec-root --pidfile --host --bridge --iptables \
    --ip-masq --insecure-registry --registry-mirror; do
    [[ $help == *"$flag"* ]] || die "the installed dockerd has no $flag flag"
  done
  [[ -e /run/containerd/containerd.sock ]] &&
    die "a system containerd socket exists at /run/containerd/containerd.sock; dockerd would share it instead of starting a managed containerd per node. Stop that containerd (it is not ours) and retry"
  return 0
}

start_engine() {
  local i=$1 sock pidfile logfile pid cpid
  sock=$(engine_sock "$i")
  pidfile=$(engine_pidfile "$i")
  logfile=$UC_LOG_DIR/engine$i.log
  ensure_bridge "$i"
  if ours_from_pidfile "$pidfile" dockerd "$sock"; then
    pid=$OURS_PID
    log "engine $i: already running (pid $pid, unix://$sock)"
    return
  fi
  unix_in_use "$sock" && die "engine $i: $sock is served by a process these scripts did not start"
  rm -f "$sock"
  [[ -n ${DOCKERD_CHECKED:-} ]] || { check_dockerd; DOCKERD_CHECKED=1; }
  # An empty config file of its own: /etc/docker/daemon.json is the system's.
  echo '{}' >"$UC_RUN_DIR/engine$i.json"
  mkdir -p "$(engine_dataroot "$i")" "$(engine_execroot "$i")"
  log "engine $i: starting dockerd (unix://$sock, bridge $(engine_bridge "$i"))"
  # --iptables=false --ip-masq=false: leave the host's firewall alone. The
  # bridge is always our own (never --bridge=none: it deletes docker0).
  pid=$(start_daemon "engine$i" "$logfile" dockerd \
    --config-file "$UC_RUN_DIR/engine$i.json" \
    --data-root "$(engine_dataroot "$i")" \
    --exec-root "$(engine_execroot "$i")" \
    --pidfile "$pidfile" \
    --host "unix://$sock" \
    --bridge "$(engine_bridge "$i")" \
    --iptables=false --ip-masq=false \
    --insecure-registry "$UC_REGISTRY" \
    --insecure-registry "$UC_BASE_REGISTRY" \
    --registry-mirror "http://$UC_BASE_REGISTRY")
  wait_for 60 "engine $i" "$logfile" "$pid" docker -H "unix://$sock" info
  cpid=$(pids_naming containerd "$(engine_execroot "$i")/containerd" | head -n1)
  [[ -n $cpid ]] || die "engine $i: no managed containerd of its own under $(engine_execroot "$i")"
  log "engine $i: ready (dockerd pid $pid, managed containerd pid $cpid)"
}

# ================================================================ h. base image

# base_image_present: library/busybox:latest is an index for every platform
# in BASE_PLATFORMS (older runs of this script pushed amd64 alone).
base_image_present() {
  local index p
  index=$(curl -sf -H "Accept: $OCI_ACCEPT" "http://$UC_BASE_REGISTRY/v2/library/busybox/manifests/latest") || return 1
  for p in ${BASE_PLATFORMS//,/ }; do
    jq -e --arg arch "${p#linux/}" '.manifests // [] | any(.platform.architecture == $arch)' <<<"$index" >/dev/null || return 1
  done
}

# busybox_binary ARCH: the path of Debian's static busybox for ARCH. The
# host's own comes from the installed package; a foreign one from its .deb,
# downloaded once into the cache (apt lists for ARCH are fetched for this
# download alone; dpkg's architectures are left as they are).
busybox_binary() {
  local arch=$1 dir deb
  if [[ $arch == "$(dpkg --print-architecture)" ]]; then
    echo /bin/busybox
    return
  fi
  dir=$UC_CACHE_DIR/busybox-static-$arch
  if [[ ! -x $dir/bin/busybox ]]; then
    local apt=(-q -o "APT::Architectures::=$(dpkg --print-architecture)" -o "APT::Architectures::=$arch")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    {
      apt-get "${apt[@]}" update &&
        (cd "$dir.tmp" && apt-get "${apt[@]}" download "busybox-static:$arch")
    } >>"$UC_LOG_DIR/apt.log" 2>&1 || { show_log_tail "$UC_LOG_DIR/apt.log"; die "downloading busybox-static:$arch failed"; }
    deb=$(echo "$dir.tmp"/busybox-static_*_"$arch".deb)
    dpkg-deb -x "$deb" "$dir.tmp" || die "unpacking $deb failed"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/bin/busybox"
}

# make_busybox_rootfs DIR BUSYBOX: a static busybox, its applets as
# symlinks, root and nobody, and a world-writable /tmp. The applet list
# comes from the host's busybox, which is the same Debian version.
make_busybox_rootfs() {
  local root=$1 applet
  mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp"
  cp "$2" "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    # The busybox applet itself would replace the binary with a symlink to it.
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 755 "$root" "$root/bin" "$root/etc" && chmod 700 "$root/root" && chmod 1777 "$root/tmp"
  chmod 644 "$root/etc/passwd" "$root/etc/group"
}

# A deterministic tar (sorted, fixed times and owners, no atime/ctime), so
# the same busybox gives the same layer digest on every machine.
tar_rootfs() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2" bin etc root tmp
}

# push_base_image pushes busybox as one index over BASE_PLATFORMS, as Docker
# Hub's busybox is: ADD needs no emulation, so building the arm64 image runs
# nothing foreign.
push_base_image() {
  local work ref=$UC_BASE_REGISTRY/library/busybox:latest p arch
  if base_image_present; then
    log "base image: already in the base registry ($ref, $BASE_PLATFORMS)"
    return
  fi
  log "base image: building $ref for $BASE_PLATFORMS from Debian's busybox-static"
  work=$(mktemp -d)
  CLEANUP+=("rm -rf '$work'")
  mkdir "$work/context"
  for p in ${BASE_PLATFORMS//,/ }; do
    arch=${p#linux/}
    make_busybox_rootfs "$work/rootfs-$arch" "$(busybox_binary "$arch")"
    tar_rootfs "$work/rootfs-$arch" "$work/context/rootfs-$arch.tar"
  done
  printf 'FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\nENV PATH=/bin\nCMD ["sh"]\n' >"$work/context/Dockerfile"
  # SOURCE_DATE_EPOCH=0 fixes the image's timestamps: with the fixed tar, the
  # same busybox-static gives the same image digest on every machine.
  "$BUILDCTL" --addr "unix://$UC_BUILDKIT_SOCK" build --progress=plain \
    --frontend dockerfile.v0 --local context="$work/context" --local dockerfile="$work/context" \
    --opt build-arg:SOURCE_DATE_EPOCH=0 --opt platform="$BASE_PLATFORMS" \
    --output "type=image,name=$ref,push=true,registry.insecure=true" >>"$UC_LOG_DIR/base-image.log" 2>&1 ||
    { show_log_tail "$UC_LOG_DIR/base-image.log"; die "building the busybox base image failed"; }
  base_image_present || die "the base image was pushed but $ref is not an index for $BASE_PLATFORMS in the base registry"
  log "base image: pushed $ref"
}

# verify_base_image: FROM busybox works for buildkitd (through its docker.io
# mirror) and every engine has busybox (through its registry mirror). Both
# are cached after the first run, so this costs little when nothing changed.
verify_base_image() {
  local work i sock
  work=$(mktemp -d)
  CLEANUP+=("rm -rf '$work'")
  printf 'FROM busybox\nRUN test -x /bin/sh\n' >"$work/Dockerfile"
  "$BUILDCTL" --addr "unix://$UC_BUILDKIT_SOCK" build --progress=plain \
    --frontend dockerfile.v0 --local context="$work" --local dockerfile="$work" >>"$UC_LOG_DIR/base-image.log" 2>&1 ||
    { show_log_tail "$UC_LOG_DIR/base-image.log"; die "buildkitd cannot build FROM busybox through the docker.io mirror"; }
  log "verify: buildkitd builds FROM busybox through the docker.io mirror"
  printf 'FROM busybox\nRUN test "$(uname -m)" = aarch64\n' >"$work/Dockerfile"
  "$BUILDCTL" --addr "unix://$UC_BUILDKIT_SOCK" build --progress=plain --opt platform=linux/arm64 \
    --frontend dockerfile.v0 --local context="$work" --local dockerfile="$work" >>"$UC_LOG_DIR/base-image.log" 2>&1 ||
    { show_log_tail "$UC_LOG_DIR/base-image.log"; die "buildkitd cannot run an arm64 busybox under QEMU"; }
  log "verify: buildkitd runs arm64 busybox under QEMU"
  for ((i = 1; i <= UC_NODES; i++)); do
    sock=unix://$(engine_sock "$i")
    if docker -H "$sock" pull -q busybox >>"$UC_LOG_DIR/base-image.log" 2>&1; then
      log "verify: engine $i pulled busybox through its registry mirror"
    elif docker -H "$sock" pull -q "$UC_BASE_REGISTRY/library/busybox" >>"$UC_LOG_DIR/base-image.log" 2>&1 &&
      docker -H "$sock" tag "$UC_BASE_REGISTRY/library/busybox" busybox; then
      warn "engine $i: the registry mirror did not serve busybox; pulled $UC_BASE_REGISTRY/library/busybox and tagged it busybox"
    else
      show_log_tail "$UC_LOG_DIR/base-image.log"
      die "engine $i cannot pull busybox"
    fi
  done
}

# ================================================================ h2. podman

# A Podman engine (Debian's podman 4.3) serving its Docker-compatible API,
# for the tests of a node whose engine is Podman. Its storage is vfs: no
# overlay mount to leave behind. Its registries.conf makes uc's loopback
# registries plain HTTP, as Docker does for 127.0.0.0/8 without being told:
# Podman needs each address named, so the Podman test's cluster uses the
# fixed stable address UC_PODMAN_REGISTRY_ADDRESS.
write_podman_registries() {
  local r
  echo "# Written by hack/up.sh; edits are overwritten."
  echo 'unqualified-search-registries = []'
  for r in "$UC_REGISTRY" "$UC_BASE_REGISTRY" "$UC_REGISTRY_ADDRESS" "$UC_PODMAN_REGISTRY_ADDRESS"; do
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$r"
  done
}

start_podman() {
  local pidfile=$UC_RUN_DIR/podman.pid logfile=$UC_LOG_DIR/podman.log conf=$UC_RUN_DIR/podman-registries.conf pid
  write_podman_registries >"$conf.new"
  keep_or_restart podman podman "$UC_PODMAN_SOCK" "$pidfile" "$conf" "$UC_PODMAN_SOCK" && return
  mkdir -p "$UC_DATA_DIR/podman"
  log "podman: starting podman system service (unix://$UC_PODMAN_SOCK)"
  pid=$(CONTAINERS_REGISTRIES_CONF=$conf start_daemon podman "$logfile" podman --storage-driver vfs \
    --root "$UC_DATA_DIR/podman/storage" --runroot "$UC_RUN_DIR/podman" system service --time=0 "unix://$UC_PODMAN_SOCK")
  echo "$pid" >"$pidfile"
  wait_for 30 podman "$logfile" "$pid" curl -sf --unix-socket "$UC_PODMAN_SOCK" http://podman/_ping
  log "podman: ready (pid $pid)"
}

# ================================================================ i. env file

write_env_file() {
  local i
  {
    echo "# Written by hack/up.sh; read by hack/down.sh and the tests."
    echo "UC_NODES=$UC_NODES"
    echo "UC_RUN_DIR=$UC_RUN_DIR"
    echo "UC_DATA_DIR=$UC_DATA_DIR"
    echo "UC_CACHE_DIR=$UC_CACHE_DIR"
    echo "UC_REGISTRY=$UC_REGISTRY"
    echo "UC_BASE_REGISTRY=$UC_BASE_REGISTRY"
    echo "UC_REGISTRY_ADDRESS=$UC_REGISTRY_ADDRESS"
    echo "UC_BASE_IMAGE=$UC_BASE_REGISTRY/library/busybox:latest"
    echo "UC_BUILDKIT_VERSION=$BUILDKIT_VERSION"
    echo "UC_BUILDKIT_ADDR=unix://$UC_BUILDKIT_SOCK"
    echo "UC_BUILDCTL=$BUILDCTL"
    echo "UC_PODMAN_HOST=unix://$UC_PODMAN_SOCK"
    echo "UC_PODMAN_REGISTRY_ADDRESS=$UC_PODMAN_REGISTRY_ADDRESS"
    for ((i = 1; i <= UC_NODES; i++)); do
      echo "UC_DOCKER_HOST_$i=unix://$(engine_sock "$i")"
      echo "UC_BRIDGE_$i=$(engine_bridge "$i")"
    done
  } >"$UC_ENV_FILE.new"
  mv -f "$UC_ENV_FILE.new" "$UC_ENV_FILE"
  log "env: wrote $UC_ENV_FILE"
}

# ================================================================ main

main() {
  uc_config
  trap on_exit EXIT
  take_lock
  mkdir -p "$UC_LOG_DIR" "$UC_DATA_DIR"
  log "up: $UC_NODES node(s), run dir $UC_RUN_DIR, data dir $UC_DATA_DIR, cache $UC_CACHE_DIR"

  install_packages
  set_buildkit_version
  build_buildkit "$BUILDKIT_VERSION"
  build_ucd
  start_base_registry
  register_emulators
  start_buildkitd
  local i
  for ((i = 1; i <= UC_NODES; i++)); do start_engine "$i"; done
  start_podman
  push_base_image
  verify_base_image
  write_env_file

  log "up: done in ${SECONDS}s. Use it with: set -a; . $UC_ENV_FILE; set +a"
  sed 's/^/    /' "$UC_ENV_FILE"
}

# Sourcing only defines the functions (for testing one step by hand).
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
