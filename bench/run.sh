#!/bin/sh
# Runs every benchmark driver (bench/*.sh) in turn; each starts what it
# measures and its peer on free loopback ports, prints its table, and stops
# everything it started.  Each also appends machine-readable RESULT lines
# to one file (BENCH_RESULTS, see bench/lib.sh), from which the run ends
# with a single table of every measurement beside its peer.
#
#   sh bench/run.sh [BUILD]      env BENCH_QUICK=1 for a short run
#                                    BENCH_ONLY="ping core" to run some drivers
#                                    BENCH_RESULTS=FILE to keep the RESULT lines
build=${1:-build}
status=0
results=${BENCH_RESULTS:-}
own_results=
if [ -z "$results" ]; then
    results=$(mktemp /tmp/keel-bench-results-XXXXXX)
    own_results=$results
    trap 'rm -f "$own_results"' EXIT INT TERM
fi
export BENCH_RESULTS="$results"
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
failed=
for script in bench/*.sh; do
    name=${script#bench/}
    name=${name%.sh}
    case $name in run|lib) continue ;; esac
    if [ -n "${BENCH_ONLY:-}" ]; then
        case " $BENCH_ONLY " in *" $name "*) ;; *) continue ;; esac
    fi
    echo "== $script"
    if ! sh "$script" "$build"; then
        status=1
        failed="$failed $name"
    fi
done

echo
echo "== Keel beside its peers: $(nproc) CPUs, $(( $(date +%s) - started )) s," \
     "load average $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end${BENCH_QUICK:+, BENCH_QUICK=$BENCH_QUICK}"
awk -f bench/summary.awk "$results"
[ -z "$failed" ] || echo "drivers that failed:$failed"
exit $status
