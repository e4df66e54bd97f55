#!/bin/sh
# observability: ObservabilityHub watching 1,000 simulated agents (one
# process, a ROUTER socket each on loopback, build/bench/observability sim).
# Reports the duration of one full health sweep, the hub's CPU and resident
# memory while it sweeps every 5 s (measured before the scrapes), the
# /metrics scrape time (render included) and size with 1,000 agents, and the scrape time of prometheus-node-exporter on the
# same machine in the same run (skipped with a message when not installed).
# Starts `keeld observability` on a free PORT_OFFSET with a temp data dir,
# prints one table, stops everything it started.
#
#   sh bench/observability.sh [BUILD]     env AGENTS=1000 SCRAPES=50 CPU_SECONDS=20 SWEEPS=3
#                                         (BENCH_QUICK=1: SCRAPES=20 CPU_SECONDS=5 SWEEPS=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
agents=${AGENTS:-1000}
scrapes=${SCRAPES:-$(quick_or 50 20)}
cpu_seconds=${CPU_SECONDS:-$(quick_or 20 5)}
sweep_samples=${SWEEPS:-$(quick_or 3 1)}     # sweep durations read, 5 s apart
keeld="$build/keeld"
bench="$build/bench/observability"
for f in "$keeld" "$bench"; do
    [ -x "$f" ] || { echo "observability.sh: $f is missing (make)" >&2; exit 2; }
done
exporter=$(command -v prometheus-node-exporter || true)

offset=$(keel_ports offset 7002 8002 6584 7150)
base=$(keel_ports range "$agents")
exporter_port=$(keel_ports ports 1)
dir=$(mktemp -d /tmp/keel-bench-obs-XXXXXX)
sim_pid= keeld_pid= exporter_pid=
cleanup() {
    # an exit status of 143 after SIGTERM must not stop the cleanup under set -e
    for pid in $keeld_pid $sim_pid $exporter_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

/usr/bin/python3 - "$agents" "$base" >"$dir/keel.yaml" <<'PY'
import json, sys
n, base = int(sys.argv[1]), int(sys.argv[2])
agents = [{"name": "sim%04d" % i, "host": "127.0.0.1", "port": base + i,
           "machine": "MainPC" if i % 2 else "PC2"} for i in range(n)]
print(json.dumps({"observability": {"agents": agents, "interval_s": 5, "timeout_ms": 2000,
                                    "discover": False, "memory_services": {"enabled": False}}}))
PY

"$bench" sim "$base" "$agents" >"$dir/sim.log" 2>&1 &
sim_pid=$!
until grep -q ready "$dir/sim.log" 2>/dev/null; do
    kill -0 "$sim_pid" 2>/dev/null || { cat "$dir/sim.log" >&2; exit 1; }
    sleep 0.05
done

PORT_OFFSET=$offset KEEL_DATA_DIR=$dir KEEL_LOG_LEVEL=warn "$keeld" observability --config "$dir/keel.yaml" \
    >"$dir/keeld.log" 2>&1 &
keeld_pid=$!
metrics="http://127.0.0.1:$((8002 + offset))/metrics"
gauge() {
    curl -sf "$metrics" | awk -v name="$1" '$1 == name { print $2 }'
}
tries=0
until [ "$(gauge keel_health_sweeps_total 2>/dev/null || echo 0)" -ge 3 ] 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || { echo "observability.sh: hub did not sweep" >&2; cat "$dir/keeld.log" >&2; exit 1; }
    sleep 0.05
done

sweeps=
for i in $(seq "$sweep_samples"); do
    sweeps="$sweeps $(gauge keel_health_sweep_duration_seconds)"
    if [ "$i" -lt "$sweep_samples" ]; then sleep 5; fi
done
up=$(curl -sf "$metrics" | grep -c '^keel_agent_up{.*} 1$' || true)
hub_proc=$("$bench" proc "$keeld_pid" "$cpu_seconds")
hub_scrape=$("$bench" scrape "$metrics" "$scrapes")
rss_after=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$keeld_pid/status")

exporter_scrape="skipped: prometheus-node-exporter is not installed"
if [ -n "$exporter" ]; then
    "$exporter" --web.listen-address="127.0.0.1:$exporter_port" >"$dir/exporter.log" 2>&1 &
    exporter_pid=$!
    tries=0
    until curl -sf "http://127.0.0.1:$exporter_port/metrics" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 200 ] || break
        sleep 0.05
    done
    exporter_scrape=$("$bench" scrape "http://127.0.0.1:$exporter_port/metrics" "$scrapes")
fi

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
printf '\nObservabilityHub, %d simulated agents, sweep every 5 s (%s)\n' "$agents" "$(nproc) cores"
printf '%-44s %s\n' "metric" "value"
printf '%-44s %s\n' "agents up after sweeps" "$up / $agents"
for s in $sweeps; do
    printf '%-44s %.1f ms\n' "health sweep duration" "$(echo "$s" | awk '{ print $1 * 1000 }')"
done
printf '%-44s %s bytes\n' "/metrics size (hub)" "$(field "$hub_scrape" bytes)"
printf '%-44s %s / %s / %s ms\n' "/metrics scrape min/median/p95 (hub)" "$(field "$hub_scrape" min_ms)" \
    "$(field "$hub_scrape" median_ms)" "$(field "$hub_scrape" p95_ms)"
if [ -n "$exporter" ]; then
    printf '%-44s %s bytes\n' "/metrics size (node-exporter)" "$(field "$exporter_scrape" bytes)"
    printf '%-44s %s / %s / %s ms\n' "/metrics scrape min/median/p95 (node-exporter)" \
        "$(field "$exporter_scrape" min_ms)" "$(field "$exporter_scrape" median_ms)" "$(field "$exporter_scrape" p95_ms)"
else
    printf '%-44s %s\n' "node-exporter comparison" "$exporter_scrape"
fi
printf '%-44s %s %%\n' "hub CPU over ${cpu_seconds} s" "$(field "$hub_proc" cpu_percent)"
printf '%-44s %s MB\n' "hub RSS (median of 100 ms samples)" "$(field "$hub_proc" rss_mb)"
printf '%-44s %s MB\n' "hub RSS (largest sample)" "$(field "$hub_proc" rss_max_mb)"
printf '%-44s %s MB\n' "hub RSS peak (VmHWM, includes start)" "$(field "$hub_proc" hwm_mb)"
printf '%-44s %s MB\n' "hub RSS after the ${scrapes} scrapes" "$rss_after"

slowest_ms=$(echo $sweeps | tr ' ' '\n' | awk '{ ms = $1 * 1000; if (ms > max) max = ms } END { printf "%.1f", max }')
result observability "health sweep of $agents agents (slowest of $sweep_samples)" "$slowest_ms" ms lower "" "" 'keel<1000'
result observability "agents seen up by the sweeps" "$up" agents higher "" "" "keel>=$agents"
peer_ms=
peer_name="node-exporter (absent)"
if [ -n "$exporter" ]; then
    peer_ms=$(field "$exporter_scrape" median_ms)
    peer_name=node-exporter
fi
result observability "/metrics scrape median, $agents agents" "$(field "$hub_scrape" median_ms)" ms lower \
    "$peer_name" "$peer_ms" ""
result observability "hub RSS while sweeping (median)" "$(field "$hub_proc" rss_mb)" MB lower "" "" 'keel<25'
result observability "hub RSS peak (VmHWM)" "$(field "$hub_proc" hwm_mb)" MB lower "" "" ""
result observability "hub CPU, sweeping every 5 s" "$(field "$hub_proc" cpu_percent)" % lower "" "" ""
