/*  migrate rollback: writes the configuration that gives the fifteen
 *  absorbed agents their work back.  Every module goes to `mode: delegate`
 *  with `delegate_to` the legacy agent's own address, so an agent that
 *  calls a Keel service is forwarded to the original; `fallback: true`
 *  keeps the C implementation answering while the legacy agent is still
 *  starting or down; `legacy_ports: false` frees the old ports for the
 *  agents themselves.  The legacy agents are listed for CoreOrchestrator
 *  to start again (core.agents, with their original script paths), each
 *  marked with its machine; --machine keeps one machine's agents only.
 *
 *  Switching back is a reload, not a restart: `keelctl reload` (or
 *  SIGHUP) after putting this file in place.  The output is YAML in flow
 *  style with JSON scalars, like `migrate config`'s. */
#include "ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *module, *service, *machine, *script;
    int port;
} legacy_agent_t;

/* Ports and scripts as the original startup configurations had them. */
static const legacy_agent_t agents[] = {
    { "ServiceRegistry", "CoreOrchestrator", "mainpc", "main_pc_code/agents/service_registry_agent.py", 7100 },
    { "SystemDigitalTwin", "CoreOrchestrator", "mainpc", "main_pc_code/agents/system_digital_twin.py", 7120 },
    { "RequestCoordinator", "CoreOrchestrator", "mainpc", "main_pc_code/agents/request_coordinator.py", 26002 },
    { "UnifiedSystemAgent", "CoreOrchestrator", "mainpc", "main_pc_code/agents/unified_system_agent.py", 7125 },
    { "ResourceManager", "ResourceManager", "pc2", "pc2_code/agents/resource_manager.py", 7113 },
    { "TaskScheduler", "ResourceManager", "pc2", "pc2_code/agents/task_scheduler.py", 7115 },
    { "AsyncProcessor", "ResourceManager", "pc2", "pc2_code/agents/async_processor.py", 7101 },
    { "VRAMOptimizerAgent", "ResourceManager", "mainpc", "main_pc_code/agents/vram_optimizer_agent.py", 5572 },
    { "PredictiveHealthMonitor", "ObservabilityHub", "mainpc", "main_pc_code/agents/predictive_health_monitor.py", 5613 },
    { "PerformanceMonitor", "ObservabilityHub", "pc2", "pc2_code/agents/performance_monitor.py", 7103 },
    { "HealthMonitor", "ObservabilityHub", "pc2", "pc2_code/agents/health_monitor.py", 7114 },
    { "SystemHealthManager", "ObservabilityHub", "pc2", "pc2_code/agents/ForPC2/system_health_manager.py", 7117 },
    { "PerformanceLoggerAgent", "ObservabilityHub", "pc2", "pc2_code/agents/PerformanceLoggerAgent.py", 7128 },
    { "AuthenticationAgent", "SecurityGateway", "pc2", "pc2_code/agents/ForPC2/AuthenticationAgent.py", 7116 },
    { "AgentTrustScorer", "SecurityGateway", "pc2", "pc2_code/agents/AgentTrustScorer.py", 7122 },
};
#define NAGENTS (sizeof agents / sizeof agents[0])

typedef struct {
    const char *output, *mainpc_host, *pc2_host, *machine;
} options_t;

static int parse(const ctl_args_t *args, options_t *o)
{
    *o = (options_t){ ctl_option(args, "output"), ctl_option(args, "mainpc-host"),
                      ctl_option(args, "pc2-host"), ctl_option(args, "machine") };
    if (!o->mainpc_host)
        o->mainpc_host = "127.0.0.1";
    if (!o->pc2_host)
        o->pc2_host = o->mainpc_host;
    if (!o->machine)
        o->machine = "all";
    if (strcmp(o->machine, "all") && strcmp(o->machine, "mainpc") && strcmp(o->machine, "pc2")) {
        ctl_warn("--machine is mainpc, pc2 or all");
        return -1;
    }
    return 0;
}

/* {modules: {...}, agents: [...]} for the options. */
static json_t *build(const options_t *o)
{
    json_t *modules = json_object(), *list = json_array();
    for (size_t i = 0; i < NAGENTS; i++) {
        const legacy_agent_t *a = &agents[i];
        const char *host = !strcmp(a->machine, "pc2") ? o->pc2_host : o->mainpc_host;
        char endpoint[300];
        snprintf(endpoint, sizeof endpoint, "tcp://%s:%d", host, a->port);
        json_object_set_new(modules, a->module, json_pack("{s:s, s:s, s:b}", "mode", "delegate",
                                                          "delegate_to", endpoint, "fallback", 1));
        if (strcmp(o->machine, "all") && strcmp(o->machine, a->machine))
            continue;
        json_array_append_new(list, json_pack("{s:s, s:s, s:[s], s:s, s:s, s:s, s:i}", "name", a->module,
                                              "command", "python3", "args", a->script,
                                              "restart", "on-failure", "machine", a->machine,
                                              "host", host, "port", a->port));
    }
    return json_pack("{s:o, s:o}", "modules", modules, "agents", list);
}

static void put_json(FILE *out, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    fputs(text, out);
    free(text);
}

static void write_yaml(FILE *out, const options_t *o, json_t *doc)
{
    fprintf(out, "# Rollback written by `keelctl migrate rollback`: every absorbed agent is\n"
                 "# delegated to its legacy process (MainPC %s, PC2 %s), with the C\n"
                 "# implementation as fallback.  Start the agents listed under core.agents,\n"
                 "# then `keelctl reload`.\n", o->mainpc_host, o->pc2_host);
    fprintf(out, "legacy_ports: false\nmodules:\n");
    const char *name;
    json_t *m;
    json_object_foreach(json_object_get(doc, "modules"), name, m) {
        fprintf(out, "  %s: ", name);
        put_json(out, m);
        fputc('\n', out);
    }
    fprintf(out, "core:\n  agents:\n");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "agents"), i, a) {
        fprintf(out, "    - ");
        put_json(out, a);
        fputc('\n', out);
    }
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    options_t o;
    if (parse(args, &o) < 0)
        return CTL_USAGE;
    json_t *doc = build(&o);
    int rc = 0;
    if (ctl->json && !o.output) {
        ctl_print_json(doc);
    } else {
        FILE *out = o.output ? fopen(o.output, "w") : stdout;
        if (!out) {
            ctl_warn("cannot write %s", o.output);
            rc = CTL_FAILED;
        } else {
            write_yaml(out, &o, doc);
            if (out != stdout && fclose(out) != 0) {
                ctl_warn("cannot write %s", o.output);
                rc = CTL_FAILED;
            }
            if (rc == 0)
                fprintf(stderr, "rollback: %zu modules delegated, %zu legacy agents to start\n",
                        json_object_size(json_object_get(doc, "modules")),
                        json_array_size(json_object_get(doc, "agents")));
        }
    }
    json_decref(doc);
    return rc;
}

static const ctl_option_t rollback_options[] = {
    { "output", 0, "FILE", "write the configuration here (default: stdout)" },
    { "mainpc-host", 0, "HOST", "where MainPC's legacy agents run (default 127.0.0.1)" },
    { "pc2-host", 0, "HOST", "where PC2's legacy agents run (default: --mainpc-host)" },
    { "machine", 0, "mainpc|pc2|all", "whose legacy agents to list for starting (default all)" },
    { NULL, 0, NULL, NULL },
};

const ctl_command_t ctl_migrate_rollback_command = {
    .name = "rollback",
    .operands = "",
    .summary = "write the configuration that hands every module back to its legacy agent",
    .description =
        "Writes a Keel configuration delegating every absorbed agent to its legacy\n"
        "process (with Keel's implementation as fallback) and listing the legacy agents\n"
        "to start; start them, then `keelctl reload`.",
    .options = rollback_options,
    .run = run,
    .local = true,
};
