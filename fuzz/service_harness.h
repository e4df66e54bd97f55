/*  service_harness: what the per-service dispatcher targets share.  A
 *  service's handlers need its real state (SQLite files, key files, HTTP
 *  routes, background threads), so the service is started for real, once
 *  per process: loopback ports moved by a PORT_OFFSET taken from the
 *  process id, a data directory of its own under TMPDIR (scripts/fuzz.sh
 *  gives each target one and removes it), and the target's extra YAML.
 *  Each input is handed to the service's wire server in the fuzzing
 *  thread, which nothing else sends to, and the reply must always be a
 *  JSON object. */
#ifndef KEEL_FUZZ_SERVICE_HARNESS_H
#define KEEL_FUZZ_SERVICE_HARNESS_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "service.h"
#include "wire.h"

static service_t *harness_start(const service_def_t *def, const char *extra_yaml)
{
    char dir[4096], yaml[8192], err[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/keel-fuzz-%s-XXXXXX", tmp ? tmp : "/tmp", def->name);
    if (!mkdtemp(dir))
        return NULL;
    snprintf(yaml, sizeof yaml, "data_dir: %s\nport_offset: %d\n%s", dir,
             20000 + (int)(getpid() % 4000) * 10, extra_yaml);
    log_set_level(LOG_ERROR);
    config_t *cfg = config_new();
    if (config_load_text(cfg, yaml, def->name, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz %s: %s\n", def->name, err);
        return NULL;
    }
    service_t *svc = service_new(def, cfg);
    return svc && service_start(svc) == 0 ? svc : NULL;
}

static void harness_handle(service_t *svc, const uint8_t *data, size_t size)
{
    char *reply = wire_server_handle(svc->wire, (const char *)data, size);
    json_t *obj = json_loads(reply, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(obj)) {
        fprintf(stderr, "reply is not a JSON object: %s\n", reply);
        abort();
    }
    json_decref(obj);
    free(reply);
}
#endif
