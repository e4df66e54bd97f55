#!/bin/sh
# SecurityGateway benchmark: starts `keeld security` with its default
# Argon2id parameters (opslimit 3, memlimit 64 MiB) on a free PORT_OFFSET
# and a temporary data directory, adds an administrator with keelctl, runs
# build/bench/security_bench (validations/s for session tokens and JWTs at
# 1 and 8 clients with the server CPU each cost, login cost), then Redis
# GET at the same concurrency as the peer (a session store's lookup is a
# keyed read), and stops everything it started.
#   usage: bench/security.sh [BUILD] [SECONDS]   (SECONDS: 3, or 1 with BENCH_QUICK=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
seconds=${2:-$(quick_or 3 1)}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null \
    || { echo "security.sh: redis-server and redis-benchmark are needed (apt-get install redis-server redis-tools)" >&2; exit 2; }
dir=$(mktemp -d /tmp/keel-bench-sec-XXXXXX)
offset=$(keel_ports offset 7005 8005 7150)
redis_port=$(keel_ports ports 1)
export PORT_OFFSET=$offset KEEL_DATA_DIR=$dir
"$build/keeld" security >"$dir/keeld.log" 2>&1 &
pid=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    >"$dir/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $pid $redis_pid 2>/dev/null; wait $pid $redis_pid 2>/dev/null; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up
for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((8005 + offset))/health" >/dev/null 2>&1 && break
    sleep 0.1
done
for i in $(seq 1 40); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.25
done
printf 'bench-pass\n' | "$build/keelctl" user add bench --admin --password-stdin >/dev/null
echo "SecurityGateway benchmark (PORT_OFFSET=$offset, $(nproc) CPUs, ${seconds}s per row)"
KEEL_PID=$pid "$build/bench/security_bench" "tcp://127.0.0.1:$((7005 + offset))" bench bench-pass "$seconds" \
    >"$dir/out" || { cat "$dir/out"; exit 1; }
cat "$dir/out"

# The peer: GET of a 64-byte key at the same concurrency, with its CPU.
redis-cli -p "$redis_port" set key:__rand_int__ "$(printf '%064d' 0)" >/dev/null
echo
printf '%-16s %8s %14s %12s\n' "redis GET" clients "gets/s" cpu_us
for c in 1 8; do
    n=$(awk -v c="$c" -v s="$seconds" 'BEGIN { print int((c == 1 ? 20000 : 60000) * s) }')
    r0=$(cpu_s "$redis_pid")
    rps=$(redis-benchmark -p "$redis_port" -c "$c" -n "$n" -t get --csv | awk -F'"' '$2 == "GET" { printf "%.0f", $4 }')
    r1=$(cpu_s "$redis_pid")
    cpu=$(per_req "$r0" "$r1" "$n")
    printf '%-16s %8s %14s %12s\n' "" "$c" "$rps" "$cpu"
    eval "redis_rps_$c=$rps redis_cpu_$c=$cpu"
done

# rows "session 8 26489 0 12.3" and the login line, for the summary table
while read -r kind clients rate failed cpu; do
    case $kind in session|jwt) ;; *) continue ;; esac
    [ "$clients" -ge 0 ] 2>/dev/null || continue
    eval "peer_rps=\$redis_rps_$clients peer_cpu=\$redis_cpu_$clients"
    result security "validate_token, $kind @$clients clients" "$rate" valid/s higher "redis GET" "$peer_rps" \
        "$(goal_at 8 "$clients" 'keel>=100000')"
    if [ "$clients" = 8 ]; then
        result security "server CPU per validate_token, $kind @8" "$cpu" us lower "redis GET" "$peer_cpu" ""
    fi
done <"$dir/out"
login=$(sed -n 's/^login .*: \([0-9.]*\) ms mean.*/\1/p' "$dir/out")
result security "login (Argon2id, service parameters)" "$login" ms lower "" "" ""
