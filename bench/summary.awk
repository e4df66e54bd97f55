# summary.awk: the one table `make bench` ends with, from the RESULT lines
# the bench/*.sh drivers append to $BENCH_RESULTS (format in bench/lib.sh).
#
# The ratio is always oriented so that above 1 means Keel did better:
# Keel/peer where higher is better (throughput), peer/Keel where lower is
# better (latency, memory).  A goal is checked against the figure it names
# and marked yes/NO; a row without a peer or a goal shows "-".
#
#   awk -f bench/summary.awk RESULTS_FILE
BEGIN {
    FS = "|"
    fmt = "%-13s %-46s %10s  %-20s %10s  %-8s %-6s %6s  %-9s %s\n"
    rows = 0
}

function numeric(v) {
    return v ~ /^-?[0-9]+(\.[0-9]+)?$/
}

function ratio(keel, peer, better) {
    if (!numeric(keel) || !numeric(peer))
        return "-"
    if (better == "lower")
        return keel > 0 ? sprintf("%.2f", peer / keel) : "-"
    return peer > 0 ? sprintf("%.2f", keel / peer) : "-"
}

# "ratio>=0.8" -> ">=0.8x", "keel<1000" -> "<1000"
function goal_text(goal,    g) {
    if (goal == "")
        return "-"
    g = goal
    sub(/^keel/, "", g)
    if (sub(/^ratio/, "", g))
        g = g "x"
    sub(/^==/, "=", g)
    return g
}

function met(goal, keel, r,    op, want, have) {
    if (goal == "")
        return "-"
    have = goal ~ /^ratio/ ? r : keel
    if (!numeric(have))
        return "n/a"
    op = goal
    sub(/^(ratio|keel)/, "", op)
    want = op
    sub(/^[<>=]+/, "", want)
    sub(/[0-9.]+$/, "", op)
    have += 0
    want += 0
    if (op == ">=") return have >= want ? "yes" : "NO"
    if (op == ">")  return have >  want ? "yes" : "NO"
    if (op == "<=") return have <= want ? "yes" : "NO"
    if (op == "<")  return have <  want ? "yes" : "NO"
    if (op == "==") return have == want ? "yes" : "NO"
    return "?"
}

$1 == "RESULT" && NF >= 9 {
    r = ratio($4, $8, $6)
    m = met($9, $4, r)
    line[++rows] = sprintf(fmt, $2, $3, $4 == "" ? "-" : $4, $7 == "" ? "-" : $7,
                           $8 == "" ? "-" : $8, $5, $6, r, goal_text($9), m)
    if (m == "yes") hit++
    if (m == "NO" || m == "n/a") miss++
}

END {
    printf fmt, "bench", "measurement", "keel", "peer", "peer value", "unit", "better", "ratio",
        "goal", "met"
    printf fmt, "-----", "-----------", "----", "----", "----------", "----", "------", "-----",
        "----", "---"
    for (i = 1; i <= rows; i++)
        printf "%s", line[i]
    printf "\n%d measurements; ratio > 1 means Keel did better than its peer; goals met %d, missed %d\n",
        rows, hit, miss
}
