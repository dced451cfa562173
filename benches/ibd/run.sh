#!/usr/bin/env bash
# Initial block download benchmark: btcloopd -> btcloopd against bitcoind -> bitcoind, regtest,
# loopback only.
#
#   bash benches/ibd/run.sh [--runs N] [--chains coinbase,full] [--impls btcloopd,bitcoind]
#       [--coinbase-blocks N] [--full-blocks N] [--spends N] [--ping-gap-us US]
#       [--ping-from headers|start] [--renice PREFIX=N]... [--timeout S] [--stall S] [--logs DIR]
#       [--v2] [--no-build]
#
# For each chain:
#   coinbase  --coinbase-blocks (default 20,000) blocks holding only their coinbase;
#   full      101 set-up blocks, then --full-blocks (default 500) blocks of --spends (default
#             16,000) transactions spending the block before's outputs: about 976 kB each.
# 1. `btcloop-load mkblocks` builds the chain into a block file (block times end now).
# 2. For each implementation a source node is started and loaded with the blocks through its
#    `submitblock` RPC (`btcloop-load submit`, which checks the tip).
# 3. RUNS rounds (default 3), implementations alternating within a round: a fresh downloading
#    node, connected only to its own kind of source (--connect), is started; `btcloop-load ibd`
#    times from just before its launch until its getblockchaininfo `blocks` is the tip (polled
#    every 100 ms) while a third peer (btcloop-load, v1; with --v2 over BIP324 v2) pings it, one
#    ping in flight and --ping-gap-us (default 1000) between a pong and the next ping, and reads
#    its CPU time per thread at the end. The pinging peer connects once the node has its first
#    headers (so the node has chosen its source as headers-sync peer; --ping-from start: as
#    soon as it listens).
#    The downloading node is stopped and its data removed before the next run.
#    A run fails when the node's `blocks` stays the same for --stall seconds (default 60), or
#    after --timeout seconds (default 1800); it is reported as FAIL with the height reached (and
#    the node's first warnings), and the benchmark goes on.
# 4. Prints every run and, per chain and implementation, the median time of the runs that
#    reached the tip and the medians of every run's ping figures.
#
# --renice PREFIX=N (repeatable; an experiment) gives the downloading node's threads whose names
# start with PREFIX the nice value N (e.g. btcloop-validat=10 b-=10: btcloopd's validation
# thread and the kernel's workers), to see how much of the ping latency is CPU scheduling.
#
# Every bitcoind runs with -checkblockindex=1 (the kernel that btcloopd uses keeps that check on
# for regtest: the same validation work) and -v2transport=0, every btcloopd with --v2transport=0
# (both pairs talk v1). --v2: every node with v2 on instead (-v2transport=1, --v2transport=1, so
# each pair talks BIP324 v2) and the pinging peer over v2 (btcloop-load --v2).
# Every process started here is stopped, and the temporary directory
# under /tmp removed, on exit (normal, error
# or Ctrl-C). bitcoind comes from $BTCLOOP_BITCOIND or scripts/build-bitcoind.

set -euo pipefail

RUNS=3
CHAINS="coinbase,full"
IMPLS="btcloopd,bitcoind"
COINBASE_BLOCKS=20000
FULL_BLOCKS=500
SPENDS=16000
PING_GAP_US=1000
PING_FROM=headers
TIMEOUT=1800
STALL=60
LOGS=""
BUILD=1
RENICE=()
V2=0

usage() {
    sed -n '2,42p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
        --chains) CHAINS="${2:?--chains needs a value}"; shift 2 ;;
        --impls) IMPLS="${2:?--impls needs a value}"; shift 2 ;;
        --coinbase-blocks) COINBASE_BLOCKS="${2:?--coinbase-blocks needs a value}"; shift 2 ;;
        --full-blocks) FULL_BLOCKS="${2:?--full-blocks needs a value}"; shift 2 ;;
        --spends) SPENDS="${2:?--spends needs a value}"; shift 2 ;;
        --ping-gap-us) PING_GAP_US="${2:?--ping-gap-us needs a value}"; shift 2 ;;
        --ping-from) PING_FROM="${2:?--ping-from needs a value}"; shift 2 ;;
        --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
        --stall) STALL="${2:?--stall needs a value}"; shift 2 ;;
        --logs) LOGS="${2:?--logs needs a value}"; shift 2 ;;
        --renice) RENICE+=(--renice "${2:?--renice needs a value}"); shift 2 ;;
        --v2) V2=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done
for v in RUNS COINBASE_BLOCKS FULL_BLOCKS SPENDS TIMEOUT STALL; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "--$(tr _ - <<<"${v,,}") must be a positive integer" >&2; exit 2; }
done
[[ "$PING_GAP_US" =~ ^[0-9]+$ ]] || { echo "--ping-gap-us must be a non-negative integer" >&2; exit 2; }
[[ "$PING_FROM" == headers || "$PING_FROM" == start ]] || { echo "--ping-from must be headers or start" >&2; exit 2; }
LOAD_V2=()
if [[ "$V2" -eq 1 ]]; then LOAD_V2=(--v2); fi
IFS=, read -r -a CHAIN_LIST <<<"$CHAINS"
IFS=, read -r -a IMPL_LIST <<<"$IMPLS"
for c in "${CHAIN_LIST[@]}"; do
    [[ "$c" == coinbase || "$c" == full ]] || { echo "unknown chain: $c (coinbase, full)" >&2; exit 2; }
done
for i in "${IMPL_LIST[@]}"; do
    [[ "$i" == btcloopd || "$i" == bitcoind ]] || { echo "unknown implementation: $i (btcloopd, bitcoind)" >&2; exit 2; }
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

TMP=""
PIDS=()

# Stops one process we started: SIGTERM, up to 120 s for a clean exit (a node flushes its
# chainstate), then SIGKILL.
stop_pid() {
    local pid="$1" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "warning: pid $pid ignored SIGTERM for 120 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Removes a pid from PIDS.
forget_pid() {
    local gone="$1" kept=() pid
    for pid in "${PIDS[@]}"; do
        [[ "$pid" == "$gone" ]] || kept+=("$pid")
    done
    PIDS=("${kept[@]}")
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

# A free TCP port on loopback (not listening now, not handed out before by this script).
USED_PORTS=" "
free_port() {
    local p
    while true; do
        p=$((20000 + RANDOM % 40000))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
        USED_PORTS+="$p "
        echo "$p"
        return 0
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
LOAD="$BIN/btcloop-load"
if [[ " ${IMPL_LIST[*]} " == *" bitcoind "* ]]; then
    BITCOIND="${BTCLOOP_BITCOIND:-$(scripts/build-bitcoind)}"
    [[ -x "$BITCOIND" ]] || { echo "error: no bitcoind at $BITCOIND" >&2; exit 1; }
    echo "bitcoind: $BITCOIND ($("$BITCOIND" -version | head -n 1))"
fi
echo "btcloopd: $BIN/btcloopd ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

TMP="$(mktemp -d /tmp/btcloop-ibd-bench.XXXXXX)"
if [[ -n "$LOGS" ]]; then
    mkdir -p "$LOGS"
fi

# start_node IMPL DIR P2P RPC CONNECT: starts a node in the background (CONNECT: a P2P port to
# connect to only, or "" for none) and sets NODE_PID.
start_node() {
    local impl="$1" dir="$2" p2p="$3" rpc="$4" connect="$5"
    mkdir -p "$dir"
    if [[ "$impl" == btcloopd ]]; then
        local args=(--regtest "--datadir=$dir" --listen=1 "--bind=127.0.0.1:$p2p" "--rpcport=$rpc"
            --dnsseed=0 --fixedseeds=0 --discover=0 --printtoconsole=0 "--v2transport=$V2")
        if [[ -n "$connect" ]]; then args+=("--connect=127.0.0.1:$connect"); else args+=(--connect=0); fi
        "$BIN/btcloopd" "${args[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt" &
    else
        local args=(-regtest "-datadir=$dir" -listen=1 "-bind=127.0.0.1:$p2p" -rpcbind=127.0.0.1
            -rpcallowip=127.0.0.1 "-rpcport=$rpc" -dnsseed=0 -fixedseeds=0 -listenonion=0 -discover=0
            -natpmp=0 -checkblockindex=1 "-v2transport=$V2" -printtoconsole=0)
        if [[ -n "$connect" ]]; then args+=("-connect=127.0.0.1:$connect"); else args+=(-connect=0); fi
        "$BITCOIND" "${args[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt" &
    fi
    NODE_PID=$!
    PIDS+=("$NODE_PID")
}

# json_num FILE KEY: the number KEY has in FILE's last JSON line.
json_num() {
    grep '^{' "$1" | tail -n 1 | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"
}

# median of the arguments.
median() {
    if [[ $# -eq 0 ]]; then echo "-"; return 0; fi
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

SUMMARY=()

for chain in "${CHAIN_LIST[@]}"; do
    FILE="$TMP/$chain.blk"
    echo
    echo "=== chain: $chain ==="
    if [[ "$chain" == coinbase ]]; then
        "$LOAD" mkblocks --kind coinbase --count "$COINBASE_BLOCKS" --out "$FILE" | tee "$TMP/mkblocks.out"
    else
        "$LOAD" mkblocks --kind full --count "$FULL_BLOCKS" --spends "$SPENDS" --out "$FILE" | grep -v '^  ' | tee "$TMP/mkblocks.out"
    fi
    HEIGHT="$(json_num "$TMP/mkblocks.out" height)"
    TIP="$(grep '^{' "$TMP/mkblocks.out" | sed -n 's/.*"tip":"\([0-9a-f]*\)".*/\1/p')"

    declare -A SRC_P2P=()
    declare -A SRC_PID=()
    for impl in "${IMPL_LIST[@]}"; do
        dir="$TMP/src-$impl"
        p2p="$(free_port)"
        rpc="$(free_port)"
        start_node "$impl" "$dir" "$p2p" "$rpc" ""
        SRC_P2P[$impl]="$p2p"
        SRC_PID[$impl]="$NODE_PID"
        echo "loading source $impl (pid $NODE_PID, P2P 127.0.0.1:$p2p) with $HEIGHT blocks..."
        "$LOAD" submit --rpc "127.0.0.1:$rpc" --cookie "$dir/regtest/.cookie" --blocks "$FILE" >"$TMP/submit.out" 2>&1 &
        loader=$!
        PIDS+=("$loader")
        rc=0
        wait "$loader" || rc=$?
        forget_pid "$loader"
        if [[ "$rc" -ne 0 ]]; then
            cat "$TMP/submit.out" >&2
            echo "error: loading the $impl source failed; its log ends with:" >&2
            tail -n 20 "$dir/regtest/debug.log" >&2 2>/dev/null || true
            exit 1
        fi
        grep -v '^[{ ]' "$TMP/submit.out"
    done
    rm -f -- "$FILE"

    declare -A TIMES=() P50=() P99=() MAXS=() PINGS=() CPU=() FAILS=()
    for ((run = 1; run <= RUNS; run++)); do
        for impl in "${IMPL_LIST[@]}"; do
            dir="$TMP/dl-$impl-$run"
            p2p="$(free_port)"
            rpc="$(free_port)"
            out="$TMP/ibd-$chain-$impl-$run.out"
            start="$(date +%s.%N)"
            start_node "$impl" "$dir" "$p2p" "$rpc" "${SRC_P2P[$impl]}"
            pid="$NODE_PID"
            # In the background, waited for: a signal reaches the traps at once.
            "$LOAD" --connect "127.0.0.1:$p2p" "${LOAD_V2[@]}" ibd --rpc "127.0.0.1:$rpc" --cookie "$dir/regtest/.cookie" \
                --height "$HEIGHT" --tip "$TIP" --since "$start" --pid "$pid" --timeout "$TIMEOUT" --stall "$STALL" \
                --ping-gap-us "$PING_GAP_US" --ping-from "$PING_FROM" "${RENICE[@]}" >"$out" 2>&1 &
            watch=$!
            PIDS+=("$watch")
            rc=0
            wait "$watch" || rc=$?
            forget_pid "$watch"
            stop_pid "$pid"
            forget_pid "$pid"
            if [[ -n "$LOGS" ]]; then
                cp -- "$out" "$LOGS/" 2>/dev/null || true
                cp -- "$dir/regtest/debug.log" "$LOGS/debug-$chain-$impl-$run.log" 2>/dev/null || true
            fi
            if ! grep -q '^{' "$out"; then
                cat "$out" >&2
                echo "error: $chain run $run ($impl): btcloop-load ibd failed (status $rc); the node's log ends with:" >&2
                tail -n 20 "$dir/regtest/debug.log" >&2 2>/dev/null || true
                exit 1
            fi
            echo "$chain run $run $impl: $(grep -E '^(height|FAILED|pings|slowest|node CPU|pinging stopped|threads reniced)' "$out" | tr '\n' ' ')"
            # Pings and CPU of every run (a failed one's until it failed); times of those that
            # reached the tip.
            P50[$impl]+="$(json_num "$out" p50_us) "
            P99[$impl]+="$(json_num "$out" p99_us) "
            MAXS[$impl]+="$(json_num "$out" max_us) "
            PINGS[$impl]+="$(json_num "$out" pings) "
            CPU[$impl]+="$(json_num "$out" cpu_secs) "
            if grep '^{' "$out" | tail -n 1 | grep -q '"ok":true'; then
                TIMES[$impl]+="$(json_num "$out" secs) "
            else
                FAILS[$impl]+="FAIL@$(json_num "$out" reached)/$(json_num "$out" secs)s "
                echo "  the node's first warnings:"
                grep -E '\[(warning|error)\]' "$dir/regtest/debug.log" 2>/dev/null | sort -u -k2 | head -n 5 | sed 's/^/    /' || true
            fi
            rm -rf -- "$dir"
        done
    done

    for impl in "${IMPL_LIST[@]}"; do
        stop_pid "${SRC_PID[$impl]}"
        forget_pid "${SRC_PID[$impl]}"
        rm -rf -- "$TMP/src-$impl"
        read -r -a t <<<"${TIMES[$impl]:-}"
        read -r -a p50 <<<"${P50[$impl]:-}"
        read -r -a p99 <<<"${P99[$impl]:-}"
        read -r -a mx <<<"${MAXS[$impl]:-}"
        read -r -a n <<<"${PINGS[$impl]:-}"
        read -r -a cpu <<<"${CPU[$impl]:-}"
        SUMMARY+=("| $chain ($HEIGHT blocks) | $impl->$impl | $(median "${t[@]}") | ${t[*]} ${FAILS[$impl]:-}| $(median "${p50[@]}") | $(median "${p99[@]}") | $(median "${mx[@]}") | ${p99[*]} | ${mx[*]} | ${n[*]} | ${cpu[*]} |")
    done
    unset SRC_P2P SRC_PID TIMES P50 P99 MAXS PINGS CPU FAILS
done

echo
echo "=== results: $RUNS runs each, medians, transport v$((V2 + 1)), ping gap $PING_GAP_US us, pings from $PING_FROM${RENICE[*]:+, ${RENICE[*]}}; load average now $(cut -d' ' -f1-3 /proc/loadavg) ==="
echo "| chain | download | median s | runs s | ping p50 us | ping p99 us | ping max us | p99 per run | max per run | pings per run | node CPU s per run |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
