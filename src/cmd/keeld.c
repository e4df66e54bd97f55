/*  keeld: the Keel daemon.  `keeld all` runs the five services in one
 *  process (the embedded default); `keeld core|resource|observability|
 *  errorbus|security` runs one of them, for the two-machine layout.
 *
 *  Signals are blocked in every thread and taken synchronously by the main
 *  thread with sigtimedwait(), so no handler ever runs inside library code:
 *  SIGINT/SIGTERM stop the services in reverse start order and exit 0,
 *  SIGHUP opens the log file again (logrotate) and reloads the configuration
 *  file, handing it to each service.  Between signals the same thread feeds
 *  systemd's watchdog, and only while every service's loops are alive
 *  (liveness.h); systemd hears READY=1 once every service answers, and
 *  STOPPING=1 when keeld begins to stop (sdnotify.h).  The same reload
 *  reaches one service through its `reload` action (`keelctl reload`),
 *  which reads the configuration with load_config. */
#include "clock.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "privilege.h"
#include "sdnotify.h"
#include "service.h"
#include "zcurve.h"
#include "zsocket.h"

#include "core/core.h"
#include "errorbus/errorbus.h"
#include "observability/observability.h"
#include "resource/resource.h"
#include "security/security.h"

#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ErrorBus first, so the others' start-up errors have somewhere to go. */
static const service_def_t *all_services[] = {
    &errorbus_service, &security_service, &core_service,
    &resource_service, &observability_service,
};
#define NSERVICES (sizeof all_services / sizeof all_services[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: keeld all|core|resource|observability|errorbus|security\n"
            "             [--config FILE] [--data-dir DIR] [--port-offset N] [--check]\n"
            "       keeld --version | --help\n"
            "environment: KEEL_CONFIG, KEEL_DATA_DIR, PORT_OFFSET, KEEL_BIND, SECURE_ZMQ,\n"
            "             KEEL_LOG_LEVEL\n"
            "keeld(8) and keel.yaml(5) say more.\n");
}

typedef struct {
    const char *which;
    const char *config_path;
    const char *data_dir;
    const char *port_offset;
    bool check;                 /* --check: validate the configuration and exit */
} options_t;

static int parse_options(int argc, char **argv, options_t *opts)
{
    static struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "data-dir", required_argument, NULL, 'd' },
        { "port-offset", required_argument, NULL, 'p' },
        { "check", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    memset(opts, 0, sizeof *opts);
    opts->config_path = getenv("KEEL_CONFIG");
    int c;
    while ((c = getopt_long(argc, argv, "c:d:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': opts->config_path = optarg; break;
        case 'd': opts->data_dir = optarg; break;
        case 'p': opts->port_offset = optarg; break;
        case 'k': opts->check = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("keeld (Keel) %s\n", KEEL_VERSION); exit(0);
        default: return -1;
        }
    }
    if (optind != argc - 1)
        return -1;
    opts->which = argv[optind];
    return 0;
}

/* A list the services would refuse at start is an error of the file, for
 * --check and for a reload alike. */
static int check_trusted_sources(config_t *config, char *err, size_t len)
{
    privilege_t *probe = privilege_new();
    int rc = privilege_configure(probe, config, err, len);
    privilege_destroy(&probe);
    return rc;
}

/* Defaults, then the file, then the environment, then the flags; NULL
 * with the reason in err. */
static config_t *load_config(const options_t *opts, char *err, size_t errlen)
{
    config_t *config = config_new();
    int rc = 0;
    if (opts->config_path && *opts->config_path)
        rc = config_load_file(config, opts->config_path, err, errlen);
    if (rc == 0)
        rc = config_apply_env(config, err, errlen);
    if (rc == 0 && opts->data_dir)
        rc = config_set(config, "data_dir", opts->data_dir, err, errlen);
    if (rc == 0 && opts->port_offset) {
        char why[512];
        rc = config_set(config, "port_offset", opts->port_offset, why, sizeof why);
        if (rc < 0)
            snprintf(err, errlen, "flag --port-offset: %s", why);
    }
    if (rc == 0)
        rc = check_trusted_sources(config, err, errlen);
    if (rc < 0)
        config_destroy(&config);
    return config;
}

/* service_loader_fn: the `reload` action's fresh configuration. */
static config_t *reload_config(void *ctx, char *err, size_t errlen)
{
    return load_config(ctx, err, errlen);
}

static size_t select_services(const char *which, const service_def_t **out)
{
    size_t n = 0;
    for (size_t i = 0; i < NSERVICES; i++)
        if (!strcmp(which, "all") || !strcmp(which, all_services[i]->name))
            out[n++] = all_services[i];
    return n;
}

/* The level, and the JSON log file: log_file, or <data_dir>/keel.log. */
static void open_log(config_t *config)
{
    int level = log_level_parse(config_str(config, "log_level", "info"));
    if (level >= 0)
        log_set_level(level);
    const char *dir = config_str(config, "data_dir", "./var/keel");
    const char *file = config_str(config, "log_file", "");
    if (!strcmp(file, "none")) {
        log_close();
        return;
    }
    char path[4096];
    if (*file)
        snprintf(path, sizeof path, "%s", file);
    else
        snprintf(path, sizeof path, "%s/keel.log", dir);
    if (fs_mkdirs(dir) < 0 || log_open(path) < 0)
        log_warn("keeld", "cannot open the log file %s; logging to stderr only", path);
}

/* The soft limit on open descriptors up to the hard one, once for every
 * service of the process: every agent's connection is a descriptor, and the
 * default soft limit (1,024) is what a thousand idle clients, or the hub's
 * sweep of a thousand agents (two each), reach. */
static void raise_descriptor_limit(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur >= lim.rlim_max)
        return;
    rlim_t was = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) == 0)
        log_info("keeld", "open descriptors: soft limit raised from %llu to %llu",
                 (unsigned long long)was, (unsigned long long)lim.rlim_max);
    else
        log_warn("keeld", "cannot raise the open descriptor limit from %llu", (unsigned long long)was);
}

typedef struct {
    const options_t *opts;
    service_t **services;
    size_t n;
    sdnotify_t *notify;
    double stall_s;             /* loop_stall_s */
    char stalled[160];          /* the loop last reported stalled, or "" */
} daemon_t;

/* WATCHDOG=1 only while every loop of every service came round in time;
 * a stall is logged once, when it starts, and once when it ends. */
static void feed_watchdog(daemon_t *d)
{
    char stalled[160] = "";
    for (size_t i = 0; i < d->n && !*stalled; i++)
        liveness_fresh(d->services[i]->liveness, clock_mono(), d->stall_s, stalled, sizeof stalled);
    if (!*stalled) {
        if (*d->stalled)
            log_info("keeld", "every service loop is running again: feeding the watchdog");
        d->stalled[0] = '\0';
        sdnotify_send(d->notify, "WATCHDOG=1");
        return;
    }
    if (!*d->stalled)
        log_error("keeld", "%s has stalled: systemd's watchdog is no longer fed", stalled);
    snprintf(d->stalled, sizeof d->stalled, "%s", stalled);
}

static void reload(daemon_t *d)
{
    sdnotify_send(d->notify, "RELOADING=1\nSTATUS=Reloading the configuration");
    char err[512];
    config_t *fresh = load_config(d->opts, err, sizeof err);
    if (!fresh) {
        log_reopen();
        log_error("keeld", "reload refused: %s; keeping the old configuration", err);
    } else {
        open_log(fresh);
        d->stall_s = config_double(fresh, "loop_stall_s", 30);
        log_info("keeld", "configuration reloaded");
        for (size_t i = 0; i < d->n; i++)
            service_reload(d->services[i], fresh);
        config_destroy(&fresh);
    }
    sdnotify_send(d->notify, "READY=1\nSTATUS=Running");
}

/* Waits for signals, feeding the watchdog every half period between them,
 * as sd_watchdog_enabled(3) advises; returns when asked to stop. */
static void serve_signals(const sigset_t *set, daemon_t *d)
{
    double period = sdnotify_watchdog_s(d->notify) / 2;
    double next_feed = clock_mono();
    for (;;) {
        int sig;
        if (period > 0) {
            double now = clock_mono();
            if (now >= next_feed) {
                feed_watchdog(d);
                next_feed = now + period;
            }
            double wait = next_feed - now;
            struct timespec ts = { (time_t)wait, (long)((wait - floor(wait)) * 1e9) };
            sig = sigtimedwait(set, NULL, &ts);
            if (sig < 0)
                continue;           /* EAGAIN: time to feed; EINTR: again */
        } else if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (sig != SIGHUP) {
            log_info("keeld", "signal %d: stopping", sig);
            sdnotify_send(d->notify, "STOPPING=1\nSTATUS=Stopping");
            return;
        }
        reload(d);
    }
}

/* Eight malloc arenas, or one per core past eight, not glibc's eight per
 * core.  Fewer starve the ErrorBus: its ZMQ I/O, ingress, writer, fan-out
 * and checkpointer threads all allocate or free per event, and on two
 * arenas a thread preempted while it held an arena's lock stalled the
 * others (at 16 publishers 2.4 to 13 times the context switches, and a
 * quarter fewer events stored; issue 17).  More would only multiply the free pages each
 * arena keeps: idle memory is the same at 2, 8 and 16 on two cores, and
 * the hub hands its sweep's pages back itself (fleet.c).  MALLOC_ARENA_MAX
 * or a glibc tunable, when set, still decides. */
static void limit_malloc_arenas(void)
{
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") || (tunables && strstr(tunables, "arena_max")))
        return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, cores > 8 ? (int)cores : 8);
}

int main(int argc, char **argv)
{
    limit_malloc_arenas();
    options_t opts;
    if (parse_options(argc, argv, &opts) < 0) {
        usage(stderr);
        return 2;
    }
    const service_def_t *defs[NSERVICES];
    size_t n = select_services(opts.which, defs);
    if (n == 0) {
        fprintf(stderr, "keeld: unknown service '%s'\n", opts.which);
        usage(stderr);
        return 2;
    }
    char err[512];
    config_t *config = load_config(&opts, err, sizeof err);
    if (!config) {
        fprintf(stderr, "keeld: configuration error: %s\n", err);
        return 2;
    }
    if (opts.check) {
        printf("keeld: configuration OK\n");
        config_destroy(&config);
        return 0;
    }
    log_follow_journal();
    sdnotify_t *notify = sdnotify_new();        /* before any thread: it edits the environment */
    open_log(config);
    raise_descriptor_limit();
    if (zcurve_configure(config, true) < 0) {   /* secure_zmq without usable keys: refuse */
        sdnotify_destroy(&notify);
        config_destroy(&config);
        return 2;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    service_t *services[NSERVICES];
    size_t started = 0;
    int rc = 0;
    for (; started < n; started++) {
        services[started] = service_new(defs[started], config);
        service_set_loader(services[started], reload_config, &opts);
        if (service_start(services[started]) < 0) {
            rc = 1;
            started++;
            break;
        }
    }
    if (rc == 0) {
        log_info("keeld", "Keel %s: %zu service(s) ready", KEEL_VERSION, n);
        char status[96];
        snprintf(status, sizeof status, "READY=1\nSTATUS=Running: %zu service(s) ready", n);
        sdnotify_send(notify, status);
        daemon_t d = { &opts, services, n, notify, config_double(config, "loop_stall_s", 30), "" };
        serve_signals(&set, &d);
    } else {
        sdnotify_send(notify, "STOPPING=1\nSTATUS=A service failed to start");
    }
    while (started > 0)
        service_destroy(&services[--started]);
    sdnotify_destroy(&notify);
    zsocket_shutdown();
    config_destroy(&config);
    log_close();
    return rc;
}
