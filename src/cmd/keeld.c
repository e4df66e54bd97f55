/*  keeld: the Keel daemon.  `keeld all` runs the five services in one
 *  process (the embedded default); `keeld core|resource|observability|
 *  errorbus|security` runs one of them, for the two-machine layout.
 *
 *  Signals are blocked in every thread and taken synchronously by the main
 *  thread with sigwait(), so no handler ever runs inside library code:
 *  SIGINT/SIGTERM stop the services in reverse start order and exit 0,
 *  SIGHUP reloads the configuration file and hands it to each service. */
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "service.h"
#include "zcurve.h"
#include "zsocket.h"

#include "core/core.h"
#include "errorbus/errorbus.h"
#include "observability/observability.h"
#include "resource/resource.h"
#include "security/security.h"

#include <getopt.h>
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
            "             [--config FILE] [--data-dir DIR] [--port-offset N]\n"
            "environment: KEEL_CONFIG, KEEL_DATA_DIR, PORT_OFFSET, KEEL_BIND, SECURE_ZMQ\n");
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
        default: return -1;
        }
    }
    if (optind != argc - 1)
        return -1;
    opts->which = argv[optind];
    return 0;
}

/* Defaults, then the file, then the environment, then the flags. */
static config_t *load_config(const options_t *opts)
{
    config_t *config = config_new();
    char err[512];
    int rc = 0;
    if (opts->config_path && *opts->config_path)
        rc = config_load_file(config, opts->config_path, err, sizeof err);
    if (rc == 0)
        rc = config_apply_env(config, err, sizeof err);
    if (rc == 0 && opts->data_dir)
        rc = config_set(config, "data_dir", opts->data_dir, err, sizeof err);
    if (rc == 0 && opts->port_offset)
        rc = config_set(config, "port_offset", opts->port_offset, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "keeld: configuration error: %s\n", err);
        config_destroy(&config);
    }
    return config;
}

static size_t select_services(const char *which, const service_def_t **out)
{
    size_t n = 0;
    for (size_t i = 0; i < NSERVICES; i++)
        if (!strcmp(which, "all") || !strcmp(which, all_services[i]->name))
            out[n++] = all_services[i];
    return n;
}

/* <data_dir>/keeld.pid, so `keelctl reload` can find the daemon. */
static void write_pid_file(config_t *config, bool remove_it)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keeld.pid", config_str(config, "data_dir", "./var/keel"));
    if (remove_it) {
        unlink(path);
        return;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)getpid());
    if (fs_write_atomic(path, text, (size_t)n, 0640) < 0)
        log_warn("keeld", "cannot write %s", path);
}

static void open_log(config_t *config)
{
    int level = log_level_parse(config_str(config, "log_level", "info"));
    if (level >= 0)
        log_set_level(level);
    const char *dir = config_str(config, "data_dir", "./var/keel");
    char path[4096];
    snprintf(path, sizeof path, "%s/keel.log", dir);
    if (fs_mkdirs(dir) < 0 || log_open(path) < 0)
        log_warn("keeld", "cannot open the log file %s; logging to stderr only", path);
}

/* The soft limit on open descriptors up to the hard one: every agent's
 * connection is a descriptor, and the default soft limit (1,024) is what a
 * thousand idle clients reach. */
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

/* Waits for signals; returns when asked to stop. */
static void serve_signals(const sigset_t *set, const options_t *opts,
                          service_t **services, size_t n)
{
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig != SIGHUP) {
            log_info("keeld", "signal %d: stopping", sig);
            return;
        }
        config_t *fresh = load_config(opts);
        if (!fresh) {
            log_error("keeld", "reload refused: the configuration has errors; keeping the old one");
            continue;
        }
        log_info("keeld", "configuration reloaded");
        for (size_t i = 0; i < n; i++)
            service_reload(services[i], fresh);
        config_destroy(&fresh);
    }
}

int main(int argc, char **argv)
{
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
    config_t *config = load_config(&opts);
    if (!config)
        return 2;
    if (opts.check) {
        printf("keeld: configuration OK\n");
        config_destroy(&config);
        return 0;
    }
    open_log(config);
    raise_descriptor_limit();
    if (zcurve_configure(config, true) < 0) {   /* secure_zmq without usable keys: refuse */
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
        if (service_start(services[started]) < 0) {
            rc = 1;
            started++;
            break;
        }
    }
    if (rc == 0) {
        write_pid_file(config, false);
        log_info("keeld", "Keel %s: %zu service(s) ready", KEEL_VERSION, n);
        serve_signals(&set, &opts, services, n);
        write_pid_file(config, true);
    }
    while (started > 0)
        service_destroy(&services[--started]);
    zsocket_shutdown();
    config_destroy(&config);
    log_close();
    return rc;
}
