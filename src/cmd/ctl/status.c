/*  status: the five services at a glance, asked over their ZMQ ports with
 *  the health action every service answers. */
#include "ctl.h"

#include <stdio.h>

static const struct { const char *title; int port; } services[] = {
    { "CoreOrchestrator", 7000 }, { "ResourceManager", 7001 },
    { "ObservabilityHub", 7002 }, { "ErrorBus", 7003 }, { "SecurityGateway", 7005 },
};

static int run(ctl_t *ctl, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    json_t *rows = json_array(), *all = json_array();
    int down = 0;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        json_t *request = json_pack("{s:s}", "action", "health");
        json_t *reply = ctl_call(ctl, services[i].port, request);
        json_decref(request);
        const char *status = reply ? json_string_value(json_object_get(reply, "status")) : NULL;
        char port[16], uptime[32], requests[32];
        snprintf(port, sizeof port, "%d", config_port(ctl->config, services[i].port));
        ctl_duration(json_number_value(json_object_get(reply, "uptime")), uptime, sizeof uptime);
        snprintf(requests, sizeof requests, "%.0f", json_number_value(json_object_get(reply, "requests")));
        if (!reply) {
            down++;
            snprintf(uptime, sizeof uptime, "-");
            snprintf(requests, sizeof requests, "-");
        }
        json_array_append_new(rows, json_pack("[s,s,s,s,s]", services[i].title, port,
                                              status ? status : "down", uptime, requests));
        json_array_append_new(all, json_pack("{s:s, s:i, s:s, s:o}", "service", services[i].title,
                                             "port", config_port(ctl->config, services[i].port),
                                             "status", status ? status : "down",
                                             "health", reply ? reply : json_null()));
    }
    if (ctl->json) {
        ctl_print_json(all);
    } else {
        static const char *header[] = { "SERVICE", "PORT", "STATUS", "UPTIME", "REQUESTS" };
        ctl_table(header, 5, rows);
    }
    json_decref(rows);
    json_decref(all);
    return down ? 1 : 0;
}

const ctl_command_t ctl_status_command = {
    "status", "status                      health of the five services", run,
};
