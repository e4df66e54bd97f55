/*  agents: the CoreOrchestrator registry as a table (`keelctl agents`), each
 *  agent with its one state and the reason (ObservabilityHub's verdict, as
 *  the registry holds it), and the supervisor's process control (`keelctl agent restart NAME`, also
 *  start and stop), which sends the administrator's token when keelctl has
 *  one.  Both ask CoreOrchestrator on its ZMQ port.  An agent Keel does not
 *  supervise cannot be restarted by it; CoreOrchestrator's answer says so,
 *  and keelctl passes it on. */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORE_PORT 7000

static const char *text_of(json_t *v, char *buf, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return "-";
}

static int run_agents(ctl_t *ctl, const ctl_args_t *args)
{
    (void)args;
    json_t *request = json_pack("{s:s}", "action", "describe_agents");
    json_t *reply = ctl_call(ctl, CORE_PORT, request, ctl_timeout(ctl, CTL_TIMEOUT_MS));
    json_decref(request);
    if (!reply)
        return CTL_UNREACHABLE;
    int rc = ctl_check_reply(reply);
    json_t *agents = json_object_get(reply, "agents");
    if (rc == CTL_OK && ctl->json) {
        ctl_print_json(json_is_array(agents) ? agents : json_array());
    } else if (rc == CTL_OK) {
        json_t *rows = json_array();
        size_t i;
        json_t *a;
        json_array_foreach(agents, i, a) {
            char port[16], hport[16], age[32];
            const char *reason;
            ctl_duration(json_number_value(json_object_get(a, "heartbeat_age_s")), age, sizeof age);
            const char *state = ctl_agent_state(a, &reason);
            json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s,s]",
                text_of(json_object_get(a, "agent_id"), port, sizeof port),
                text_of(json_object_get(a, "host"), hport, sizeof hport),
                text_of(json_object_get(a, "port"), port, sizeof port),
                text_of(json_object_get(a, "health_check_port"), hport, sizeof hport),
                state, text_of(json_object_get(a, "last_heartbeat"), age, 0), age,
                *reason ? reason : "-"));
        }
        static const char *header[] = { "AGENT", "HOST", "PORT", "HEALTH_PORT", "STATE",
                                        "LAST_HEARTBEAT", "SINCE_HEARTBEAT", "REASON" };
        ctl_table(header, 8, rows);
        json_decref(rows);
    }
    json_decref(reply);
    return rc;
}

/* restart, start and stop share this; the verb is the subcommand's name. */
static int run_agent_op(ctl_t *ctl, const char *verb, const char *name)
{
    char action[32];
    snprintf(action, sizeof action, "%s_agent", verb);
    json_t *request = json_pack("{s:s, s:s}", "action", action, "agent", name);
    int rc = ctl_authorize(ctl, request);
    json_t *reply = rc == CTL_OK ? ctl_call(ctl, CORE_PORT, request, ctl_timeout(ctl, CTL_TIMEOUT_MS)) : NULL;
    json_decref(request);
    if (rc != CTL_OK)
        return rc;
    if (!reply)
        return CTL_UNREACHABLE;
    rc = ctl_check_reply(reply);
    if (ctl->json)
        ctl_print_json(reply);
    else if (rc == CTL_OK)
        ctl_say("%s", json_string_value(json_object_get(reply, "message")));
    json_decref(reply);
    return rc;
}

static int run_restart(ctl_t *ctl, const ctl_args_t *args) { return run_agent_op(ctl, "restart", args->argv[0]); }
static int run_start(ctl_t *ctl, const ctl_args_t *args) { return run_agent_op(ctl, "start", args->argv[0]); }
static int run_stop(ctl_t *ctl, const ctl_args_t *args) { return run_agent_op(ctl, "stop", args->argv[0]); }

#define AGENT_OP_HELP(verb) \
    "Asks CoreOrchestrator to " verb " NAME, an agent it supervises (one with a\n" \
    "command in core.agents), sending the administrator's token (--token,\n" \
    "KEEL_TOKEN or --user).  An agent Keel does not supervise is refused with a\n" \
    "message saying so (exit 1)."

static const ctl_command_t restart_command = {
    .name = "restart", .operands = "NAME", .summary = "restart an agent Keel supervises",
    .description = AGENT_OP_HELP("restart"), .min_operands = 1, .max_operands = 1, .run = run_restart,
};
static const ctl_command_t start_command = {
    .name = "start", .operands = "NAME", .summary = "start an agent Keel supervises",
    .description = AGENT_OP_HELP("start"), .min_operands = 1, .max_operands = 1, .run = run_start,
};
static const ctl_command_t stop_command = {
    .name = "stop", .operands = "NAME", .summary = "stop an agent Keel supervises",
    .description = AGENT_OP_HELP("stop"), .min_operands = 1, .max_operands = 1, .run = run_stop,
};
static const ctl_command_t *const agent_subcommands[] = { &restart_command, &start_command, &stop_command, NULL };

const ctl_command_t ctl_agents_command = {
    .name = "agents",
    .operands = "",
    .summary = "registered agents with their state, reason and last heartbeat",
    .description =
        "CoreOrchestrator's registry: each agent's host and ports, its one STATE (up,\n"
        "degraded, down, unknown: ObservabilityHub's verdict, or the heartbeats alone\n"
        "while the hub has none) and REASON, when its last heartbeat arrived (UTC) and\n"
        "how long ago that was.  Keel's own names (the five services and the agents they\n"
        "absorbed) are kept fresh by the services that answer for them.",
    .run = run_agents,
};

const ctl_command_t ctl_agent_command = {
    .name = "agent",
    .operands = "",
    .summary = "restart, start or stop an agent CoreOrchestrator supervises",
    .subcommands = agent_subcommands,
};
