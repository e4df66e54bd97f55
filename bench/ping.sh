#!/bin/sh
# ping: every Keel service's `ping` beside Redis's PING at the same
# concurrency, on the same machine in the same run.  Starts `keeld all` on a
# free PORT_OFFSET with a temp data dir and a redis-server on a free port (no
# persistence), then for each point runs build/bench/ping against one
# service and redis-benchmark right after it: ErrorBus and CoreOrchestrator
# at 1 and 8 clients, all five services at 50, and the floor under all of
# them, bench/zmq_echo (a bare libzmq ROUTER answering as the wire thread
# does), at 8 and 50: what separates a service from the floor is Keel's own
# work, what separates the floor from Redis is ZMQ's.  At 8 it is also the
# ceiling of validate_token at 8 clients (bench/security.sh).  build/bench/ping
# drives its clients as redis-benchmark does (one thread, the protocol
# spoken directly: bench/common/reqload.h).  Each row gives requests/s,
# p99 latency and the server CPU each request cost (from /proc over the
# measured window: the clients, which share the machine, and the warm-up
# are left out), Keel's beside Redis's; one table, then both stopped.
#
#   sh bench/ping.sh [BUILD]     env SECONDS_PER_RUN=3 (1 with BENCH_QUICK=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
seconds=${SECONDS_PER_RUN:-$(quick_or 3 1)}
keeld="$build/keeld"
ping="$build/bench/ping"
echo_server="$build/bench/zmq_echo"
for f in "$keeld" "$ping" "$echo_server" "$build/keelctl"; do
    [ -x "$f" ] || { echo "ping.sh: $f is missing; run make first" >&2; exit 2; }
done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null \
    || { echo "ping.sh: redis-server and redis-benchmark are needed (apt-get install redis-server redis-tools)" >&2; exit 2; }

# A PORT_OFFSET at which every Keel port is free, and one more free port for Redis.
offset=$(keel_ports offset 7000 7001 7002 7003 7005 8000 8001 8002 8003 8005 7150 7151)
set -- $(keel_ports ports 2)
redis_port=$1
echo_port=$2
dir=$(mktemp -d /tmp/keel-bench-XXXXXX)
keeld_pid=
redis_pid=
echo_pid=
cleanup() {
    # a server's exit status (143 after SIGTERM) must not stop the cleanup under set -e
    [ -n "$keeld_pid" ] && kill "$keeld_pid" 2>/dev/null && wait "$keeld_pid" 2>/dev/null || true
    [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null && wait "$echo_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

PORT_OFFSET=$offset KEEL_DATA_DIR=$dir KEEL_LOG_LEVEL=warn KEEL_NVML_LIB=$dir/none.so \
    "$keeld" all >"$dir/keeld.log" 2>&1 &
keeld_pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" >"$dir/redis.log" 2>&1 &
redis_pid=$!
"$echo_server" "tcp://127.0.0.1:$echo_port" >"$dir/echo.log" 2>&1 &
echo_pid=$!

tries=0
until "$build/keelctl" --port-offset "$offset" --timeout 500 status >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ $tries -lt 60 ] || { echo "ping.sh: keeld did not become healthy" >&2; tail "$dir/keeld.log" >&2; exit 1; }
    sleep 0.25
done
tries=0
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ $tries -lt 40 ] || { echo "ping.sh: redis-server did not start" >&2; exit 1; }
    sleep 0.25
done

# Points: service, base port, clients.  The agents ping CoreOrchestrator
# most; ErrorBus's ping is the runtime's own health dict.
points="errorbus:7003:1 errorbus:7003:8 core:7000:1 core:7000:8 core:7000:50 resource:7001:50
observability:7002:50 errorbus:7003:50 security:7005:50 floor:0:8 floor:0:50"
title() {
    case $1 in
        core) echo CoreOrchestrator ;; resource) echo ResourceManager ;;
        observability) echo ObservabilityHub ;; errorbus) echo ErrorBus ;; security) echo SecurityGateway ;;
        floor) echo "bare libzmq ROUTER (floor)" ;;
    esac
}

echo "Keel ping on every service ($seconds s per run) vs redis-server :$redis_port ($(nproc) CPUs)"
printf '%-18s %-7s %10s %8s %10s %8s %6s %11s %11s\n' service clients keel_rps p99_ms redis_rps r_p99_ms \
    ratio keel_cpu_us redis_cpu_us
for point in $points; do
    service=${point%%:*}
    rest=${point#*:}
    port=${rest%%:*}
    c=${rest#*:}
    name=$(title "$service")
    server_pid=$keeld_pid
    endpoint="tcp://127.0.0.1:$((port + offset))"
    if [ "$service" = floor ]; then
        server_pid=$echo_pid
        endpoint="tcp://127.0.0.1:$echo_port"
    fi
    keel=$("$ping" "$endpoint" "$c" "$seconds" "$server_pid")
    krps=$(echo "$keel" | sed 's/.* rps=\([0-9.]*\).*/\1/')
    p99=$(echo "$keel" | sed 's/.* p99_ms=\([0-9.]*\).*/\1/')
    kcpu=$(echo "$keel" | sed 's/.* cpu_us=\([0-9.-]*\).*/\1/')
    # About as many requests as Keel answered, so both runs last alike.
    n=$(awk -v r="$krps" -v s="$seconds" 'BEGIN { n = int(r * s); print (n < 20000 ? 20000 : n) }')
    r0=$(cpu_s "$redis_pid")
    redis=$(redis-benchmark -p "$redis_port" -t ping_mbulk -c "$c" -n "$n" --csv 2>/dev/null \
            | awk -F'"' '$2 == "PING_MBULK" { print $4, $14 }')
    r1=$(cpu_s "$redis_pid")
    rrps=${redis% *}
    rp99=${redis#* }
    ratio=$(ratio "$krps" "$rrps")
    rcpu=$(per_req "$r0" "$r1" "$n")
    printf '%-18s %-7s %10s %8s %10s %8s %6s %11s %11s\n' "$name" "$c" "$krps" "$p99" "$rrps" "$rp99" \
        "$ratio" "$kcpu" "$rcpu"
    goal=$(goal_at 50 "$c" 'ratio>=0.8')
    [ "$service" = floor ] && goal=
    result ping "ping $name @$c clients" "$krps" req/s higher "redis PING" "$(printf '%.0f' "$rrps")" "$goal"
    if [ "$c" = 50 ] || [ "$service" = floor ]; then
        [ "$service" = floor ] && goal= || goal='ratio>=0.5'
        result ping "server CPU per ping, $name @$c" "$kcpu" us lower "redis PING" "$rcpu" "$goal"
        result ping "ping p99, $name @$c" "$p99" ms lower "redis PING" "$rp99" "$goal"
    fi
done
