#!/bin/sh
# core.sh: CoreOrchestrator registry throughput beside Redis, in one run.
# Starts keeld core (SQLite backend, durable commits) and a redis-server on
# free ports with a temporary directory, measures register_agent and
# get_agent_endpoint per second at 1, 8 and 50 clients with
# build/bench/core_registry, and redis-benchmark SET and GET at the same
# concurrency, prints a table, and stops everything it started.
#
#   sh bench/core.sh [BUILD]     env SECONDS_PER_POINT=3 (1 with BENCH_QUICK=1)
#   sh bench/core.sh SECONDS     (the older form; BUILD from KEEL_BUILD)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
case ${1:-} in
    *[!0-9.]*) BUILD=$1 ;;                                  # a build directory
    "") BUILD=${KEEL_BUILD:-build} ;;
    *) BUILD=${KEEL_BUILD:-build}; SECONDS_PER_POINT=$1 ;;   # a number of seconds
esac
SECONDS_PER_POINT=${SECONDS_PER_POINT:-$(quick_or 3 1)}
REQUESTS_PER_CLIENT=$(quick_or 20000 4000)                 # redis-benchmark -n per client
for f in "$BUILD/keeld" "$BUILD/bench/core_registry"; do
    [ -x "$f" ] || { echo "core.sh: $f is missing; run make first" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/keel-bench-core.XXXXXX)
KEELD_PID=""
REDIS_PID=""
cleanup() {
    [ -n "$KEELD_PID" ] && kill "$KEELD_PID" 2>/dev/null && wait "$KEELD_PID" 2>/dev/null || true
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

# a PORT_OFFSET where CoreOrchestrator's ports are free, and a port for Redis
OFFSET=$(keel_ports offset 7000 8000 5591)
REDIS_PORT=$(keel_ports ports 1)
/usr/bin/redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!

# the registration benchmark creates a new name per request from one address:
# the per-source limit on new names would measure refusals instead
printf 'metrics_source: mock\ncore:\n  coordinator: {interrupt_endpoint: "", language_endpoint: ""}\n  registry: {new_names: {burst: 0}}\n' >"$TMP/keel.yaml"
PORT_OFFSET=$OFFSET KEEL_DATA_DIR="$TMP/data" "$BUILD/keeld" core --config "$TMP/keel.yaml" \
    >"$TMP/keeld.log" 2>&1 &
KEELD_PID=$!
for i in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$((8000 + OFFSET))/health" >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null

ENDPOINT="tcp://127.0.0.1:$((7000 + OFFSET))"
printf '%-8s | %14s %14s %10s | %14s %14s %10s\n' clients register/s "redis SET/s" ratio lookup/s "redis GET/s" ratio
for c in 1 8 50; do
    reg=$("$BUILD/bench/core_registry" "$ENDPOINT" register "$c" "$SECONDS_PER_POINT" | awk '{print $5}')
    look=$("$BUILD/bench/core_registry" "$ENDPOINT" lookup "$c" "$SECONDS_PER_POINT" | awk '{print $5}')
    n=$(( c * REQUESTS_PER_CLIENT ))
    rset=$(redis-benchmark -p "$REDIS_PORT" -c "$c" -n "$n" -t set --csv | awk -F'"' '$2 == "SET" {printf "%.0f", $4}')
    rget=$(redis-benchmark -p "$REDIS_PORT" -c "$c" -n "$n" -t get --csv | awk -F'"' '$2 == "GET" {printf "%.0f", $4}')
    printf '%-8s | %14s %14s %10.2f | %14s %14s %10.2f\n' "$c" "$reg" "$rset" \
        "$(echo "$reg / $rset" | bc -l)" "$look" "$rget" "$(echo "$look / $rget" | bc -l)"
    result core "register_agent @$c clients (durable)" "$reg" req/s higher "redis SET" "$rset" \
        "$(goal_at 50 "$c" 'ratio>=0.3')"
    result core "get_agent_endpoint @$c clients" "$look" req/s higher "redis GET" "$rget" \
        "$(goal_at 50 "$c" 'ratio>=0.7')"
done
