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

static int usage(void)
{
    fprintf(stderr, "usage: keelctl migrate rollback [--output FILE] [--mainpc-host H]"
                    " [--pc2-host H] [--machine mainpc|pc2|all]\n");
    return 2;
}

static int parse(int argc, char **argv, options_t *o)
{
    *o = (options_t){ NULL, "127.0.0.1", NULL, "all" };
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--output"))
            o->output = argv[i + 1];
        else if (!strcmp(argv[i], "--mainpc-host"))
            o->mainpc_host = argv[i + 1];
        else if (!strcmp(argv[i], "--pc2-host"))
            o->pc2_host = argv[i + 1];
        else if (!strcmp(argv[i], "--machine"))
            o->machine = argv[i + 1];
        else
            return -1;
    }
    if (argc % 2)
        return -1;
    if (!o->pc2_host)
        o->pc2_host = o->mainpc_host;
    return strcmp(o->machine, "all") && strcmp(o->machine, "mainpc") && strcmp(o->machine, "pc2")
           ? -1 : 0;
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

int ctl_migrate_rollback(ctl_t *ctl, int argc, char **argv)
{
    options_t o;
    if (parse(argc, argv, &o) < 0)
        return usage();
    json_t *doc = build(&o);
    int rc = 0;
    if (ctl->json && !o.output) {
        ctl_print_json(doc);
    } else {
        FILE *out = o.output ? fopen(o.output, "w") : stdout;
        if (!out) {
            fprintf(stderr, "keelctl: cannot write %s\n", o.output);
            rc = 1;
        } else {
            write_yaml(out, &o, doc);
            if (out != stdout && fclose(out) != 0) {
                fprintf(stderr, "keelctl: cannot write %s\n", o.output);
                rc = 1;
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
