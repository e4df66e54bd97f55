/*  health: the fleet as ObservabilityHub sees it, one row per agent with
 *  its one state and the reason, worst first: down, then degraded, then
 *  unknown (a suspected partition among them), then up; within a state the
 *  highest failure probability and then the slowest probe come first, so
 *  the agent to look at is on top.  PROBE is the last probe's result, LAST
 *  CHECK the time it was made. */
#include "agentstate.h"
#include "ctl.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int state_rank(const char *state)
{
    return agentstate_rank(agentstate_from_name(state));
}

static int worst_first(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int rx = state_rank(ctl_agent_state(x, NULL));
    int ry = state_rank(ctl_agent_state(y, NULL));
    if (rx != ry)
        return rx - ry;
    double px = json_number_value(json_object_get(x, "failure_probability"));
    double py = json_number_value(json_object_get(y, "failure_probability"));
    if (px != py)
        return px > py ? -1 : 1;
    double lx = json_number_value(json_object_get(x, "latency_ms"));
    double ly = json_number_value(json_object_get(y, "latency_ms"));
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "agent")),
                  json_string_value(json_object_get(y, "agent")));
}

/* The hub's records as an array sorted worst first (new reference). */
static json_t *sorted_fleet(json_t *agents)
{
    size_t n = json_object_size(agents), i = 0;
    json_t **items = calloc(n ? n : 1, sizeof *items);
    const char *name;
    json_t *rec;
    json_object_foreach(agents, name, rec) {
        items[i] = json_copy(rec);
        json_object_set_new(items[i], "agent", json_string(name));
        i++;
    }
    qsort(items, n, sizeof *items, worst_first);
    json_t *sorted = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(sorted, items[i]);
    free(items);
    return sorted;
}

/* The hub's ISO local time as "2025-01-31 14:05:09", or "-". */
static const char *check_time(json_t *rec, char *buf, size_t len)
{
    double at;
    const char *iso = json_string_value(json_object_get(rec, "last_checked"));
    return iso && clock_parse_iso(iso, &at) == 0 ? ctl_time(at, buf, len) : "-";
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    (void)args;
    json_t *request = json_pack("{s:s}", "action", "get_agents_health");
    json_t *reply = ctl_call(ctl, 7002, request, ctl_timeout(ctl, CTL_TIMEOUT_MS));
    json_decref(request);
    if (!reply)
        return CTL_UNREACHABLE;
    json_t *agents = json_object_get(reply, "agents");
    if (!json_is_object(agents)) {
        int rc = ctl_check_reply(reply);
        if (rc == CTL_OK)
            ctl_warn("ObservabilityHub gave no fleet");
        json_decref(reply);
        return rc == CTL_OK ? CTL_FAILED : rc;
    }
    json_t *fleet = sorted_fleet(agents);
    int down = 0;
    size_t i;
    json_t *rec;
    json_t *rows = json_array();
    json_array_foreach(fleet, i, rec) {
        const char *reason;
        const char *state = ctl_agent_state(rec, &reason);
        down += !strcmp(state, "down");
        char latency[32], prob[16], tier[8], checked[32];
        snprintf(latency, sizeof latency, "%.1f ms", json_number_value(json_object_get(rec, "latency_ms")));
        snprintf(prob, sizeof prob, "%.2f", json_number_value(json_object_get(rec, "failure_probability")));
        snprintf(tier, sizeof tier, "%lld", (long long)json_integer_value(json_object_get(rec, "recovery_tier")));
        const char *machine = json_string_value(json_object_get(rec, "machine"));
        const char *probe = json_string_value(json_object_get(rec, "status"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s,s,s]",
                                              json_string_value(json_object_get(rec, "agent")),
                                              machine ? machine : "-", state, probe ? probe : "-",
                                              check_time(rec, checked, sizeof checked), latency, prob, tier,
                                              *reason ? reason : "-"));
    }
    if (ctl->json) {
        ctl_print_json(fleet);
    } else {
        static const char *header[] = { "AGENT", "MACHINE", "STATE", "PROBE", "LAST CHECK", "LATENCY",
                                        "FAILURE P", "TIER", "REASON" };
        ctl_table(header, 9, rows);
    }
    json_decref(rows);
    json_decref(fleet);
    json_decref(reply);
    return down ? CTL_FAILED : CTL_OK;
}

const ctl_command_t ctl_health_command = {
    .name = "health",
    .operands = "",
    .summary = "the fleet's health as ObservabilityHub sees it, worst first",
    .description =
        "One row per agent ObservabilityHub watches, worst first: down, degraded,\n"
        "unknown (a suspected partition among them), up; then by failure probability\n"
        "and latency.  STATE is the agent's one state (its health probes and its\n"
        "heartbeats combined), REASON why, PROBE the last health probe's result, LAST CHECK\n"
        "when that probe was made (local time), LATENCY its round trip, FAILURE P the\n"
        "predicted probability of failure, TIER the recovery tier reached.\n"
        "Exit 0 when no agent is down, else 1.",
    .run = run,
};
