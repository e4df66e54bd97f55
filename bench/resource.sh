#!/bin/sh
# resource: the ResourceManager+Scheduler task pipeline (enqueue -> journal
# -> dispatch -> completion) in tasks per second from 1, 8 and 50
# producers, beside beanstalkd (put -> reserve -> delete, as many
# consumers as producers) at the same concurrency in the same run; then
# the latency of allocate_resources with 10,000 live reservations.
#
# Keel is run twice: with the journal durable (fsync on every group
# commit, the default) and with resource.scheduler.durable false (a commit
# survives kill -9 but not a power cut).  beanstalkd is run twice to match:
# in memory (its default) and with a binlog fsynced on every write (-b -f0).
#
#   sh bench/resource.sh [BUILD]     env TASKS=4000 (per run; 1000 with BENCH_QUICK=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
tasks=${TASKS:-$(quick_or 4000 1000)}
samples=$(quick_or 2000 500)
keeld="$build/keeld"
bench="$build/bench/resource_bench"
beanstalkd=${BEANSTALKD:-/usr/bin/beanstalkd}
for f in "$keeld" "$bench" "$beanstalkd"; do
    [ -x "$f" ] || { echo "resource.sh: $f is missing (make; apt-get install beanstalkd)" >&2; exit 2; }
done

offset=$(keel_ports offset --span 2 7001 8001 7150)
set -- $(keel_ports ports 2)
bs_mem_port=$1
bs_disk_port=$2
tmp=$(mktemp -d /tmp/keel-bench-resource.XXXXXX)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

start_keel() {   # $1: durable true|false, $2: port offset
    mkdir -p "$tmp/keel-$1"
    printf 'resource:\n  scheduler:\n    durable: %s\n' "$1" >"$tmp/keel-$1/keel.yaml"
    KEEL_NVML_LIB="$tmp/none.so" "$keeld" resource --config "$tmp/keel-$1/keel.yaml" \
        --data-dir "$tmp/keel-$1" --port-offset "$2" >"$tmp/keel-$1.log" 2>&1 &
    pids="$pids $!"
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$((8001 + $2))/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "resource.sh: keeld did not start:" >&2
    cat "$tmp/keel-$1.log" >&2
    exit 1
}

start_keel true "$offset"
start_keel false "$((offset + 1))"
"$beanstalkd" -l 127.0.0.1 -p "$bs_mem_port" &
pids="$pids $!"
mkdir -p "$tmp/binlog"
"$beanstalkd" -l 127.0.0.1 -p "$bs_disk_port" -b "$tmp/binlog" -f 0 &
pids="$pids $!"
sleep 0.3

rate() { sed -n 's/.* rate \([0-9]*\).*/\1/p'; }
ep_durable="tcp://127.0.0.1:$((7001 + offset))"
ep_fast="tcp://127.0.0.1:$((7001 + offset + 1))"

printf '\nResourceManager+Scheduler: tasks/s, enqueue -> dispatch -> completion (%d tasks per run)\n' "$tasks"
printf '%-10s %14s %14s %14s %14s %10s %10s\n' producers "keel durable" "bs -b -f0" "keel no-fsync" "bs memory" "ratio dur" "ratio mem"
for p in 1 8 50; do
    kd=$(KEEL_DATA_DIR="$tmp/keel-true" "$bench" tasks "$ep_durable" "$p" "$tasks" | rate)
    bd=$("$bench" beanstalk 127.0.0.1 "$bs_disk_port" "$p" "$tasks" | rate)
    kf=$(KEEL_DATA_DIR="$tmp/keel-false" "$bench" tasks "$ep_fast" "$p" "$tasks" | rate)
    bm=$("$bench" beanstalk 127.0.0.1 "$bs_mem_port" "$p" "$tasks" | rate)
    printf '%-10s %14s %14s %14s %14s %10s %10s\n' "$p" "$kd" "$bd" "$kf" "$bm" \
        "$(awk "BEGIN{printf \"%.2fx\", $kd/$bd}")" "$(awk "BEGIN{printf \"%.2fx\", $kf/$bm}")"
    result resource "tasks/s durable @$p producers" "$kd" tasks/s higher "beanstalkd -b -f0" "$bd" ""
    result resource "tasks/s no fsync @$p producers" "$kf" tasks/s higher "beanstalkd memory" "$bm" ""
done

printf '\nallocate_resources latency with 10000 live reservations (%d samples)\n' "$samples"
alloc=$(KEEL_DATA_DIR="$tmp/keel-false" "$bench" alloc "$ep_fast" 10000 "$samples") || true     # failures are in the line
echo "$alloc" | awk '{printf "mean %s us   p50 %s us   p99 %s us   failures %s\n", $9, $11, $13, $7}'
result resource "allocate_resources p50, 10k live" "$(echo "$alloc" | awk '{print $11}')" us lower "" "" ""
result resource "allocate_resources p99, 10k live" "$(echo "$alloc" | awk '{print $13}')" us lower "" "" ""
