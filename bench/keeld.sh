#!/bin/sh
# keeld: the whole of `keeld all`, one process running the five services.
#
#   start-up   exec to every service's GET /health answering 200, the
#              median of STARTS starts, each on a fresh data dir (schema
#              creation included, so it is the slower, first-boot case);
#              also SIGTERM to exit for the same starts
#   idle       resident memory (median of 100 ms VmRSS samples over 2 s)
#              and CPU, SETTLE seconds after start, no client connected
#   load       the largest VmRSS sampled every 100 ms, and CPU, while
#              build/bench/ping drives 50 REQ clients in all (10 at each of
#              the five services) for LOAD_SECONDS
#
# There is no peer process for these rows: they size the binary that
# replaces the fifteen Python agents.  Starts everything on a free
# PORT_OFFSET with temp data dirs and stops everything it started.
#
#   sh bench/keeld.sh [BUILD]   env STARTS=5 SETTLE=3 LOAD_SECONDS=5
#                                   (BENCH_QUICK=1: STARTS=3 SETTLE=1 LOAD_SECONDS=2)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
starts=${STARTS:-$(quick_or 5 3)}
settle=${SETTLE:-$(quick_or 3 1)}
load_seconds=${LOAD_SECONDS:-$(quick_or 5 2)}
keeld="$build/keeld"
ping="$build/bench/ping"
proc="$build/bench/observability"        # its `proc PID SECONDS` samples CPU and VmRSS
for f in "$keeld" "$ping" "$proc"; do
    [ -x "$f" ] || { echo "keeld.sh: $f is missing; run make first" >&2; exit 2; }
done

offset=$(keel_ports offset 7000 7001 7002 7003 7005 8000 8001 8002 8003 8005 7150 7151)
dir=$(mktemp -d /tmp/keel-bench-keeld-XXXXXX)
keeld_pid=
ping_pids=
cleanup() {
    # an exit status of 143 after SIGTERM must not stop the cleanup under set -e
    for pid in $ping_pids $keeld_pid; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up

# ---- start-up and stop: timed from inside one Python process, so neither
# the interpreter's start nor a shell loop's curl forks count.
/usr/bin/python3 - "$keeld" "$offset" "$dir" "$starts" >"$dir/startup" <<'PY'
import http.client, os, signal, statistics, subprocess, sys, time
keeld, offset, top, starts = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ports = [p + offset for p in (8000, 8001, 8002, 8003, 8005)]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

def healthy(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False

up_ms, down_ms = [], []
for i in range(starts):
    data = os.path.join(top, "start%d" % i)
    os.mkdir(data)
    env = dict(os.environ, PORT_OFFSET=str(offset), KEEL_DATA_DIR=data, KEEL_LOG_LEVEL="warn",
               KEEL_NVML_LIB=os.path.join(top, "none.so"))
    t0 = time.monotonic()
    p = subprocess.Popen([keeld, "all"], env=env, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(data, "keeld.log"), "w"))
    try:
        waiting = set(ports)
        while waiting and time.monotonic() - t0 < 30:
            waiting = {port for port in waiting if not healthy(port)}
            if waiting:
                time.sleep(0.002)
        if waiting:
            sys.exit("keeld.sh: keeld all did not become healthy in 30 s (ports %s)" % sorted(waiting))
        up_ms.append((time.monotonic() - t0) * 1000)
        t1 = time.monotonic()
        p.terminate()
        p.wait(timeout=30)
        down_ms.append((time.monotonic() - t1) * 1000)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
print("start_ms=%.0f stop_ms=%.0f start_all=%s stop_all=%s" % (
    statistics.median(up_ms), statistics.median(down_ms),
    ",".join("%.0f" % x for x in up_ms), ",".join("%.0f" % x for x in down_ms)))
PY
field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
start_ms=$(field "$dir/startup" start_ms)
stop_ms=$(field "$dir/startup" stop_ms)

# ---- idle, then under load, on one more fresh start
mkdir "$dir/run"
PORT_OFFSET=$offset KEEL_DATA_DIR="$dir/run" KEEL_LOG_LEVEL=warn KEEL_NVML_LIB="$dir/none.so" \
    "$keeld" all >"$dir/run/keeld.log" 2>&1 &
keeld_pid=$!
for port in 8000 8001 8002 8003 8005; do
    tries=0
    until curl -sf "http://127.0.0.1:$((port + offset))/health" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || { echo "keeld.sh: keeld all did not become healthy" >&2; cat "$dir/run/keeld.log" >&2; exit 1; }
        sleep 0.1
    done
done
sleep "$settle"
"$proc" proc "$keeld_pid" 2 >"$dir/idle"

for port in 7000 7001 7002 7003 7005; do
    "$ping" "tcp://127.0.0.1:$((port + offset))" 10 "$load_seconds" >"$dir/ping-$port" 2>&1 &
    ping_pids="$ping_pids $!"
done
sleep 0.5                                # ping's own warm-up before its window
"$proc" proc "$keeld_pid" "$load_seconds" >"$dir/load"
for pid in $ping_pids; do
    wait "$pid" || echo "keeld.sh: a ping client failed: $(cat "$dir"/ping-*)" >&2
done
ping_pids=
hwm=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$keeld_pid/status")
rps=$(cat "$dir"/ping-* | sed -n 's/.* rps=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')

printf '\nkeeld all (five services, one process; %s CPUs)\n' "$(nproc)"
printf '%-52s %s\n' "metric" "value"
printf '%-52s %s ms (runs: %s)\n' "start-up, exec to five /health 200 (median)" "$start_ms" \
    "$(field "$dir/startup" start_all)"
printf '%-52s %s ms (runs: %s)\n' "stop, SIGTERM to exit (median)" "$stop_ms" "$(field "$dir/startup" stop_all)"
printf '%-52s %s MB\n' "RSS idle (median over 2 s, ${settle} s after start)" "$(field "$dir/idle" rss_mb)"
printf '%-52s %s %%\n' "CPU idle" "$(field "$dir/idle" cpu_percent)"
printf '%-52s %s MB\n' "RSS under load (largest 100 ms sample)" "$(field "$dir/load" rss_max_mb)"
printf '%-52s %s %%\n' "CPU under load" "$(field "$dir/load" cpu_percent)"
printf '%-52s %s MB\n' "RSS peak (VmHWM, whole run)" "$hwm"
printf '%-52s %s req/s\n' "ping load, 50 clients over five services" "$rps"

result keeld "start-up to five /health 200 (median of $starts)" "$start_ms" ms lower "" "" 'keel<150'
result keeld "stop, SIGTERM to exit (median of $starts)" "$stop_ms" ms lower "" "" 'keel<300'
result keeld "RSS idle" "$(field "$dir/idle" rss_mb)" MB lower "" "" 'keel<15'
result keeld "CPU idle" "$(field "$dir/idle" cpu_percent)" % lower "" "" ""
result keeld "RSS under ping load, 50 clients (max)" "$(field "$dir/load" rss_max_mb)" MB lower "" "" ""
result keeld "RSS peak (VmHWM, start-up included)" "$hwm" MB lower "" "" ""
result keeld "ping rate under that load, 5 services" "$rps" req/s higher "" "" ""
