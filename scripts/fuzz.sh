#!/bin/sh
# Runs every libFuzzer target in BUILD/fuzz: first over its committed
# regression inputs and seed corpus (each must pass), then fuzzing for
# SECONDS from a scratch copy of the corpus, so new inputs never land in
# the repository.  A crash leaves its input in BUILD/fuzz-crashes/<target>/
# and fails the run; fix it and keep the input in fuzz/regressions/<target>/.
# Targets that need files (key file, databases) make them under TMPDIR,
# which is a directory of the run's own, removed after each target.
#
#   sh scripts/fuzz.sh BUILD SECONDS [TARGET...]
set -e
BUILD=${1:-build-fuzz}
SECONDS_EACH=${2:-60}
shift 2 || true
TARGETS="$*"
[ -n "$TARGETS" ] || TARGETS=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')

failed=""
for t in $TARGETS; do
    bin="$BUILD/fuzz/fuzz_$t"
    seeds="fuzz/corpus/$t"
    regress="fuzz/regressions/$t"
    work="$BUILD/fuzz-work/$t"
    crashes="$BUILD/fuzz-crashes/$t"
    TMPDIR="$PWD/$BUILD/fuzz-tmp/$t"
    export TMPDIR
    rm -rf "$TMPDIR"
    mkdir -p "$work" "$crashes" "$seeds" "$regress" "$TMPDIR"
    started=$(date +%s)
    # Replay: every committed input, once each.
    if ! "$bin" -runs=0 -artifact_prefix="$crashes/" "$regress" "$seeds" >"$BUILD/fuzz-$t.log" 2>&1 ||
       ! "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
            -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" \
            "$work" "$seeds" "$regress" >>"$BUILD/fuzz-$t.log" 2>&1; then
        failed="$failed $t"
        echo "fuzz $t: FAILED (see $BUILD/fuzz-$t.log, inputs in $crashes/)"
        tail -30 "$BUILD/fuzz-$t.log"
        continue
    fi
    rm -rf "$TMPDIR"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/fuzz-$t.log" | tail -1)
    echo "fuzz $t: ok, $runs runs in $(($(date +%s) - started)) s"
done
[ -z "$failed" ] || { echo "fuzz: crashes in:$failed"; exit 1; }
