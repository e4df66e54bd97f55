#!/bin/sh
# SecurityGateway benchmark: starts `keeld security` with its default
# Argon2id parameters (opslimit 3, memlimit 64 MiB) on a free PORT_OFFSET
# and a temporary data directory, adds an administrator with keelctl, runs
# build/bench/security_bench (validations/s for session tokens and JWTs at
# 1 and 8 clients, login cost), and stops everything it started.
#   usage: bench/security.sh [BUILD] [SECONDS]
set -eu
build=${1:-build}
seconds=${2:-3}
dir=$(mktemp -d /tmp/keel-bench-sec-XXXXXX)
offset=""
for try in 1 2 3 4 5 6 7 8 9 10; do
    cand=$(( ($(od -An -N2 -tu2 /dev/urandom) % 2000 + 300) * 10 ))
    if ! (ss -ltn 2>/dev/null | grep -qE ":($((7005 + cand))|$((8005 + cand))|$((7150 + cand)))\b"); then
        offset=$cand
        break
    fi
done
[ -n "$offset" ] || { echo "no free port offset" >&2; exit 1; }
export PORT_OFFSET=$offset KEEL_DATA_DIR=$dir
"$build/keeld" security >"$dir/keeld.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((8005 + offset))/health" >/dev/null 2>&1 && break
    sleep 0.1
done
printf 'bench-pass\n' | "$build/keelctl" user add bench --admin --password-stdin >/dev/null
echo "SecurityGateway benchmark (PORT_OFFSET=$offset, $(nproc) CPUs, ${seconds}s per row)"
"$build/bench/security_bench" "tcp://127.0.0.1:$((7005 + offset))" bench bench-pass "$seconds"
