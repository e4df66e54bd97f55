/*  test_config: the layering (defaults < YAML file < environment < flags),
 *  the key table's checks at every depth, and the error texts, which must
 *  name the file, the line and the dotted key exactly, since they are what
 *  an operator sees when keeld refuses to start. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "configkeys.h"
#include "fsutil.h"
#include "service.h"
#include "log.h"
#include "testutil.h"

#include "core/core.h"
#include "errorbus/errorbus.h"
#include "observability/observability.h"
#include "resource/resource.h"
#include "security/security.h"

typedef struct {
    char dir[64];
    char path[128];
    config_t *cfg;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-config-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/x.yaml", f->dir);
    f->cfg = config_new();
    *state = f;
    return f->cfg ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    config_destroy(&f->cfg);
    tu_rmtree(f->dir);
    free(f);
    unsetenv("PORT_OFFSET");
    unsetenv("KEEL_DATA_DIR");
    unsetenv("SECURE_ZMQ");
    unsetenv("KEEL_BIND");
    unsetenv("KEEL_LOG_LEVEL");
    return 0;
}

static void write_file(const char *path, const char *text)
{
    assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600), 0);
}

static void test_defaults(void **state)
{
    config_t *c = ((fixture_t *)*state)->cfg;
    assert_string_equal(config_str(c, "bind", NULL), "127.0.0.1");
    assert_int_equal(config_int(c, "port_offset", -1), 0);
    assert_string_equal(config_str(c, "data_dir", NULL), "./var/keel");
    assert_int_equal(config_int(c, "max_request_bytes", 0), 1048576);
    assert_false(config_bool(c, "secure_zmq", true));
    assert_int_equal(config_int(c, "security.lockout.failures", 0), 5);
    assert_int_equal(config_int(c, "security.lockout.window_s", 0), 900);
    assert_string_equal(config_str(c, "core.registry.backend", NULL), "sqlite");
    /* An integer default reads as a double too. */
    assert_true(config_double(c, "resource.thresholds.cpu", 0) == 80.0);
    assert_true(json_is_array(config_get(c, "core.agents")));
    assert_true(json_is_object(config_get(c, "modules")));
    /* Absent keys and wrong-type reads give the fallback. */
    assert_null(config_get(c, "nope"));
    assert_null(config_get(c, "security.nope.deeper"));
    assert_string_equal(config_str(c, "nope.x", "fb"), "fb");
    assert_int_equal(config_int(c, "bind", 77), 77);
    assert_true(config_bool(c, "port_offset", true));
    assert_true(config_double(c, "bind", 1.5) == 1.5);
}

static void test_file_merges_over_defaults(void **state)
{
    fixture_t *f = *state;
    write_file(f->path,
               "# comment\n"
               "port_offset: 10\n"
               "security:\n"
               "  lockout:\n"
               "    failures: 7\n"
               "core:\n"
               "  agents:\n"
               "    - name: A\n"
               "      port: 5000\n"
               "modules:\n"
               "  ServiceRegistry: {mode: delegate, delegate_to: \"tcp://10.0.0.1:7100\"}\n");
    char err[256] = "";
    assert_int_equal(config_load_file(f->cfg, f->path, err, sizeof err), 0);
    assert_int_equal(config_int(f->cfg, "port_offset", 0), 10);
    assert_int_equal(config_int(f->cfg, "security.lockout.failures", 0), 7);
    /* Siblings of a merged key keep their defaults. */
    assert_int_equal(config_int(f->cfg, "security.lockout.window_s", 0), 900);
    assert_false(config_bool(f->cfg, "security.allow_registration", true));
    json_t *agents = config_get(f->cfg, "core.agents");
    assert_int_equal(json_array_size(agents), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(agents, 0), "port")), 5000);
    assert_string_equal(config_str(f->cfg, "modules.ServiceRegistry.mode", NULL), "delegate");
    assert_string_equal(config_str(f->cfg, "modules.ServiceRegistry.delegate_to", NULL),
                        "tcp://10.0.0.1:7100");
    assert_int_equal(config_port(f->cfg, 7000), 7010);
}

static void test_type_mismatch_names_file_line_key(void **state)
{
    fixture_t *f = *state;
    write_file(f->path,
               "security:\n"
               "  lockout:\n"
               "    failures: many\n");
    char err[512] = "", want[512];
    assert_int_equal(config_load_file(f->cfg, f->path, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "%s:3: key 'security.lockout.failures': expected integer, got string", f->path);
    assert_string_equal(err, want);
    /* The default survives a refused file. */
    assert_int_equal(config_int(f->cfg, "security.lockout.failures", 0), 5);
}

static void test_type_mismatch_kinds(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "secure_zmq: 1\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1: key 'secure_zmq': expected boolean, got integer");
    assert_int_equal(config_load_text(f->cfg, "\n\nmodules: 5\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:3: key 'modules': expected mapping, got integer");
    assert_int_equal(config_load_text(f->cfg, "core:\n  agents: {a: 1}\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: key 'core.agents': expected list, got mapping");
    assert_int_equal(config_load_text(f->cfg, "bind: \"5\"\nport_offset: \"5\"\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: key 'port_offset': expected integer, got string");
    assert_int_equal(config_load_text(f->cfg, "security: []\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1: key 'security': expected mapping, got list");
}

static void test_unknown_top_level_key(void **state)
{
    fixture_t *f = *state;
    write_file(f->path, "bind: 127.0.0.1\nport_ofset: 5\n");
    char err[512] = "", want[512];
    assert_int_equal(config_load_file(f->cfg, f->path, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2: unknown key 'port_ofset' (did you mean 'port_offset'?)",
             f->path);
    assert_string_equal(err, want);
}

/* Issue 18: a typo at any depth used to be accepted with "configuration OK". */
static void test_unknown_nested_keys_are_refused(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "security:\n  lockout: {windw_s: 900}\n", "t.yaml",
                                      err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: unknown key 'security.lockout.windw_s' "
                             "(did you mean 'window_s'?)");
    assert_int_equal(config_load_text(f->cfg, "security:\n  new_knob: 3\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: unknown key 'security.new_knob'");
    /* Inside a list of mappings, the item's index is in the name. */
    assert_int_equal(config_load_text(f->cfg,
                                      "core:\n  agents:\n    - name: A\n    - name: B\n"
                                      "      comand: run\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:5: unknown key 'core.agents[1].comand' "
                             "(did you mean 'command'?)");
    assert_int_equal(config_load_text(f->cfg, "observability:\n  agents: [5]\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: key 'observability.agents[0]': expected mapping, got integer");
    /* A module must be an absorbed agent's name. */
    assert_int_equal(config_load_text(f->cfg, "modules:\n  ServiceRegstry: {mode: delegate}\n",
                                      "t.yaml", err, sizeof err), -1);
    assert_non_null(strstr(err, "t.yaml:2: key 'modules.ServiceRegstry': 'ServiceRegstry' is not one "
                                "of ServiceRegistry|"));
    assert_int_equal(config_load_text(f->cfg, "modules:\n  HealthMonitor: {mod: delegate}\n",
                                      "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: unknown key 'modules.HealthMonitor.mod' (did you mean 'mode'?)");
    /* Free-form mappings take anything: an agent's environment and settings. */
    assert_int_equal(config_load_text(f->cfg,
                                      "core:\n  agents:\n    - name: A\n      env: {X: \"1\"}\n"
                                      "      config: {anything: [1, 2]}\n", "t.yaml", err,
                                      sizeof err), 0);
}

/* The hub no longer runs processes: its old keys say where they went. */
static void test_moved_keys_name_their_new_home(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg,
                                      "observability:\n  agents:\n    - name: A\n      command: /bin/a\n",
                                      "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:4: key 'observability.agents[0].command' has moved to "
                             "core.agents[].command (ObservabilityHub no longer runs processes: "
                             "CoreOrchestrator runs every agent Keel starts; list the agent under "
                             "core.agents, dependencies as depends_on)");
    assert_int_equal(config_load_text(f->cfg, "observability: {stop_grace_s: 1}\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "key 'observability.stop_grace_s' has moved to core.supervisor.stop_grace_s ("));
    assert_int_equal(config_load_text(f->cfg, "observability: {spawn_retry_s: 1}\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "has moved to core.supervisor.backoff_base_s"));
    /* A watched agent, without a command, is as welcome as ever. */
    assert_int_equal(config_load_text(f->cfg,
                                      "observability:\n  agents:\n    - {name: A, port: 5, dependencies: [B]}\n",
                                      "t.yaml", err, sizeof err), 0);
}

/* Issue 18: --port-offset 99999 and -5 were accepted. */
static void test_values_out_of_range_are_refused(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "port_offset: 99999\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1: key 'port_offset': 99999 is out of range 0..38533");
    assert_int_equal(config_load_text(f->cfg, "resource:\n  thresholds: {cpu: 120.5}\n", "t.yaml",
                                      err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:2: key 'resource.thresholds.cpu': 120.5 is out of range 0..100");
    assert_int_equal(config_load_text(f->cfg, "core:\n  registry:\n    backend: mysql\n", "t.yaml",
                                      err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:3: key 'core.registry.backend': 'mysql' is not one of "
                             "sqlite|memory|redis");
    assert_int_equal(config_set(f->cfg, "port_offset", "-5", err, sizeof err), -1);
    assert_string_equal(err, "key 'port_offset': -5 is out of range 0..38533");
    setenv("PORT_OFFSET", "99999", 1);
    assert_int_equal(config_apply_env(f->cfg, err, sizeof err), -1);
    assert_string_equal(err, "environment PORT_OFFSET: key 'port_offset': 99999 is out of range 0..38533");
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
    /* A port key moved past 65535 by the offset, from either side. */
    assert_int_equal(config_load_text(f->cfg, "port_offset: 30000\ncore:\n  coordinator:\n"
                                      "    suggestion_port: 40000\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:4: key 'core.coordinator.suggestion_port': 40000 + port_offset "
                             "30000 is above 65535");
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
    assert_int_equal(config_set(f->cfg, "observability.status_port", "60000", err, sizeof err), 0);
    assert_int_equal(config_set(f->cfg, "port_offset", "6000", err, sizeof err), -1);
    assert_string_equal(err, "key 'observability.status_port': 60000 + port_offset 6000 is above 65535");
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
}

/* Nothing of a refused file is applied, even the keys before the bad one. */
static void test_refused_file_changes_nothing(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "port_offset: 10\nsecurity:\n  lockout:\n"
                                      "    failures: 9\n    windw_s: 1\n", "t.yaml", err,
                                      sizeof err), -1);
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
    assert_int_equal(config_int(f->cfg, "security.lockout.failures", 0), 5);
}

/* null puts a key back to its default, or removes a key that has none. */
static void test_null_restores_the_default(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "bind: 0.0.0.0\nresource:\n  scheduler:\n"
                                      "    workers: 4\n", "a.yaml", err, sizeof err), 0);
    assert_int_equal(config_load_text(f->cfg, "bind: ~\nresource:\n  scheduler:\n    workers:\n",
                                      "b.yaml", err, sizeof err), 0);
    assert_string_equal(config_str(f->cfg, "bind", NULL), "127.0.0.1");
    assert_null(config_get(f->cfg, "resource.scheduler.workers"));
    /* A mapping left empty keeps what it held. */
    assert_int_equal(config_load_text(f->cfg, "security:\nresource:\n", "c.yaml", err, sizeof err), 0);
    assert_int_equal(config_int(f->cfg, "security.lockout.failures", 0), 5);
}

/* The table itself: every default has its key's type and lies in its
 * range, every range parses, and parents are declared before children. */
static void test_key_table_is_consistent(void **state)
{
    (void)state;
    size_t n;
    const configkey_t *keys = configkeys_all(&n);
    assert_true(n > 200);
    for (size_t i = 0; i < n; i++) {
        const configkey_t *k = &keys[i];
        assert_non_null(k->meaning);
        assert_true(strlen(k->meaning) > 5);
        assert_ptr_equal(configkeys_find(k->name), k);          /* no duplicate */
        json_t *def = configkeys_default(k);
        if (def) {
            char why[256] = "";
            if (!configkeys_type_fits(k, def) || !configkeys_in_range(k, def, why, sizeof why))
                fail_msg("%s: default %s does not fit (%s)", k->name, k->def, why);
            json_decref(def);
        }
        if (k->range && strstr(k->range, "..")) {
            assert_true(k->type == CK_INTEGER || k->type == CK_NUMBER || k->type == CK_PORT);
            char lo[32], *end;
            snprintf(lo, sizeof lo, "%.*s", (int)(strstr(k->range, "..") - k->range), k->range);
            if (*lo) {
                strtod(lo, &end);
                assert_true(*end == '\0');
            }
            const char *hi = strstr(k->range, "..") + 2;
            if (*hi) {
                strtod(hi, &end);
                assert_true(*end == '\0');
            }
        }
        const char *dot = strrchr(k->name, '.');
        if (dot) {
            char parent[160];
            snprintf(parent, sizeof parent, "%.*s", (int)(dot - k->name), k->name);
            size_t plen = strlen(parent);
            if (plen > 2 && !strcmp(parent + plen - 2, "[]"))
                parent[plen - 2] = '\0';
            const configkey_t *p = configkeys_find(parent);
            if (!p || p > k)
                fail_msg("%s: parent %s is not declared before it", k->name, parent);
        }
    }
}

/* modules.<name> takes exactly the absorbed agents the services declare. */
static void test_module_names_are_the_services_modules(void **state)
{
    (void)state;
    const service_def_t *defs[] = { &core_service, &resource_service, &observability_service,
                                    &errorbus_service, &security_service };
    const configkey_t *any = configkeys_find("modules.*");
    assert_non_null(any);
    size_t declared = 0;
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        for (const service_module_t *m = defs[i]->modules; m && m->name; m++, declared++)
            if (!configkeys_name_allowed(any, m->name, NULL, 0))
                fail_msg("module %s is missing from modules.* in configkeys.c", m->name);
    size_t listed = 1;
    for (const char *p = any->range; (p = strchr(p, '|')) != NULL; p++)
        listed++;
    assert_int_equal(listed, declared);
}

static void test_bad_yaml_and_bad_documents(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "a: [1,\n", "t.yaml", err, sizeof err), -1);
    assert_true(strncmp(err, "t.yaml:", 7) == 0);
    assert_int_equal(config_load_text(f->cfg, "- 1\n- 2\n", "t.yaml", err, sizeof err), -1);
    assert_string_equal(err, "t.yaml:1: the document must be a mapping of keys");
    /* An empty file changes nothing. */
    assert_int_equal(config_load_text(f->cfg, "", "t.yaml", err, sizeof err), 0);
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
    /* A missing file names the path. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.yaml", f->dir);
    assert_int_equal(config_load_file(f->cfg, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));
}

static void test_env_overrides(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_load_text(f->cfg, "port_offset: 3\n", "t.yaml", err, sizeof err), 0);
    setenv("PORT_OFFSET", "100", 1);
    setenv("KEEL_DATA_DIR", "/tmp/elsewhere", 1);
    setenv("SECURE_ZMQ", "1", 1);
    setenv("KEEL_BIND", "0.0.0.0", 1);
    assert_int_equal(config_apply_env(f->cfg, err, sizeof err), 0);
    assert_int_equal(config_int(f->cfg, "port_offset", 0), 100);
    assert_int_equal(config_port(f->cfg, 7000), 7100);
    assert_string_equal(config_str(f->cfg, "data_dir", NULL), "/tmp/elsewhere");
    assert_true(config_bool(f->cfg, "secure_zmq", false));
    char endpoint[64];
    config_local_endpoint(f->cfg, 7150, endpoint, sizeof endpoint);
    assert_string_equal(endpoint, "tcp://127.0.0.1:7250");    /* never connect to 0.0.0.0 */
    setenv("SECURE_ZMQ", "false", 1);
    assert_int_equal(config_apply_env(f->cfg, err, sizeof err), 0);
    assert_false(config_bool(f->cfg, "secure_zmq", true));
}

static void test_env_bad_value(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    setenv("PORT_OFFSET", "12abc", 1);
    assert_int_equal(config_apply_env(f->cfg, err, sizeof err), -1);
    assert_string_equal(err, "environment PORT_OFFSET: key 'port_offset': expected integer, got '12abc'");
    assert_int_equal(config_int(f->cfg, "port_offset", -1), 0);
}

static void test_set_from_flag_text(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_int_equal(config_set(f->cfg, "port_offset", "25", err, sizeof err), 0);
    assert_int_equal(config_port(f->cfg, 8000), 8025);
    assert_int_equal(config_set(f->cfg, "legacy_ports", "yes", err, sizeof err), 0);
    assert_true(config_bool(f->cfg, "legacy_ports", false));
    assert_int_equal(config_set(f->cfg, "legacy_ports", "0", err, sizeof err), 0);
    assert_false(config_bool(f->cfg, "legacy_ports", true));
    assert_int_equal(config_set(f->cfg, "security.lockout.failures", "9", err, sizeof err), 0);
    assert_int_equal(config_int(f->cfg, "security.lockout.failures", 0), 9);
    assert_int_equal(config_set(f->cfg, "data_dir", "/d", err, sizeof err), 0);
    assert_string_equal(config_str(f->cfg, "data_dir", NULL), "/d");

    assert_int_equal(config_set(f->cfg, "security.lockout.failures", "x", err, sizeof err), -1);
    assert_string_equal(err, "key 'security.lockout.failures': expected integer, got 'x'");
    assert_int_equal(config_set(f->cfg, "legacy_ports", "maybe", err, sizeof err), -1);
    assert_string_equal(err, "key 'legacy_ports': expected boolean, got 'maybe'");
    assert_int_equal(config_set(f->cfg, "nope", "1", err, sizeof err), -1);
    assert_string_equal(err, "unknown key 'nope'");
    assert_int_equal(config_set(f->cfg, "port_offset", "", err, sizeof err), -1);
    assert_int_equal(config_set(f->cfg, "security", "x", err, sizeof err), -1);
    assert_int_equal(config_int(f->cfg, "port_offset", 0), 25);
}

static void test_port_and_endpoint(void **state)
{
    fixture_t *f = *state;
    char err[256], endpoint[64];
    assert_int_equal(config_port(f->cfg, 7003), 7003);
    config_local_endpoint(f->cfg, 7003, endpoint, sizeof endpoint);
    assert_string_equal(endpoint, "tcp://127.0.0.1:7003");
    assert_int_equal(config_set(f->cfg, "port_offset", "1000", err, sizeof err), 0);
    assert_int_equal(config_port(f->cfg, 7003), 8003);
    assert_int_equal(config_set(f->cfg, "bind", "10.1.2.3", err, sizeof err), 0);
    config_local_endpoint(f->cfg, 7003, endpoint, sizeof endpoint);
    assert_string_equal(endpoint, "tcp://10.1.2.3:8003");
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_merges_over_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_mismatch_names_file_line_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_mismatch_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_top_level_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_nested_keys_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_keys_name_their_new_home, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_out_of_range_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_file_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_restores_the_default, setup, teardown),
        cmocka_unit_test(test_key_table_is_consistent),
        cmocka_unit_test(test_module_names_are_the_services_modules),
        cmocka_unit_test_setup_teardown(test_bad_yaml_and_bad_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_bad_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_from_flag_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_and_endpoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
