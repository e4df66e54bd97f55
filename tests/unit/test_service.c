/*  test_service: the lifecycle every service shares, driven through a test
 *  definition on a free PORT_OFFSET and a temp data directory: the health
 *  dict of CO-9 (docs/wire-protocol.md) (plus service, version, uptime) on
 *  ZMQ and HTTP, 503 while the start hook runs, /metrics counting requests,
 *  the hooks' order, refusals when a hook, a port or the data directory's
 *  lock fails or a route is declared wrong, GET /routes, and the `reload`
 *  action (administrators only). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "service.h"
#include "testutil.h"
#include "token.h"

#define ZMQ_BASE 7990
#define HTTP_BASE 8990

static atomic_int stops, slow_start_ms, reloads, loads;

typedef struct {
    int calls;
} impl_t;

static json_t *on_double(void *ctx, wire_request_t *req)
{
    service_t *svc = ctx;
    ((impl_t *)svc->impl)->calls++;
    json_int_t x = json_integer_value(json_object_get(req->body, "x"));
    return json_pack("{s:s, s:I}", "status", "success", "result", x * 2);
}

static const wire_route_t routes[] = {
    { WIRE_ACTION, "double", on_double, "Doubler", ROUTE_PUBLIC },
    { 0 },
};

static int start_hook(service_t *svc)
{
    usleep((useconds_t)atomic_load(&slow_start_ms) * 1000);
    svc->impl = calloc(1, sizeof(impl_t));
    wire_server_attach(svc->wire, routes, svc);
    return 0;
}

static void stop_hook(service_t *svc)
{
    atomic_fetch_add(&stops, 1);
    free(svc->impl);        /* NULL when start never ran */
    svc->impl = NULL;
}

static void health_hook(service_t *svc, json_t *dict)
{
    impl_t *impl = svc->impl;
    json_object_set_new(dict, "doubles", json_integer(impl->calls));
}

static void reload_hook(service_t *svc, config_t *fresh)
{
    (void)svc;
    if (strcmp(config_str(fresh, "log_level", "info"), "debug") == 0)
        atomic_fetch_add(&reloads, 1);
}

/* service_loader_fn: a configuration the reload hook recognises, or an
 * error when ctx says the file is broken. */
static config_t *test_loader(void *ctx, char *err, size_t errlen)
{
    atomic_fetch_add(&loads, 1);
    if (ctx) {
        snprintf(err, errlen, "keel.yaml:3: key 'x': expected integer");
        return NULL;
    }
    config_t *c = config_new();
    if (config_load_text(c, "log_level: debug\n", "test", err, errlen) < 0)
        config_destroy(&c);         /* runs on the server's thread: no assert here */
    return c;
}

static int failing_start(service_t *svc)
{
    (void)svc;
    return -1;
}

static const service_module_t modules[] = { { .name = "Doubler" }, { .name = NULL } };

static const service_def_t test_def = {
    .name = "svctest", .title = "TestService", .zmq_port = ZMQ_BASE, .http_port = HTTP_BASE,
    .start = start_hook, .stop = stop_hook, .health = health_hook, .reload = reload_hook,
    .modules = modules,
};

/* Routes declared wrong: the service must refuse to start. */
static const wire_route_t stray_routes[] = {
    { WIRE_ACTION, "stray", on_double, "NoSuchAgent", ROUTE_PUBLIC },
    { 0 },
};
static const wire_route_t unprivileged_routes[] = {
    { WIRE_ACTION, "bare", on_double, NULL, ROUTE_UNDECLARED },
    { 0 },
};

static int stray_start(service_t *svc)
{
    wire_server_attach(svc->wire, stray_routes, svc);
    return 0;
}

static int unprivileged_start(service_t *svc)
{
    wire_server_attach(svc->wire, unprivileged_routes, svc);
    return 0;
}

typedef struct {
    char dir[64];
    config_t *config;
    int offset;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-svc-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    srand((unsigned)getpid() ^ (unsigned)(clock_wall() * 1000));
    for (int i = 0; i < 200 && !f->offset; i++) {
        int offset = (100 + rand() % 2900) * 10;
        if (tu_port_free(ZMQ_BASE + offset) && tu_port_free(HTTP_BASE + offset))
            f->offset = offset;
    }
    f->config = config_new();
    char err[256], text[32];
    snprintf(text, sizeof text, "%d", f->offset);
    config_set(f->config, "port_offset", text, err, sizeof err);
    config_set(f->config, "data_dir", f->dir, err, sizeof err);
    atomic_store(&stops, 0);
    atomic_store(&slow_start_ms, 0);
    atomic_store(&reloads, 0);
    atomic_store(&loads, 0);
    *state = f;
    return f->offset ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    config_destroy(&f->config);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static json_t *zmq_ask(fixture_t *f, const char *action)
{
    char endpoint[64], err[256] = "";
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ZMQ_BASE + f->offset);
    json_t *req = json_pack("{s:s, s:i}", "action", action, "x", 21);
    json_t *reply = wire_call(endpoint, req, 3000, 0, err, sizeof err);
    json_decref(req);
    if (!reply)
        print_error("%s\n", err);
    assert_non_null(reply);
    return reply;
}

/* Every field of CO-9 plus Keel's, with the right types and values. */
static void check_health_dict(json_t *h)
{
    assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
    assert_true(json_is_true(json_object_get(h, "ready")));
    assert_true(json_is_true(json_object_get(h, "initialized")));
    assert_string_equal(json_string_value(json_object_get(h, "message")), "TestService is healthy");
    double ts;
    const char *timestamp = json_string_value(json_object_get(h, "timestamp"));
    assert_non_null(timestamp);
    assert_null(strchr(timestamp, 'Z'));        /* isoformat of local time: no zone */
    assert_int_equal(clock_parse_iso(timestamp, &ts), 0);
    assert_true(ts > clock_wall() - 60 && ts < clock_wall() + 1);
    assert_true(json_is_real(json_object_get(h, "uptime")));
    assert_true(json_real_value(json_object_get(h, "uptime")) >= 0);
    assert_true(json_is_integer(json_object_get(h, "active_threads")));
    assert_true(json_integer_value(json_object_get(h, "active_threads")) >= 2);
    assert_string_equal(json_string_value(json_object_get(h, "service")), "TestService");
    assert_string_equal(json_string_value(json_object_get(h, "version")), KEEL_VERSION);
    assert_true(json_is_number(json_object_get(h, "requests")));
    assert_int_equal(json_integer_value(json_object_get(h, "pid")), getpid());
    json_t *ports = json_object_get(h, "ports");
    assert_true(json_integer_value(json_object_get(ports, "zmq")) > ZMQ_BASE);
    assert_int_equal(json_integer_value(json_object_get(ports, "http")),
                     json_integer_value(json_object_get(ports, "zmq")) + HTTP_BASE - ZMQ_BASE);
}

static void test_health_before_start(void **state)
{
    fixture_t *f = *state;
    service_t *svc = service_new(&test_def, f->config);
    json_t *h = service_health(svc);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "starting");
    assert_true(json_is_false(json_object_get(h, "ready")));
    assert_true(json_is_false(json_object_get(h, "initialized")));
    assert_string_equal(json_string_value(json_object_get(h, "message")), "TestService is starting");
    assert_null(json_object_get(h, "doubles"));     /* the hook runs only when ready */
    json_decref(h);
    service_destroy(&svc);
    assert_null(svc);
    assert_int_equal(atomic_load(&stops), 1);       /* stop tolerates impl == NULL */
}

static void test_start_serve_stop(void **state)
{
    fixture_t *f = *state;
    service_t *svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), 0);

    /* ZMQ: the three health actions and the service's own action. */
    for (int i = 0; i < 3; i++) {
        static const char *actions[] = { "ping", "health", "health_check" };
        json_t *h = zmq_ask(f, actions[i]);
        check_health_dict(h);
        json_decref(h);
    }
    json_t *r = zmq_ask(f, "double");
    assert_int_equal(json_integer_value(json_object_get(r, "result")), 42);
    json_decref(r);
    r = zmq_ask(f, "nope");
    assert_string_equal(json_string_value(json_object_get(r, "error")), "Unknown action: nope");
    json_decref(r);
    json_t *h = zmq_ask(f, "health");
    assert_int_equal(json_integer_value(json_object_get(h, "doubles")), 1);
    assert_true(json_number_value(json_object_get(h, "requests")) == 5);
    json_decref(h);

    /* HTTP /health: 200 and the same dict. */
    tu_http_t resp;
    int http_port = HTTP_BASE + f->offset;
    assert_int_equal(tu_http_get(http_port, "/health", &resp), 0);
    assert_int_equal(resp.status, 200);
    h = json_loads(resp.body, 0, NULL);
    assert_non_null(h);
    check_health_dict(h);
    assert_int_equal(json_integer_value(json_object_get(h, "doubles")), 1);
    json_decref(h);
    tu_http_free(&resp);

    /* /metrics counts what was asked. */
    assert_int_equal(tu_http_get(http_port, "/metrics", &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strcasestr(resp.head, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(resp.body, "# TYPE keel_requests_total counter\n"));
    assert_non_null(strstr(resp.body,
                           "keel_requests_total{service=\"svctest\",action=\"ping\",outcome=\"ok\"} 1\n"));
    assert_non_null(strstr(resp.body,
                           "keel_requests_total{service=\"svctest\",action=\"unknown\",outcome=\"error\"} 1\n"));
    assert_non_null(strstr(resp.body, "keel_uptime_seconds{service=\"svctest\"} "));
    assert_non_null(strstr(resp.body, "keel_http_requests_total{service=\"svctest\",route=\"/health\",code=\"200\"} 1\n"));
    tu_http_free(&resp);

    /* The data directory is the service's own. */
    char path[256], want[256];
    snprintf(want, sizeof want, "%s/svctest/x.db", f->dir);
    assert_string_equal(service_path(svc, "x.db", path, sizeof path), want);
    struct stat st;
    snprintf(path, sizeof path, "%s/svctest", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    double up = service_uptime(svc);
    usleep(20000);
    assert_true(service_uptime(svc) >= up + 0.019);

    service_stop(svc);
    assert_int_equal(atomic_load(&stops), 1);
    assert_null(svc->impl);
    assert_int_equal(tu_http_get(http_port, "/health", &resp), -1);     /* nobody listens */
    service_stop(svc);                                                  /* idempotent */
    service_destroy(&svc);
    assert_int_equal(atomic_load(&stops), 1);

    /* The same ports can be taken again (a restart).  libzmq closes a
     * listening socket on its I/O thread after zmq_close returns, so the
     * ZMQ port is waited for; HTTP's must be free at once (SO_REUSEADDR
     * despite the TIME_WAIT connections of the requests above). */
    for (int i = 0; i < 200 && !tu_port_free(ZMQ_BASE + f->offset); i++)
        usleep(10000);
    assert_true(tu_port_free(HTTP_BASE + f->offset));
    svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), 0);
    h = zmq_ask(f, "ping");
    check_health_dict(h);
    json_decref(h);
    service_destroy(&svc);
}

static void *start_thread(void *arg)
{
    service_t *svc = arg;
    return (void *)(intptr_t)service_start(svc);
}

/* Health replies come from a cached text, but every field a reply may
 * not repeat is its own: a new timestamp and uptime, the request count
 * including every request before it; and what a request changed shows in
 * the very next reply, however soon. */
static void test_health_replies_stay_true(void **state)
{
    fixture_t *f = *state;
    service_t *svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), 0);
    double last_uptime = -1, last_requests = -1;
    char last_ts[64] = "";
    for (int i = 0; i < 20; i++) {
        json_t *h = zmq_ask(f, "ping");
        check_health_dict(h);
        double uptime = json_real_value(json_object_get(h, "uptime"));
        double requests = json_real_value(json_object_get(h, "requests"));
        const char *ts = json_string_value(json_object_get(h, "timestamp"));
        assert_true(uptime > last_uptime);
        assert_true(strcmp(ts, last_ts) > 0);
        if (last_requests >= 0)
            assert_true(requests == last_requests + 1 + (i % 5 == 0));
        assert_int_equal(json_integer_value(json_object_get(h, "doubles")), i / 5);
        last_uptime = uptime;
        last_requests = requests;
        snprintf(last_ts, sizeof last_ts, "%s", ts);
        json_decref(h);
        if (i % 5 == 4)
            json_decref(zmq_ask(f, "double"));
    }
    service_destroy(&svc);
}

static void test_503_while_starting(void **state)
{
    fixture_t *f = *state;
    atomic_store(&slow_start_ms, 600);
    service_t *svc = service_new(&test_def, f->config);
    pthread_t t;
    pthread_create(&t, NULL, start_thread, svc);
    int http_port = HTTP_BASE + f->offset;
    tu_http_t resp = { 0 };
    int got_503 = 0;
    for (int i = 0; i < 100 && !got_503; i++) {
        if (tu_http_get(http_port, "/health", &resp) == 0) {
            if (resp.status == 503) {
                got_503 = 1;
                assert_non_null(strstr(resp.body, "\"status\":\"starting\""));
            }
            tu_http_free(&resp);
        }
        if (!got_503)
            usleep(10000);
    }
    void *rc;
    pthread_join(t, &rc);
    assert_true(got_503);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(tu_http_get(http_port, "/health", &resp), 0);
    assert_int_equal(resp.status, 200);
    tu_http_free(&resp);
    service_destroy(&svc);
}

static void test_start_hook_failure(void **state)
{
    fixture_t *f = *state;
    service_def_t def = test_def;
    def.start = failing_start;
    service_t *svc = service_new(&def, f->config);
    assert_int_equal(service_start(svc), -1);
    service_destroy(&svc);
    assert_int_equal(atomic_load(&stops), 1);
}

static void test_routes_declared_wrong_fail_the_start(void **state)
{
    fixture_t *f = *state;
    service_def_t def = test_def;
    def.start = stray_start;
    service_t *svc = service_new(&def, f->config);
    assert_int_equal(service_start(svc), -1);
    service_destroy(&svc);
    for (int i = 0; i < 200 && !tu_port_free(ZMQ_BASE + f->offset); i++)
        usleep(10000);
    def.start = unprivileged_start;
    svc = service_new(&def, f->config);
    assert_int_equal(service_start(svc), -1);
    service_destroy(&svc);
}

static void test_bad_trusted_sources_fail_the_start(void **state)
{
    fixture_t *f = *state;
    char err[256];
    assert_int_equal(config_load_text(f->config, "trusted_sources: [10.0.0.0/40]", "test", err, sizeof err), 0);
    service_t *svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), -1);
    service_destroy(&svc);
}

/* GET /routes: the service's modules, every route with its privilege. */
static void test_routes_listed(void **state)
{
    fixture_t *f = *state;
    service_t *svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), 0);
    tu_http_t resp;
    assert_int_equal(tu_http_get(HTTP_BASE + f->offset, "/routes", &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *list = json_loads(resp.body, 0, NULL);
    tu_http_free(&resp);
    char *text = json_dumps(list, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "\"modules\":[\"Doubler\"]"));
    assert_non_null(strstr(text, "{\"dialect\":\"action\",\"module\":\"Doubler\",\"name\":\"double\","
                                 "\"privilege\":\"public\"}"));
    assert_non_null(strstr(text, "{\"dialect\":\"action\",\"module\":null,\"name\":\"ping\",\"privilege\":\"public\"}"));
    assert_non_null(strstr(text, "{\"method\":\"GET\",\"path\":\"/metrics\",\"privilege\":\"public\"}"));
    free(text);
    json_decref(list);
    service_destroy(&svc);
}

static void test_port_taken(void **state)
{
    fixture_t *f = *state;
    service_t *first = service_new(&test_def, f->config);
    assert_int_equal(service_start(first), 0);
    /* Another data directory, the same ports. */
    char dir[64], err[256];
    snprintf(dir, sizeof dir, "/tmp/keel-test-svc2-XXXXXX");
    assert_non_null(mkdtemp(dir));
    config_t *other = config_new();
    char offset[32];
    snprintf(offset, sizeof offset, "%d", f->offset);
    config_set(other, "data_dir", dir, err, sizeof err);
    config_set(other, "port_offset", offset, err, sizeof err);
    service_t *second = service_new(&test_def, other);
    assert_int_equal(service_start(second), -1);
    service_destroy(&second);
    config_destroy(&other);
    tu_rmtree(dir);
    /* The first is unharmed. */
    json_t *h = zmq_ask(f, "ping");
    check_health_dict(h);
    json_decref(h);
    service_destroy(&first);
}

/* A second process (here, a second service) on the same data directory is
 * refused by the directory's lock, whatever its ports. */
static void test_data_dir_taken(void **state)
{
    fixture_t *f = *state;
    service_t *first = service_new(&test_def, f->config);
    assert_int_equal(service_start(first), 0);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/svctest", f->dir);
    assert_int_equal(dirlock_holder(dir), getpid());
    config_t *other = config_new();
    char err[256], offset[32];
    snprintf(offset, sizeof offset, "%d", f->offset + 5);
    config_set(other, "data_dir", f->dir, err, sizeof err);
    config_set(other, "port_offset", offset, err, sizeof err);
    service_t *second = service_new(&test_def, other);
    assert_int_equal(service_start(second), -1);
    service_destroy(&second);
    config_destroy(&other);
    service_destroy(&first);
    assert_int_equal(dirlock_holder(dir), 0);       /* released at stop */
}

static json_t *reload_with(fixture_t *f, const char *token)
{
    char endpoint[64], err[256] = "";
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ZMQ_BASE + f->offset);
    json_t *req = json_pack("{s:s, s:s?}", "action", "reload", "auth_token", token);
    json_t *reply = wire_call(endpoint, req, 3000, 0, err, sizeof err);
    json_decref(req);
    assert_non_null(reply);
    return reply;
}

static void assert_error_starts(json_t *reply, const char *prefix)
{
    const char *error = json_string_value(json_object_get(reply, "error"));
    assert_non_null(error);
    if (strncmp(error, prefix, strlen(prefix)) != 0)
        fail_msg("%s does not start with %s", error, prefix);
    json_decref(reply);
}

static void test_reload_action(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(token_keys_ensure(f->config), 0);
    json_t *admin = json_pack("[s]", "admin"), *plain = json_pack("[s]", "agent");
    char *admin_jwt = token_issue(f->config, "ops", admin, 60);
    char *agent_jwt = token_issue(f->config, "bot", plain, 60);
    service_t *svc = service_new(&test_def, f->config);
    assert_int_equal(service_start(svc), 0);

    /* Without a loader: refused, whoever asks. */
    assert_error_starts(reload_with(f, admin_jwt), "TestService cannot reload here");
    service_set_loader(svc, test_loader, NULL);
    /* Without an administrator's token: refused and counted, nothing read. */
    assert_error_starts(reload_with(f, NULL), "Forbidden: reload needs an administrator's token");
    assert_error_starts(reload_with(f, agent_jwt), "Forbidden");
    assert_error_starts(reload_with(f, "not-a-token"), "Forbidden");
    assert_int_equal(atomic_load(&loads), 0);
    tu_http_t resp;
    assert_int_equal(tu_http_get(HTTP_BASE + f->offset, "/metrics", &resp), 0);
    assert_non_null(strstr(resp.body,
                           "keel_bad_requests_total{service=\"svctest\",reason=\"forbidden\"} 3\n"));
    tu_http_free(&resp);
    /* An administrator: the loader's configuration reaches the hook. */
    json_t *r = reload_with(f, admin_jwt);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "success");
    assert_string_equal(json_string_value(json_object_get(r, "service")), "TestService");
    json_decref(r);
    assert_int_equal(atomic_load(&reloads), 1);
    /* A configuration with errors changes nothing and says why. */
    service_set_loader(svc, test_loader, (void *)1);
    assert_error_starts(reload_with(f, admin_jwt), "Reload refused, the old configuration stays: keel.yaml:3");
    assert_int_equal(atomic_load(&reloads), 1);
    assert_int_equal(atomic_load(&loads), 2);
    service_destroy(&svc);
    free(admin_jwt);
    free(agent_jwt);
    json_decref(admin);
    json_decref(plain);
}

static void test_endpoints(void **state)
{
    fixture_t *f = *state;
    char buf[128], want[128], err[128];
    service_t *svc = service_new(&test_def, f->config);
    service_bind_endpoint(svc, 7000, buf, sizeof buf);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", 7000 + f->offset);
    assert_string_equal(buf, want);
    service_error_bus_endpoint(f->config, buf, sizeof buf);
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", 7150 + f->offset);
    assert_string_equal(buf, want);
    config_set(f->config, "error_bus_endpoint", "tcp://10.0.0.5:7150", err, sizeof err);
    service_error_bus_endpoint(f->config, buf, sizeof buf);
    assert_string_equal(buf, "tcp://10.0.0.5:7150");
    config_set(f->config, "bind", "0.0.0.0", err, sizeof err);
    service_bind_endpoint(svc, 7000, buf, sizeof buf);
    snprintf(want, sizeof want, "tcp://*:%d", 7000 + f->offset);
    assert_string_equal(buf, want);
    service_destroy(&svc);
}

int main(void)
{
    log_set_level(LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_serve_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_replies_stay_true, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_while_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_hook_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_dir_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_declared_wrong_fail_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_trusted_sources_fail_the_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoints, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
