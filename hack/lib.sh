# shellcheck shell=bash
# Helpers shared by hack/up.sh and hack/down.sh. Source it; it defines
# functions and the configuration, and starts nothing.

# Checkout root, for bin/ucd and go.mod.
UC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ---------------------------------------------------------------- output

log()  { printf 'uc-hack: %s\n' "$*"; }
warn() { printf 'uc-hack: WARNING: %s\n' "$*" >&2; }
die()  { printf 'uc-hack: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- configuration

# uc_config sets every UC_* setting from the environment or its default and
# checks the values that the scripts build paths and addresses from.
uc_config() {
  : "${UC_NODES:=3}"
  : "${UC_RUN_DIR:=/run/uc-hack}"
  : "${UC_DATA_DIR:=/var/lib/uc-hack}"
  : "${UC_CACHE_DIR:=/var/cache/uc}"
  : "${UC_REGISTRY:=127.0.0.1:5000}"
  : "${UC_BASE_REGISTRY:=127.0.0.1:5100}"
  # The internal registry's stable address (ucd run --registry-address):
  # each ucd forwards it to wherever the registry runs now.
  : "${UC_REGISTRY_ADDRESS:=127.0.0.1:5454}"
  : "${UC_PODMAN_REGISTRY_ADDRESS:=127.0.0.1:5455}"
  export UC_NODES UC_RUN_DIR UC_DATA_DIR UC_CACHE_DIR UC_REGISTRY UC_BASE_REGISTRY UC_REGISTRY_ADDRESS UC_PODMAN_REGISTRY_ADDRESS

  [[ $UC_NODES =~ ^[0-9]+$ ]] && ((UC_NODES >= 1 && UC_NODES <= 254)) ||
    die "UC_NODES must be 1..254 (each node gets bridge 172.31.N.1/24), got '$UC_NODES'"
  local d
  for d in UC_RUN_DIR UC_DATA_DIR UC_CACHE_DIR; do
    # rm -rf and umount work under these: refuse anything but a real subdirectory.
    [[ ${!d} == /?* && ${!d} != *..* ]] || die "$d must be an absolute path below /, got '${!d}'"
    printf -v "$d" '%s' "${!d%/}"
  done
  for d in UC_REGISTRY UC_BASE_REGISTRY UC_REGISTRY_ADDRESS UC_PODMAN_REGISTRY_ADDRESS; do
    [[ ${!d} =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]] || die "$d must be HOST:PORT, got '${!d}'"
  done

  UC_LOG_DIR=$UC_RUN_DIR/log
  UC_ENV_FILE=$UC_RUN_DIR/env
  UC_BUILDKIT_SOCK=$UC_RUN_DIR/buildkitd.sock
  UC_BUILDKIT_CONFIG=$UC_RUN_DIR/buildkitd.toml
  UC_PODMAN_SOCK=$UC_RUN_DIR/podman.sock
  UC_BASE_REGISTRY_DATA=$UC_DATA_DIR/base-registry
}

engine_sock()     { echo "$UC_RUN_DIR/engine$1.sock"; }
engine_pidfile()  { echo "$UC_RUN_DIR/engine$1.pid"; }
engine_execroot() { echo "$UC_RUN_DIR/engine$1"; }
engine_dataroot() { echo "$UC_DATA_DIR/engine$1"; }
engine_bridge()   { echo "ucbr$1"; }
# up.sh leaves this marker only for a bridge it created, so down.sh removes
# exactly those and never a bridge that was there before.
bridge_marker()   { echo "$UC_RUN_DIR/bridge-ucbr$1.created"; }

# ---------------------------------------------------------------- processes

# alive PID: the process exists and is not a zombie. Our daemons are
# reparented to pid 1, which may reap them late.
alive() {
  local stat
  stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# read_argv PID fills the array ARGV with the process's arguments (empty for
# a zombie or a process that is gone). Pure bash: it runs for every process
# when down.sh looks for leftovers.
read_argv() {
  ARGV=()
  mapfile -d '' -t ARGV 2>/dev/null <"/proc/$1/cmdline" || true
}

# cmdline_of PID prints the process's arguments joined by spaces.
cmdline_of() {
  read_argv "$1"
  echo "${ARGV[*]}"
}

# is_ours PID BINARY MARKER: the process is alive, its argv[0] is BINARY (by
# base name), and its command line names MARKER, a path that only our
# processes carry (our socket, config or data directory). A pid file alone is
# never trusted: the pid may have been reused by anything.
is_ours() {
  local pid=$1 bin=$2 marker=$3
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  read_argv "$pid"
  ((${#ARGV[@]} > 0)) && [[ ${ARGV[0]##*/} == "$bin" ]] || return 1
  [[ " ${ARGV[*]} " == *"$marker"* ]]
}

# ours_from_pidfile PIDFILE BINARY MARKER succeeds, with the pid in OURS_PID,
# when the pid file names a live process of ours. A stale pid file is removed.
ours_from_pidfile() {
  local file=$1 pid
  OURS_PID=
  [[ -f $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  if is_ours "$pid" "$2" "$3"; then
    OURS_PID=$pid
    return 0
  fi
  log "removing stale pid file $file (pid '${pid}' is not our $2)"
  rm -f "$file"
  return 1
}

# start_daemon NAME LOGFILE CMD... starts CMD detached in its own session,
# with stdin from /dev/null and output appended to LOGFILE, and prints its pid.
# fd 9 (the lock) is closed so a daemon never holds the scripts' lock.
start_daemon() {
  local name=$1 logfile=$2
  shift 2
  printf '\n==== %s: starting %s: %s\n' "$(date -Is)" "$name" "$*" >>"$logfile"
  setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $!
}

# stop_pid PID NAME: SIGTERM, wait up to 20 s, then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 i
  alive "$pid" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  warn "$name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  warn "$name (pid $pid) is still there after SIGKILL"
}

# pids_naming BINARY PATH prints live processes whose argv[0] is BINARY and
# whose command line names PATH: the leftovers of our own daemons (a managed
# containerd or a shim whose dockerd died), found by our unique paths.
pids_naming() {
  local bin=$1 path=$2 p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    is_ours "$pid" "$bin" "$path" && echo "$pid"
  done
  return 0
}

# ---------------------------------------------------------------- waiting

# wait_for SECONDS WHAT LOGFILE PID CMD... polls CMD every 0.2 s until it
# succeeds. Gives up early when PID, the daemon being waited for, has exited,
# and then shows the end of its log.
wait_for() {
  local secs=$1 what=$2 logfile=$3 pid=$4 i
  shift 4
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if [[ -n $pid ]] && ! alive "$pid"; then
      show_log_tail "$logfile"
      die "$what exited while starting; log: $logfile"
    fi
    sleep 0.2
  done
  show_log_tail "$logfile"
  die "$what did not become ready within ${secs}s; log: $logfile"
}

show_log_tail() {
  [[ -f $1 ]] || return 0
  printf 'uc-hack: last lines of %s:\n' "$1" >&2
  tail -n 20 "$1" | sed 's/^/    /' >&2
}

# tcp_in_use HOST:PORT: something accepts connections there.
tcp_in_use() {
  local host=${1%:*} port=${1##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# unix_in_use SOCKET: something accepts connections on the socket. curl's
# exit code 7 means it could not connect; any other code means something
# answered, whatever it said (buildkitd speaks only gRPC).
unix_in_use() {
  [[ -S $1 ]] || return 1
  local rc=0
  curl -s -o /dev/null --max-time 2 --unix-socket "$1" http://x/ 2>/dev/null || rc=$?
  ((rc != 7))
}

# take_lock: one up.sh or down.sh at a time per UC_RUN_DIR. Daemons are
# started with fd 9 closed, so they never inherit it.
take_lock() {
  mkdir -p "$UC_RUN_DIR"
  exec 9>"$UC_RUN_DIR/.lock"
  flock -w 900 9 || die "another hack/up.sh or hack/down.sh holds $UC_RUN_DIR/.lock"
}
