#!/bin/sh
# SecurityGateway benchmark: starts `keeld security` with its default
# Argon2id parameters (opslimit 3, memlimit 64 MiB) on a free PORT_OFFSET
# and a temporary data directory, adds an administrator with keelctl, runs
# build/bench/security_bench (validations/s for session tokens and JWTs at
# 1 and 8 clients, login cost), and stops everything it started.
#   usage: bench/security.sh [BUILD] [SECONDS]   (SECONDS: 3, or 1 with BENCH_QUICK=1)
set -eu
. "$(dirname "$0")/lib.sh"
build=${1:-build}
seconds=${2:-$(quick_or 3 1)}
dir=$(mktemp -d /tmp/keel-bench-sec-XXXXXX)
offset=$(keel_ports offset 7005 8005 7150)
export PORT_OFFSET=$offset KEEL_DATA_DIR=$dir
"$build/keeld" security >"$dir/keeld.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP PIPE      # exit, so that the EXIT trap cleans up
for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((8005 + offset))/health" >/dev/null 2>&1 && break
    sleep 0.1
done
printf 'bench-pass\n' | "$build/keelctl" user add bench --admin --password-stdin >/dev/null
echo "SecurityGateway benchmark (PORT_OFFSET=$offset, $(nproc) CPUs, ${seconds}s per row)"
"$build/bench/security_bench" "tcp://127.0.0.1:$((7005 + offset))" bench bench-pass "$seconds" \
    >"$dir/out" || { cat "$dir/out"; exit 1; }
cat "$dir/out"

# rows "session 8 26489 0" and the login line, for the summary table
while read -r kind clients rate failed; do
    case $kind in session|jwt) ;; *) continue ;; esac
    [ "$clients" -ge 0 ] 2>/dev/null || continue
    result security "validate_token, $kind @$clients clients" "$rate" valid/s higher "" "" \
        "$(goal_at 8 "$clients" 'keel>=50000')"
done <"$dir/out"
login=$(sed -n 's/^login .*: \([0-9.]*\) ms mean.*/\1/p' "$dir/out")
result security "login (Argon2id, service parameters)" "$login" ms lower "" "" ""
