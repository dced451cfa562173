#!/usr/bin/env bash
# Headers sync and serving benchmark between two local btcloopd processes (loopback only).
#
#   bash benches/headers_sync.sh [--runs N] [--count N] [--serve] [--serve-secs S] [--no-build]
#
# 1. Builds the release binaries, mines a COUNT-header regtest chain (default 100,000) with
#    `btcloop-load mkchain` into a temporary data directory A and starts node A on it, listening
#    on 127.0.0.1 (an ephemeral port, read back from A's debug.log).
# 2. RUNS times (default 5): starts node B on a fresh data directory with --connect=A and
#    measures the time from just before B starts to the timestamp of B's debug.log line
#    "Synchronizing blockheaders, height: COUNT " (log timestamps are RFC3339 UTC with
#    microseconds). Prints each time and the median.
# 3. With --serve: runs `btcloop-load headers --peers 8 --inflight 4 --duration 10` against A
#    (still running) and prints its result. `--runs 0 --serve` runs this part only.
#
# Every process started here is stopped, and every temporary directory removed, on exit
# (normal, error or Ctrl-C). Each wait gives up after 60 s.

set -euo pipefail

RUNS=5
COUNT=100000
SERVE=0
SERVE_SECS=10
BUILD=1
TIMEOUT=60

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
        --count) COUNT="${2:?--count needs a value}"; shift 2 ;;
        --serve) SERVE=1; shift ;;
        --serve-secs) SERVE_SECS="${2:?--serve-secs needs a value}"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done
[[ "$RUNS" =~ ^[0-9]+$ ]] || { echo "--runs must be a non-negative integer" >&2; exit 2; }
[[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || { echo "--count must be a positive integer" >&2; exit 2; }
[[ "$SERVE_SECS" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "--serve-secs must be a number" >&2; exit 2; }
if [[ "$RUNS" -eq 0 && "$SERVE" -eq 0 ]]; then
    echo "nothing to do: --runs 0 without --serve" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TMP=""
PIDS=()

# Stops one process we started: SIGTERM, up to 10 s for a clean exit, then SIGKILL.
stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "warning: pid $pid ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid"
    done
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        rm -rf -- "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Removes a pid from PIDS (after stopping it).
forget_pid() {
    local gone="$1" kept=() pid
    for pid in "${PIDS[@]}"; do
        [[ "$pid" == "$gone" ]] || kept+=("$pid")
    done
    PIDS=("${kept[@]}")
}

# wait_for_line FILE FIXED-STRING PID WHAT: waits until FILE holds a line containing
# FIXED-STRING; fails if PID exits or TIMEOUT seconds pass.
wait_for_line() {
    local file="$1" text="$2" pid="$3" what="$4"
    local deadline=$((SECONDS + TIMEOUT))
    while ! grep -qF -- "$text" "$file" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: $what: the node (pid $pid) exited; last log lines:" >&2
            tail -n 20 "$file" >&2 2>/dev/null || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "error: $what: no \"$text\" in $file after ${TIMEOUT} s; last log lines:" >&2
            tail -n 20 "$file" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.05
    done
}

if [[ "$BUILD" -eq 1 ]]; then
    echo "building release binaries..."
    cargo build --release --quiet --bin btcloopd --bin btcloop-load
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
BIN="$TARGET_DIR/release"
for b in btcloopd btcloop-load; do
    [[ -x "$BIN/$b" ]] || { echo "error: $BIN/$b not found (build first, or drop --no-build)" >&2; exit 1; }
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/btcloop-headers-bench.XXXXXX")"
A="$TMP/a"

echo "mining $COUNT regtest headers into $A..."
"$BIN/btcloop-load" mkchain --datadir "$A" --count "$COUNT"

A_LOG="$A/regtest/debug.log"
"$BIN/btcloopd" --regtest --datadir="$A" --bind=127.0.0.1:0 --server=0 --printtoconsole=0 >"$TMP/a.out" 2>&1 &
A_PID=$!
PIDS+=("$A_PID")
wait_for_line "$A_LOG" "Loaded $COUNT headers" "$A_PID" "node A start"
wait_for_line "$A_LOG" "Bound to 127.0.0.1:" "$A_PID" "node A listen"
PORT_A="$(grep -oE 'Bound to 127\.0\.0\.1:[0-9]+' "$A_LOG" | tail -n 1 | sed 's/.*://')"
echo "node A (pid $A_PID) serves $COUNT headers on 127.0.0.1:$PORT_A"

TIMES=()
for ((run = 1; run <= RUNS; run++)); do
    B="$TMP/b$run"
    B_LOG="$B/regtest/debug.log"
    mkdir -p "$B"
    start="$(date +%s.%N)"
    "$BIN/btcloopd" --regtest --datadir="$B" --connect="127.0.0.1:$PORT_A" --server=0 --printtoconsole=0 >"$TMP/b$run.out" 2>&1 &
    B_PID=$!
    PIDS+=("$B_PID")
    wait_for_line "$B_LOG" "Synchronizing blockheaders, height: $COUNT " "$B_PID" "run $run sync"
    line="$(grep -m 1 -F -- "Synchronizing blockheaders, height: $COUNT " "$B_LOG")"
    ts="${line%% *}"
    end="$(date -u -d "$ts" +%s.%N)"
    secs="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')"
    odd="$(grep -cE '\[(warning|error)\]|[Dd]isconnect|Timeout' "$B_LOG" || true)"
    stop_pid "$B_PID"
    forget_pid "$B_PID"
    batches="$(grep -c 'Synchronizing blockheaders, height:' "$B_LOG" || true)"
    rate="$(awk -v n="$COUNT" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0) ? n / s : 0 }')"
    echo "run $run: synced $COUNT headers in $secs s ($rate headers/s, $batches tip updates logged, $odd warning/disconnect lines)"
    if [[ "$odd" -gt 0 ]]; then
        grep -m 5 -E '\[(warning|error)\]|[Dd]isconnect|Timeout' "$B_LOG" | sed 's/^/    B: /'
    fi
    rm -rf -- "$B"
    TIMES+=("$secs")
done

if [[ "$RUNS" -gt 0 ]]; then
    median="$(printf '%s\n' "${TIMES[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
    echo "sync times (s): ${TIMES[*]}"
    echo "median sync time of $COUNT headers over $RUNS runs: $median s"
    echo "{\"bench\":\"headers_sync\",\"count\":$COUNT,\"runs\":$RUNS,\"times\":[$(IFS=,; echo "${TIMES[*]}")],\"median_secs\":$median}"
fi

if [[ "$SERVE" -eq 1 ]]; then
    echo "serving: btcloop-load headers --peers 8 --inflight 4 --duration $SERVE_SECS against node A"
    serve_rc=0
    timeout $((TIMEOUT + ${SERVE_SECS%.*} + 5)) "$BIN/btcloop-load" --connect "127.0.0.1:$PORT_A" headers --peers 8 --inflight 4 \
        --duration "$SERVE_SECS" || serve_rc=$?
    if [[ "$serve_rc" -ne 0 ]]; then
        echo "error: btcloop-load headers exited with status $serve_rc" >&2
        exit 1
    fi
fi

a_odd="$(grep -cE '\[(warning|error)\]' "$A_LOG" || true)"
echo "node A log: $a_odd warning/error lines"
if [[ "$a_odd" -gt 0 ]]; then
    grep -m 5 -E '\[(warning|error)\]' "$A_LOG" | sed 's/^/    A: /'
fi
