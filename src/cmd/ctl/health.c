/*  health: the fleet as ObservabilityHub sees it, one row per agent with
 *  its one state and the reason, worst first: down, then degraded, then
 *  unknown (a suspected partition among them), then up; within a state the
 *  highest failure probability and then the slowest probe come first, so
 *  the agent to look at is on top. */
#include "agentstate.h"
#include "ctl.h"

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
    int rx = state_rank(json_string_value(json_object_get(x, "state")));
    int ry = state_rank(json_string_value(json_object_get(y, "state")));
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

static int run(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *request = json_pack("{s:s}", "action", "get_agents_health");
    json_t *reply = ctl_call(ctl, 7002, request);
    json_decref(request);
    json_t *agents = json_object_get(reply, "agents");
    if (!json_is_object(agents)) {
        fprintf(stderr, "keelctl: ObservabilityHub gave no fleet\n");
        json_decref(reply);
        return 1;
    }
    json_t *fleet = sorted_fleet(agents);
    int down = 0;
    size_t i;
    json_t *rec;
    json_t *rows = json_array();
    json_array_foreach(fleet, i, rec) {
        const char *state = json_string_value(json_object_get(rec, "state"));
        down += state && !strcmp(state, "down");
        char latency[32], prob[16], tier[8];
        snprintf(latency, sizeof latency, "%.1f ms", json_number_value(json_object_get(rec, "latency_ms")));
        snprintf(prob, sizeof prob, "%.2f", json_number_value(json_object_get(rec, "failure_probability")));
        snprintf(tier, sizeof tier, "%lld", (long long)json_integer_value(json_object_get(rec, "recovery_tier")));
        const char *machine = json_string_value(json_object_get(rec, "machine"));
        const char *check = json_string_value(json_object_get(rec, "status"));
        const char *reason = json_string_value(json_object_get(rec, "reason"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s,s]",
                                              json_string_value(json_object_get(rec, "agent")),
                                              machine ? machine : "-", state ? state : "unknown",
                                              check ? check : "-", latency, prob, tier, reason ? reason : "-"));
    }
    if (ctl->json) {
        ctl_print_json(fleet);
    } else {
        static const char *header[] = { "AGENT", "MACHINE", "STATUS", "LAST CHECK", "LATENCY",
                                        "FAILURE P", "TIER", "REASON" };
        ctl_table(header, 8, rows);
    }
    json_decref(rows);
    json_decref(fleet);
    json_decref(reply);
    return down ? 1 : 0;
}

const ctl_command_t ctl_health_command = {
    "health", "health                      the fleet's health, worst first", run,
};
