#!/bin/sh
# Runs every unit test binary in BUILD/tests, under valgrind when VALGRIND=1,
# and prints one closing line: "unit: N passed, N failed".
build=${1:-build}
export KEEL_FAKE_NVML="$PWD/$build/tests/libfake-nvml.so"
# Under memcheck every deadline a test waits on is ten times longer, as
# the integration harness's are (tests/unit/testutil.h: tu_factor).
if [ "${VALGRIND:-0}" = 1 ]; then
    export KEEL_TIME_FACTOR="${KEEL_TIME_FACTOR:-10}"
fi
passed=0
failed=0
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    if [ "${VALGRIND:-0}" = 1 ]; then
        set -- valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
            --suppressions=tests/valgrind.supp --error-exitcode=99 "$t"
    else
        set -- "$t"
    fi
    if "$@" >"$t.log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $t"
        tail -30 "$t.log"
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
