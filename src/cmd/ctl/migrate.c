/*  migrate config: translates one machine's original startup configuration
 *  (the agent_groups layout of MainPC or the pc2_services list of PC2) into
 *  a Keel configuration.  The fifteen absorbed agents disappear from the
 *  agent list; every dependency on one of them becomes a dependency on the
 *  Keel service that absorbed it (deduplicated, order kept); every other
 *  agent is kept with its script, ports and flags, to be supervised by
 *  CoreOrchestrator and watched by ObservabilityHub.
 *
 *  The output is YAML written in flow style with JSON scalars, which every
 *  YAML parser reads and which needs no emitter library. */
#include "ctl.h"
#include "fsutil.h"
#include "yamljson.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *agent, *service; } absorbed[] = {
    { "ServiceRegistry", "CoreOrchestrator" },
    { "SystemDigitalTwin", "CoreOrchestrator" },
    { "RequestCoordinator", "CoreOrchestrator" },
    { "UnifiedSystemAgent", "CoreOrchestrator" },
    { "CoreOrchestrator", "CoreOrchestrator" },
    { "ResourceManager", "ResourceManager" },
    { "TaskScheduler", "ResourceManager" },
    { "AsyncProcessor", "ResourceManager" },
    { "VRAMOptimizerAgent", "ResourceManager" },
    { "PredictiveHealthMonitor", "ObservabilityHub" },
    { "PerformanceMonitor", "ObservabilityHub" },
    { "HealthMonitor", "ObservabilityHub" },
    { "PerformanceLoggerAgent", "ObservabilityHub" },
    { "SystemHealthManager", "ObservabilityHub" },
    { "ObservabilityHub", "ObservabilityHub" },
    { "ErrorBus", "ErrorBus" },
    { "ErrorManagementSystem", "ErrorBus" },
    { "ErrorReportingAgent", "ErrorBus" },
    { "ErrorRecoveryAgent", "ErrorBus" },
    { "AuthenticationAgent", "SecurityGateway" },
    { "AgentTrustScorer", "SecurityGateway" },
};

/* Keel's own ports; an agent kept on one of them must move before Keel
 * starts on that machine. */
static const int keel_ports[] = { 7000, 7001, 7002, 7003, 7005, 7150, 7151,
                                  8000, 8001, 8002, 8003, 8005 };

static bool is_keel_port(json_t *port)
{
    for (size_t i = 0; i < sizeof keel_ports / sizeof keel_ports[0]; i++)
        if (json_integer_value(port) == keel_ports[i])
            return true;
    return false;
}

static const char *absorbing_service(const char *agent)
{
    for (size_t i = 0; i < sizeof absorbed / sizeof absorbed[0]; i++)
        if (strcmp(absorbed[i].agent, agent) == 0)
            return absorbed[i].service;
    return NULL;
}

/* Appends `name` to `list` unless it is there already. */
static void append_unique(json_t *list, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (strcmp(json_string_value(v), name) == 0)
            return;
    json_array_append_new(list, json_string(name));
}

static json_t *translate_dependencies(json_t *deps)
{
    json_t *out = json_array();
    size_t i;
    json_t *dep;
    json_array_foreach(deps, i, dep) {
        if (!json_is_string(dep))
            continue;
        const char *service = absorbing_service(json_string_value(dep));
        append_unique(out, service ? service : json_string_value(dep));
    }
    return out;
}

/* One kept agent as Keel's supervision entry. */
static json_t *translate_agent(const char *name, json_t *spec, const char *machine)
{
    json_t *agent = json_pack("{s:s, s:s, s:[s?], s:s, s:s}", "name", name,
                              "command", "python3",
                              "args", json_string_value(json_object_get(spec, "script_path")),
                              "restart", json_is_false(json_object_get(spec, "required"))
                                         ? "on-failure" : "always",
                              "machine", machine);
    static const char *copied[] = { "port", "health_check_port", "host", "required", "config" };
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        json_t *v = json_object_get(spec, copied[i]);
        if (v)
            json_object_set(agent, copied[i], v);
    }
    json_object_set_new(agent, "depends_on",
                        translate_dependencies(json_object_get(spec, "dependencies")));
    return agent;
}

/* Visits every agent of either layout as (name, spec). */
static void each_agent(json_t *root, void (*fn)(const char *, json_t *, void *), void *arg)
{
    const char *group_name, *name;
    json_t *group, *spec;
    json_object_foreach(json_object_get(root, "agent_groups"), group_name, group)
        json_object_foreach(group, name, spec)
            if (json_is_object(spec))
                fn(name, spec, arg);
    size_t i;
    json_array_foreach(json_object_get(root, "pc2_services"), i, spec)
        if (json_is_string(json_object_get(spec, "name")))
            fn(json_string_value(json_object_get(spec, "name")), spec, arg);
}

typedef struct {
    const char *machine;
    json_t *agents, *watch, *removed, *seen, *conflicts;
} translation_t;

static void translate_one(const char *name, json_t *spec, void *arg)
{
    translation_t *t = arg;
    const char *service = absorbing_service(name);
    if (service) {
        json_object_set_new(t->removed, name, json_string(service));
        return;
    }
    if (json_object_get(t->seen, name))   /* listed twice in the original: keep the first */
        return;
    json_object_set_new(t->seen, name, json_true());
    json_array_append_new(t->agents, translate_agent(name, spec, t->machine));
    json_t *port = json_object_get(spec, "port");
    json_t *health = json_object_get(spec, "health_check_port");
    if (is_keel_port(port) || is_keel_port(health))
        json_array_append_new(t->conflicts, json_pack("{s:s, s:O, s:O}", "agent", name,
                                                      "port", port ? port : json_null(),
                                                      "health_check_port",
                                                      health ? health : json_null()));
    if (json_is_integer(port))
        json_array_append_new(t->watch, json_pack("{s:s, s:s, s:O, s:O, s:s}", "name", name,
                                                  "host", "127.0.0.1", "port", port,
                                                  "health_port", health ? health : json_null(),
                                                  "machine", t->machine));
}

static void put_yaml_value(FILE *out, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    fputs(text, out);
    free(text);
}

static void put_list(FILE *out, const char *indent, json_t *list)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        fprintf(out, "%s- ", indent);
        put_yaml_value(out, item);
        fputc('\n', out);
    }
}

/* A name from the legacy file in a YAML comment: escaped, so a newline in
 * it cannot end the comment and add configuration. */
static void put_comment_line(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_comment_line(FILE *out, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *safe = ctl_escape(text);
    fprintf(out, "# %s\n", safe);
    free(safe);
    free(text);
}

static void write_config(FILE *out, const char *source, translation_t *t)
{
    put_comment_line(out, "Keel configuration for %s, translated by `keelctl migrate config` from", t->machine);
    put_comment_line(out, "%s. Absorbed agents (now Keel services):", source);
    const char *name;
    json_t *service;
    json_object_foreach(t->removed, name, service)
        put_comment_line(out, "  %s -> %s", name, json_string_value(service));
    size_t i;
    json_t *conflict;
    json_array_foreach(t->conflicts, i, conflict)
        put_comment_line(out, "PORT CONFLICT: %s uses %lld/%lld, which a Keel service binds: move it first.",
                         json_string_value(json_object_get(conflict, "agent")),
                         json_integer_value(json_object_get(conflict, "port")),
                         json_integer_value(json_object_get(conflict, "health_check_port")));
    fprintf(out, "core:\n  agents:\n");
    put_list(out, "    ", t->agents);
    fprintf(out, "observability:\n  agents:\n");
    put_list(out, "    ", t->watch);
}

static int migrate_config(ctl_t *ctl, const ctl_args_t *args)
{
    const char *source = args->argv[0], *output = ctl_option(args, "output");
    const char *machine = ctl_option(args, "machine");
    if (machine && strcmp(machine, "mainpc") && strcmp(machine, "pc2")) {
        ctl_warn("--machine is mainpc or pc2");
        return CTL_USAGE;
    }
    char *text = fs_read_all(source, NULL);
    char err[256];
    json_t *root = text ? yamljson_parse(text, strlen(text), NULL, err, sizeof err) : NULL;
    free(text);
    if (!root) {
        ctl_warn("cannot read %s%s%s", source, text ? ": line " : "", text ? err : "");
        return CTL_FAILED;
    }
    if (!machine)
        machine = json_object_get(root, "pc2_services") ? "pc2" : "mainpc";
    translation_t t = { machine, json_array(), json_array(), json_object(), json_object(),
                        json_array() };
    each_agent(root, translate_one, &t);
    int rc = 0;
    if (ctl->json) {
        json_t *doc = json_pack("{s:{s:O}, s:{s:O}, s:O, s:O}", "core", "agents", t.agents,
                                "observability", "agents", t.watch, "absorbed", t.removed,
                                "port_conflicts", t.conflicts);
        ctl_print_json(doc);
        json_decref(doc);
    } else {
        FILE *out = output ? fopen(output, "w") : stdout;
        if (!out) {
            ctl_warn("cannot write %s", output);
            rc = CTL_FAILED;
        } else {
            write_config(out, source, &t);
            if (out != stdout)
                fclose(out);
            fprintf(stderr, "migrate: %zu agents kept, %zu absorbed, %zu port conflicts\n",
                    json_array_size(t.agents), json_object_size(t.removed),
                    json_array_size(t.conflicts));
        }
    }
    json_decref(t.agents);
    json_decref(t.watch);
    json_decref(t.removed);
    json_decref(t.seen);
    json_decref(t.conflicts);
    json_decref(root);
    return rc;
}

static const ctl_option_t config_options[] = {
    { "machine", 0, "mainpc|pc2", "which machine's layout (default: read from FILE)" },
    { "output", 0, "FILE", "write the Keel configuration here (default: stdout)" },
    { NULL, 0, NULL, NULL },
};

static const ctl_command_t config_command = {
    .name = "config",
    .operands = "FILE",
    .summary = "translate a legacy startup configuration into Keel's",
    .description =
        "Reads one machine's original startup configuration (MainPC's agent_groups or\n"
        "PC2's pc2_services) and writes a Keel configuration: the fifteen absorbed agents\n"
        "removed, dependencies on them moved to the Keel service that absorbed them,\n"
        "every other agent kept for CoreOrchestrator to supervise and ObservabilityHub to\n"
        "watch.  Kept agents on a port Keel binds are reported as port conflicts.",
    .options = config_options,
    .min_operands = 1,
    .max_operands = 1,
    .run = migrate_config,
    .local = true,
};

static const ctl_command_t *const migrate_subcommands[] = {
    &config_command, &ctl_migrate_state_command, &ctl_migrate_rollback_command, NULL,
};

const ctl_command_t ctl_migrate_command = {
    .name = "migrate",
    .operands = "",
    .summary = "move from the legacy agents: config, state, rollback",
    .subcommands = migrate_subcommands,
};
