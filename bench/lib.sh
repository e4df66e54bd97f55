# Sourced by the bench/*.sh drivers (run.sh skips it; it runs nothing).
#
# Two switches every driver shares, so that `make bench` can give one
# summary and a short run without the drivers knowing about each other:
#
#   BENCH_QUICK=1       each driver's default durations and counts shrink
#                       (an explicit env setting such as EVENTS= still wins)
#   BENCH_RESULTS=FILE  each driver appends one line per measurement,
#                       RESULT|bench|measurement|keel|unit|better|peer|peer_value|goal
#                       better: higher or lower (which way is good);
#                       goal:   empty, ratio>=X, keel>=X, keel<X or keel==X,
#                               where ratio is the Keel-favourable ratio
#                       bench/summary.awk turns the file into one table.
#
# The drivers keep printing their own tables; these lines are extra.

# quick_or FULL QUICK: the default for a duration or count.
quick_or() {
    if [ "${BENCH_QUICK:-0}" != 0 ]; then echo "$2"; else echo "$1"; fi
}

# result BENCH MEASUREMENT KEEL UNIT BETTER PEER PEER_VALUE GOAL
result() {
    [ -n "${BENCH_RESULTS:-}" ] || return 0
    printf 'RESULT|%s|%s|%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" >>"$BENCH_RESULTS"
}

# goal_at WANT HAVE GOAL: GOAL when HAVE is WANT (the concurrency an issue
# states its goal at), else nothing.
goal_at() {
    if [ "$1" = "$2" ]; then echo "$3"; fi
}

# CPU seconds (user + system) process $1 has used so far.
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
# Server CPU per request in microseconds, from two cpu_s readings and the
# requests between them: what a server spends, apart from the clients,
# which share the same CPUs.
per_req() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / n : 0) }'
}
# Keel's figure over the peer's, two decimals (0 when the peer has none).
ratio() {
    awk -v k="$1" -v r="$2" 'BEGIN { printf "%.2f", (r > 0 ? k / r : 0) }'
}

# Free loopback ports (bench/ports.py): keeld's PORT_OFFSET for the given
# base ports, a number of single ports for peers, N consecutive ports.
KEEL_BENCH_DIR=$(dirname "$0")
keel_ports() {
    /usr/bin/python3 "$KEEL_BENCH_DIR/ports.py" "$@"
}
