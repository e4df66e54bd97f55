#!/bin/sh
# Runs every benchmark driver (bench/*.sh) in turn; each starts what it
# measures and its peer on free loopback ports, prints its table, and stops
# everything it started.
build=${1:-build}
status=0
for script in bench/*.sh; do
    [ "$script" = bench/run.sh ] && continue
    echo "== $script"
    sh "$script" "$build" || status=1
done
exit $status
