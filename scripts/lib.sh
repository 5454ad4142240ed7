# Shared shell helpers of scripts/*: sourced, never run. Sets `root` (the checkout) and
# `target_dir` (Cargo's target directory); provides logging, Debian package installation,
# free loopback ports, waiting, and background processes stopped on exit.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   log_name=bench        # the prefix of log lines (default: the script's name)
# shellcheck shell=bash

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # for the scripts that source this file
target_dir="${CARGO_TARGET_DIR:-$root/target}"
log_name="$(basename "$0")"
# Every ferrata-server the scripts start takes a free port for its admin listener (metrics,
# health) instead of the default 7091, so that several servers (a cluster, parallel suites)
# never compete for it; a caller may still choose one.
export FERRATA_ADMIN__LISTEN="${FERRATA_ADMIN__LISTEN:-127.0.0.1:0}"

# ---------------------------------------------------------------------------------------------
# Logging (stderr): log TEXT, warn TEXT, die TEXT (exits 1).
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$log_name" -1 "$*" >&2; }
warn() { printf '[%s %(%H:%M:%S)T] WARNING: %s\n' "$log_name" -1 "$*" >&2; }
die() { printf '%s: error: %s\n' "$log_name" "$*" >&2; exit 1; }

# tail_of FILE [LINES]: the end of a log on one line (each line cut to 300 characters).
tail_of() {
    local text
    text=$(tail -n "${2:-15}" "$1" 2>/dev/null | cut -c1-300 | tr '\n' ' ' || true)
    if [[ -n "${text//[[:space:]]/}" ]]; then printf '%s\n' "$text"; else echo "(empty)"; fi
}

now_us() { local t="$EPOCHREALTIME"; echo "${t/./}"; }

# ---------------------------------------------------------------------------------------------
# apt_install PACKAGE...: installs the missing Debian packages (as root; fails otherwise).
# Service starts are forbidden meanwhile (as Docker does): the scripts run private instances on
# their own ports, not the system-wide daemons Debian's maintainer scripts would start. Output
# goes to $apt_log when set.
apt_updated=0
apt_install() {
    local missing=() package
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ "$(id -u)" -ne 0 ]]; then
        warn "missing packages ${missing[*]}: run as root or install them first"
        return 1
    fi
    local added_policy=0 rc=0 out="${apt_log:-/dev/stderr}"
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    log "installing ${missing[*]}"
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -qq >>"$out" 2>&1 || rc=$?
        apt_updated=1
    fi
    [[ $rc -ne 0 ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
        >>"$out" 2>&1 || rc=$?
    [[ $added_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d
    [[ $rc -eq 0 ]] || { [[ -z "${apt_log:-}" ]] || tail -n 20 "$apt_log" >&2; warn "installing ${missing[*]} failed (exit $rc)"; }
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# Ports on 127.0.0.1.

# port_in_use PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a random port below the ephemeral range that no socket uses (listening or not).
free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        if [[ -z "$(ss -Htan "( sport = :$port )" 2>/dev/null)" ]] && ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    warn "no free port found"
    return 1
}

# free_port_from FIRST: from FIRST upwards, the first port nothing listens on.
free_port_from() {
    local port
    for ((port = $1; port < $1 + 200; port++)); do
        port_in_use "$port" || { echo "$port"; return 0; }
    done
    warn "no free port in $1..$port"
    return 1
}

# wait_until SECONDS CMD...: runs CMD every half second until it succeeds; false on timeout.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [[ $SECONDS -lt $deadline ]] || return 1
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# Background processes: start_bg tracks each one; stop_tracked (the EXIT trap) stops them all.
tracked_pids=()

# start_bg LOG CMD...: runs CMD in the background with its output in LOG; sets started_pid and
# started_at_us (epoch microseconds just before the exec).
start_bg() {
    local logf="$1"
    shift
    # shellcheck disable=SC2034 # for the caller
    started_at_us=$(now_us)
    "$@" </dev/null >"$logf" 2>&1 &
    started_pid=$!
    tracked_pids+=("$started_pid")
}

# stop_pid PID [SIGNAL] [SECONDS]: signals PID (TERM), waits up to SECONDS (10) for it to go,
# then kills it.
stop_pid() {
    local pid="$1" sig="${2:-TERM}" wait_s="${3:-10}" i
    [[ -n "$pid" ]] || return 0
    # Out of the job table first, so bash does not report the signal death on stderr.
    disown "$pid" 2>/dev/null || true
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < wait_s * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
}

# stop_tracked: SIGTERM to every tracked process, then each is waited for (5 s) and killed.
stop_tracked() {
    local pid
    for pid in "${tracked_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${tracked_pids[@]}"; do stop_pid "$pid" TERM 5; done
}

# pid_alive PIDFILE PATTERN: the pid in PIDFILE is alive and its command line contains PATTERN
# (so a reused pid is not taken for the process that wrote the file).
pid_alive() {
    [[ -f "$1" ]] || return 1
    local pid
    pid=$(<"$1")
    kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}
