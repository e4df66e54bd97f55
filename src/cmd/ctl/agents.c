/*  agents: the CoreOrchestrator registry as a table (`keelctl agents`), and
 *  the supervisor's process control (`keelctl agent restart NAME`, also
 *  start and stop).  Both ask CoreOrchestrator on its ZMQ port. */
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

static int run_agents(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *request = json_pack("{s:s}", "action", "describe_agents");
    json_t *reply = ctl_call(ctl, CORE_PORT, request);
    json_decref(request);
    if (!reply)
        return 1;
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (!status || strcmp(status, "success") != 0) {
        fprintf(stderr, "keelctl: %s\n", json_string_value(json_object_get(reply, "error")));
        json_decref(reply);
        return 1;
    }
    if (ctl->json) {
        ctl_print_json(reply);
        json_decref(reply);
        return 0;
    }
    json_t *rows = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(reply, "agents"), i, a) {
        char port[16], hport[16], age[32];
        ctl_duration(json_number_value(json_object_get(a, "heartbeat_age_s")), age, sizeof age);
        json_array_append_new(rows, json_pack("[s,s,s,s,s,s,s]",
            text_of(json_object_get(a, "agent_id"), port, sizeof port),
            text_of(json_object_get(a, "host"), hport, sizeof hport),
            text_of(json_object_get(a, "port"), port, sizeof port),
            text_of(json_object_get(a, "health_check_port"), hport, sizeof hport),
            text_of(json_object_get(a, "health"), age, 0),
            text_of(json_object_get(a, "last_heartbeat"), age, 0), age));
    }
    static const char *header[] = { "AGENT", "HOST", "PORT", "HEALTH_PORT", "HEALTH", "LAST_HEARTBEAT", "AGE" };
    ctl_table(header, 7, rows);
    json_decref(rows);
    json_decref(reply);
    return 0;
}

static int run_agent(ctl_t *ctl, int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[0], "restart") && strcmp(argv[0], "start") && strcmp(argv[0], "stop"))) {
        fprintf(stderr, "usage: keelctl agent restart|start|stop NAME\n");
        return 2;
    }
    char action[32];
    snprintf(action, sizeof action, "%s_agent", argv[0]);
    char *token = ctl_admin_token(ctl);
    json_t *request = json_pack("{s:s, s:s, s:s?}", "action", action, "agent", argv[1], "auth_token", token);
    free(token);
    json_t *reply = ctl_call(ctl, CORE_PORT, request);
    json_decref(request);
    if (!reply)
        return 1;
    const char *status = json_string_value(json_object_get(reply, "status"));
    int rc = status && !strcmp(status, "success") ? 0 : 1;
    if (ctl->json)
        ctl_print_json(reply);
    else if (rc == 0)
        printf("%s\n", json_string_value(json_object_get(reply, "message")));
    else
        fprintf(stderr, "keelctl: %s\n", json_string_value(json_object_get(reply, "error")));
    json_decref(reply);
    return rc;
}

const ctl_command_t ctl_agents_command = {
    "agents", "agents                      registered agents with health and last heartbeat", run_agents,
};

const ctl_command_t ctl_agent_command = {
    "agent", "agent restart|start|stop NAME   control an agent CoreOrchestrator supervises", run_agent,
};
