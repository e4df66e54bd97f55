/*  service_harness: what the per-service dispatcher targets share.  A
 *  service's handlers need its real state (SQLite files, key files, HTTP
 *  routes, background threads), so the service is started for real, once
 *  per process: loopback ports moved by a random PORT_OFFSET, a data directory of its own under TMPDIR (scripts/fuzz.sh
 *  gives each target one and removes it), and the target's extra YAML.
 *  Each input is handed to the service's wire server in the fuzzing
 *  thread, which nothing else sends to, and the reply must always be a
 *  JSON object.  "root" is an administrator's token here (the seeds carry
 *  it, fuzz/seed.py), so the inputs reach the handlers of administrators'
 *  routes as well as the refusals. */
#ifndef KEEL_FUZZ_SERVICE_HARNESS_H
#define KEEL_FUZZ_SERVICE_HARNESS_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "service.h"
#include "wire.h"

static inline bool harness_is_admin(void *ctx, const char *token)
{
    (void)ctx;
    return strcmp(token, "root") == 0;
}

/* Other tests share the machine's loopback ports, so a start that cannot
 * bind is tried again at another offset rather than failing the run. */
static inline service_t *harness_start(const service_def_t *def, const char *extra_yaml)
{
    char dir[4096], yaml[8192], err[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/keel-fuzz-%s-XXXXXX", tmp ? tmp : "/tmp", def->name);
    if (!mkdtemp(dir))
        return NULL;
    log_set_level(LOG_ERROR);
    srand((unsigned)getpid());
    for (int attempt = 0; attempt < 20; attempt++) {
        snprintf(yaml, sizeof yaml, "data_dir: %s\nport_offset: %d\n%s", dir,
                 20000 + rand() % 1800 * 10, extra_yaml);  /* port_offset stays <= 38533 */
        config_t *cfg = config_new();
        if (config_load_text(cfg, yaml, def->name, err, sizeof err) != 0) {
            fprintf(stderr, "fuzz %s: %s\n", def->name, err);
            config_destroy(&cfg);
            return NULL;
        }
        service_t *svc = service_new(def, cfg);
        if (svc && service_start(svc) == 0) {
            privilege_set_admin_check(svc->privilege, harness_is_admin, NULL);
            return svc;
        }
        service_destroy(&svc);
        config_destroy(&cfg);
    }
    return NULL;
}

/* Every dispatcher target's one property: whatever came in, the reply is a
 * JSON object.  Takes the reply. */
static inline void harness_check_reply(char *reply)
{
    json_t *obj = json_loads(reply, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(obj)) {
        fprintf(stderr, "reply is not a JSON object: %s\n", reply);
        abort();
    }
    json_decref(obj);
    free(reply);
}

/* A service target's whole body: the service started on the first input,
 * then every input through its wire server. */
static inline int harness_fuzz(const service_def_t *def, const char *extra_yaml,
                               const uint8_t *data, size_t size)
{
    static service_t *svc;
    if (!svc)
        svc = harness_start(def, extra_yaml);
    if (!svc)
        abort();
    harness_check_reply(wire_server_handle(svc->wire, (const char *)data, size));
    return 0;
}
#endif
