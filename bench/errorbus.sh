#!/bin/sh
# errorbus: events per second ingested and durably stored (committed to
# SQLite) by the ErrorBus from 1, 4 and 16 publishers, with the count lost,
# beside the same event stream through nats-server (C libnats publishers ->
# server -> one subscriber) in the same run.  Starts `keeld errorbus` on a
# free PORT_OFFSET with a temp data dir and nats-server on a free port,
# runs build/bench/errorbus, prints one table, stops both.
#
#   sh bench/errorbus.sh [BUILD]     env EVENTS=200000 (per run; 50000 with BENCH_QUICK=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
events=${EVENTS:-$(quick_or 200000 50000)}
keeld="$build/keeld"
bench="$build/bench/errorbus"
nats_server=${NATS_SERVER:-/usr/sbin/nats-server}
for f in "$keeld" "$bench" "$nats_server"; do
    [ -x "$f" ] || { echo "errorbus.sh: $f is missing (make; apt-get install nats-server)" >&2; exit 2; }
done

offset=$(keel_ports offset 7003 8003 7150 7151)
nats_port=$(keel_ports ports 1)
dir=$(mktemp -d /tmp/keel-bench-errorbus-XXXXXX)
keeld_pid=
nats_pid=
cleanup() {
    # nats-server exits non-zero on SIGTERM; that must not stop the cleanup under set -e
    [ -n "$keeld_pid" ] && kill "$keeld_pid" 2>/dev/null && wait "$keeld_pid" 2>/dev/null || true
    [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

PORT_OFFSET=$offset KEEL_DATA_DIR=$dir KEEL_LOG_LEVEL=warn "$keeld" errorbus >"$dir/keeld.log" 2>&1 &
keeld_pid=$!
"$nats_server" -a 127.0.0.1 -p "$nats_port" >"$dir/nats.log" 2>&1 &
nats_pid=$!

tries=0
until curl -sf "http://127.0.0.1:$((8003 + offset))/health" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 200 ] || { echo "errorbus.sh: keeld did not become healthy" >&2; cat "$dir/keeld.log" >&2; exit 1; }
    sleep 0.05
done

ingress="tcp://127.0.0.1:$((7150 + offset))"
query="tcp://127.0.0.1:$((7003 + offset))"
results="$dir/results"
: >"$results"
for p in 1 4 16; do
    "$bench" zmq "$ingress" "$query" "$p" "$events" >>"$results"
done
for p in 1 4 16; do
    "$bench" nats "nats://127.0.0.1:$nats_port" "$p" "$events" >>"$results"
done

/usr/bin/python3 - "$results" "$events" "$dir/rows" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
# one line per publisher count for the RESULT lines: p keel_rate nats_rate
by = {}
for r in rows:
    by.setdefault(r["publishers"], {})[r["mode"]] = r
with open(sys.argv[3], "w") as out:
    for p in sorted(by):
        out.write("%d %d %d\n" % (p, by[p].get("zmq", {}).get("rate", 0), by[p].get("nats", {}).get("rate", 0)))
    out.write("lost %d %d\n" % (sum(r["lost"] for r in rows if r["mode"] == "zmq"),
                                sum(r["lost"] for r in rows if r["mode"] == "nats")))
import os
print("ErrorBus ingest (stored = committed to SQLite) vs nats-server pass-through, %s events per run"
      % sys.argv[2])
print("host: %d CPUs, load average %.2f (publishers, bus and server share them)"
      % (os.cpu_count(), os.getloadavg()[0]))
print("%-28s %10s %10s %8s %10s" % ("path", "publishers", "events/s", "lost", "elapsed_s"))
for r in rows:
    path = "errorbus 7150 -> SQLite" if r["mode"] == "zmq" else "nats pub -> server -> sub"
    print("%-28s %10d %10d %8d %10.2f" % (path, r["publishers"], r["rate"], r["lost"], r["elapsed_s"]))
PY

while read -r p keel nats; do
    if [ "$p" = lost ]; then
        result errorbus "events lost, all runs" "$keel" events lower "nats-server" "$nats" 'keel==0'
    else
        result errorbus "events/s stored @$p publishers" "$keel" events/s higher "nats-server pub->sub" \
            "$nats" 'keel>=250000'
    fi
done <"$dir/rows"
