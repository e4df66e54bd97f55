/*  resources: the ResourceManager+Scheduler at a glance: each GPU with
 *  VRAM used, reserved and free, the models the ModelManager has loaded,
 *  the live reservations and the task queue.  Three requests to the
 *  service (get_stats, get_vram_policy, list_tasks) and get_status for the
 *  reservations; any one failing makes the command fail. */
#include "ctl.h"

#include <stdio.h>
#include <time.h>

#define RESOURCE_PORT 7001

static json_t *ask(ctl_t *ctl, const char *action)
{
    json_t *request = json_pack("{s:s}", "action", action);
    json_t *reply = ctl_call(ctl, RESOURCE_PORT, request, ctl_timeout(ctl, CTL_TIMEOUT_MS));
    json_decref(request);
    return reply;
}

static void add_row(json_t *rows, const char *a, const char *b, double total, double used,
                    double reserved, double free_mb)
{
    char t[32], u[32], r[32], f[32];
    snprintf(t, sizeof t, "%.0f", total);
    snprintf(u, sizeof u, "%.0f", used);
    snprintf(r, sizeof r, "%.0f", reserved);
    snprintf(f, sizeof f, "%.0f", free_mb);
    json_array_append_new(rows, json_pack("[s,s,s,s,s,s]", a, b, t, u, r, f));
}

static void print_devices(json_t *stats, json_t *policy)
{
    static const char *header[] = { "DEVICE", "GPU", "TOTAL MiB", "USED MiB", "RESERVED MiB", "FREE MiB" };
    json_t *rows = json_array();
    json_t *gpus = json_object_get(json_object_get(stats, "stats"), "gpus");
    json_t *devices = json_object_get(policy, "devices");
    const char *names[] = { "MainPC", "PC2" };
    size_t i;
    json_t *g;
    json_array_foreach(gpus, i, g)
        add_row(rows, i < 2 ? names[i] : "-", json_string_value(json_object_get(g, "name")),
                json_number_value(json_object_get(g, "total_mb")),
                json_number_value(json_object_get(g, "used_mb")),
                json_number_value(json_object_get(g, "reserved_mb")),
                json_number_value(json_object_get(g, "free_mb")));
    if (json_array_size(gpus) == 0) {
        json_t *d = json_object_get(devices, "MainPC");
        add_row(rows, "MainPC", "(no GPU: budget)", json_number_value(json_object_get(d, "total_mb")),
                json_number_value(json_object_get(d, "used_mb")),
                json_number_value(json_object_get(d, "reserved_mb")),
                json_number_value(json_object_get(d, "free_mb")));
    }
    ctl_table(header, 6, rows);
    json_decref(rows);
}

static void print_models(json_t *policy)
{
    static const char *header[] = { "MODEL", "DEVICE", "VRAM MiB", "IDLE", "ACTIVE" };
    json_t *rows = json_array();
    const char *name;
    json_t *m;
    json_object_foreach(json_object_get(policy, "loaded_models"), name, m) {
        char vram[32], idle[32];
        snprintf(vram, sizeof vram, "%.0f", json_number_value(json_object_get(m, "vram_usage_mb")));
        ctl_duration((double)time(NULL) - json_number_value(json_object_get(m, "last_used")),
                     idle, sizeof idle);
        const char *device = json_string_value(json_object_get(m, "device"));
        json_array_append_new(rows, json_pack("[s,s,s,s,s]", name, device ? device : "-", vram, idle,
                                              json_is_true(json_object_get(m, "is_active")) ? "yes" : "no"));
    }
    printf("\nloaded models: %zu\n", json_array_size(rows));
    if (json_array_size(rows))
        ctl_table(header, 5, rows);
    json_decref(rows);
}

static void print_queue(json_t *tasks, json_t *status)
{
    json_t *sizes = json_object_get(tasks, "queue_sizes");
    printf("\nreservations: %zu\n", json_object_size(json_object_get(status, "allocated_resources")));
    printf("queue: high %lld, medium %lld, low %lld (workers %lld)\n",
           (long long)json_integer_value(json_object_get(sizes, "high")),
           (long long)json_integer_value(json_object_get(sizes, "medium")),
           (long long)json_integer_value(json_object_get(sizes, "low")),
           (long long)json_integer_value(json_object_get(tasks, "workers")));
    static const char *header[] = { "TASK", "TYPE", "PRIORITY", "ATTEMPTS", "DUE" };
    json_t *rows = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(tasks, "tasks"), i, t) {
        if (i == 20)
            break;
        char id[32], attempts[16];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(t, "task_id")));
        snprintf(attempts, sizeof attempts, "%lld",
                 (long long)json_integer_value(json_object_get(t, "attempts")));
        json_array_append_new(rows, json_pack("[s,s,s,s,s]", id,
                                              json_string_value(json_object_get(t, "type")),
                                              json_string_value(json_object_get(t, "priority")),
                                              attempts,
                                              json_string_value(json_object_get(t, "not_before"))));
    }
    if (json_array_size(rows))
        ctl_table(header, 5, rows);
    json_decref(rows);
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    (void)args;
    json_t *stats = ask(ctl, "get_stats");
    json_t *policy = stats ? ask(ctl, "get_vram_policy") : NULL;
    json_t *tasks = policy ? ask(ctl, "list_tasks") : NULL;
    json_t *status = tasks ? ask(ctl, "get_status") : NULL;
    int rc = status ? CTL_OK : CTL_UNREACHABLE;
    if (!rc && ctl->json) {
        json_t *gpus = json_object_get(json_object_get(stats, "stats"), "gpus");
        json_t *all = json_pack("{s:o, s:O, s:O, s:O, s:O, s:O}",
                                "gpus", gpus ? json_incref(gpus) : json_array(),
                                "devices", json_object_get(policy, "devices"),
                                "loaded_models", json_object_get(policy, "loaded_models"),
                                "allocated_resources", json_object_get(status, "allocated_resources"),
                                "queue_sizes", json_object_get(tasks, "queue_sizes"),
                                "tasks", json_object_get(tasks, "tasks"));
        ctl_print_json(all);
        json_decref(all);
    } else if (!rc) {
        print_devices(stats, policy);
        print_models(policy);
        print_queue(tasks, status);
    }
    json_decref(stats);
    json_decref(policy);
    json_decref(tasks);
    json_decref(status);
    return rc;
}

const ctl_command_t ctl_resources_command = {
    .name = "resources",
    .operands = "",
    .summary = "GPUs, VRAM used/reserved/free, loaded models, reservations, task queue",
    .description =
        "ResourceManager+Scheduler at a glance: each GPU (or the configured budget when\n"
        "there is none) with VRAM in MiB, the models loaded and how long idle, the live\n"
        "reservations and the task queue (the first 20 tasks).",
    .run = run,
};
