/*  supervisor: see supervisor.h.
 *
 *  Two threads.  The runner owns the children: it drains their output
 *  pipes into log files (a child whose pipe fills up would block, so the
 *  pipes are always read), reaps exits, and starts what is due: agents
 *  whose dependencies run, restarts whose backoff has passed.  The monitor
 *  pings each watched agent at the health interval (a reply of "ok" or
 *  "success" is alive; the original wanted "success" only, so every
 *  BaseAgent looked dead).  Requests only change what is wanted under the
 *  lock; the runner makes it so within 100 ms.
 *
 *  Children are spawned with posix_spawn (no fork in a threaded process)
 *  into their own process group, so stopping one stops its children too.
 *  Restarts back off exponentially to a cap; after max_restarts quick
 *  failures the supervisor gives up, says so on ErrorBus, and marks the
 *  agent "failed" - never a silent give-up (supervisord's lesson).  A run
 *  longer than stable_s resets the count. */
#include "supervisor.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "names.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_AGENTS 64

typedef enum { RESTART_ON_FAILURE, RESTART_ALWAYS, RESTART_NEVER } policy_t;

typedef struct {
    char name[NAMES_BUF], host[128], cwd[1024], log_path[4096];
    json_t *argv, *env, *depends_on;
    policy_t policy;
    bool managed;               /* has a command */
    int port;
    /* process */
    pid_t pid;
    int out_fd, log_fd;
    bool wanted, restart_now, gave_up;
    int restarts;
    double next_start, started_mono, kill_at;
    char started_at[40];
    int last_exit;              /* exit code, or -signal */
    bool has_exited;
    /* monitor */
    const char *mstatus;
    double last_seen;           /* wall, 0 = never */
} agent_t;

struct supervisor_t {
    service_t *svc;
    pthread_mutex_t lock;
    pthread_t runner, monitor;
    pthread_cond_t wake;
    bool running, started;
    agent_t agents[MAX_AGENTS];
    int count;
    double interval_s, backoff_base_s, backoff_cap_s, stable_s, stop_grace_s;
    int max_restarts;
};

double core_supervisor_backoff(int attempt, double base_s, double cap_s)
{
    if (attempt < 1)
        attempt = 1;
    double d = base_s * pow(2.0, attempt - 1);
    return d > cap_s ? cap_s : d;
}

/* ---- configuration ---------------------------------------------------------- */

static int load_agent(supervisor_t *self, json_t *spec)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    char why[128];
    if (!name || !*name || self->count == MAX_AGENTS) {
        log_warn("core", "core.agents: an entry without a name (or too many) is ignored");
        return -1;
    }
    if (names_refuse(NULL, NULL, "core.agents[].name", name, why, sizeof why)) {
        log_error("core", "core.agents: %s; the entry is ignored", why);
        return -1;
    }
    agent_t *a = &self->agents[self->count++];
    snprintf(a->name, sizeof a->name, "%s", name);
    const char *host = json_string_value(json_object_get(spec, "host"));
    snprintf(a->host, sizeof a->host, "%s", host ? host : "127.0.0.1");
    a->port = (int)json_integer_value(json_object_get(spec, "port"));
    const char *cwd = json_string_value(json_object_get(spec, "cwd"));
    snprintf(a->cwd, sizeof a->cwd, "%s", cwd ? cwd : "");
    const char *command = json_string_value(json_object_get(spec, "command"));
    a->managed = command && *command;
    a->argv = json_array();
    if (a->managed)
        json_array_append_new(a->argv, json_string(command));
    json_t *args = json_object_get(spec, "args");
    size_t i;
    json_t *arg;
    json_array_foreach(args, i, arg)
        if (json_is_string(arg))
            json_array_append(a->argv, arg);
    a->env = json_is_object(json_object_get(spec, "env")) ? json_incref(json_object_get(spec, "env")) : json_object();
    a->depends_on = json_is_array(json_object_get(spec, "depends_on"))
                  ? json_incref(json_object_get(spec, "depends_on")) : json_array();
    const char *restart = json_string_value(json_object_get(spec, "restart"));
    a->policy = !restart ? RESTART_ON_FAILURE : !strcmp(restart, "always") ? RESTART_ALWAYS
              : !strcmp(restart, "never") || !strcmp(restart, "no") ? RESTART_NEVER : RESTART_ON_FAILURE;
    json_t *autostart = json_object_get(spec, "autostart");
    a->wanted = a->managed && !json_is_false(autostart);
    a->next_start = 0;
    a->out_fd = a->log_fd = -1;
    a->mstatus = "unknown";
    char file[NAMES_BUF + 16];
    snprintf(file, sizeof file, "logs/%s.log", a->name);
    service_path(self->svc, file, a->log_path, sizeof a->log_path);
    return 0;
}

static agent_t *find(supervisor_t *self, const char *name)
{
    for (int i = 0; name && i < self->count; i++)
        if (!strcmp(self->agents[i].name, name))
            return &self->agents[i];
    return NULL;
}

supervisor_t *core_supervisor_new(service_t *svc)
{
    config_t *cfg = svc->config;
    supervisor_t *self = calloc(1, sizeof *self);
    self->svc = svc;
    pthread_mutex_init(&self->lock, NULL);
    clock_cond_init(&self->wake);
    self->interval_s = config_double(cfg, "core.supervisor.health_interval_s", 30.0);
    self->backoff_base_s = config_double(cfg, "core.supervisor.backoff_base_s", 1.0);
    self->backoff_cap_s = config_double(cfg, "core.supervisor.backoff_max_s", 60.0);
    self->stable_s = config_double(cfg, "core.supervisor.stable_s", 60.0);
    self->stop_grace_s = config_double(cfg, "core.supervisor.stop_grace_s", 5.0);
    self->max_restarts = (int)config_int(cfg, "core.supervisor.max_restarts", 5);
    json_t *agents = config_get(cfg, "core.agents");
    size_t i;
    json_t *spec;
    json_array_foreach(agents, i, spec)
        load_agent(self, spec);
    char logs[4096];
    service_path(svc, "logs", logs, sizeof logs);
    if (self->count && fs_mkdirs(logs) < 0)
        log_warn("core", "cannot create %s", logs);
    metrics_declare(svc->metrics, "keel_core_agent_restarts_total", "Supervised agent (re)starts by agent.",
                    METRIC_COUNTER, NULL, 0);
    return self;
}

/* ---- processes (runner thread, lock held) ------------------------------------- */

static char **build_env(agent_t *a)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + json_object_size(a->env) + 1, sizeof *envp);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strcspn(environ[i], "=");
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)klen, environ[i]);
        if (!json_object_get(a->env, key))
            envp[o++] = strdup(environ[i]);
    }
    const char *k;
    json_t *v;
    json_object_foreach(a->env, k, v) {
        char *text = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
        if (asprintf(&envp[o], "%s=%s", k, text ? text : "") >= 0)
            o++;
        free(text);
    }
    return envp;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int spawn(supervisor_t *self, agent_t *a)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    size_t argc = json_array_size(a->argv);
    char **argv = calloc(argc + 1, sizeof *argv);
    for (size_t i = 0; i < argc; i++)
        argv[i] = strdup(json_string_value(json_array_get(a->argv, i)));
    char **envp = build_env(a);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    if (*a->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, a->cwd);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free_strv(argv);
    free_strv(envp);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        errno = rc;
        return -1;
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    a->pid = pid;
    a->out_fd = fds[0];
    if (a->log_fd < 0)
        a->log_fd = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    a->started_mono = clock_mono();
    clock_iso_local(clock_wall(), a->started_at, sizeof a->started_at);
    char labels[NAMES_LABELS_BUF];
    metrics_labels(labels, sizeof labels, "agent", a->name, NULL);
    metrics_add(self->svc->metrics, "keel_core_agent_restarts_total", labels, 1);
    log_info("core", "started agent %s (pid %d)", a->name, (int)pid);
    return 0;
}

static void drain(agent_t *a)
{
    char buf[8192];
    ssize_t n;
    while (a->out_fd >= 0 && (n = read(a->out_fd, buf, sizeof buf)) > 0)
        if (a->log_fd >= 0 && write(a->log_fd, buf, (size_t)n) < 0)
            break;
}

static bool deps_running(supervisor_t *self, agent_t *a)
{
    size_t i;
    json_t *dep;
    json_array_foreach(a->depends_on, i, dep) {
        agent_t *d = find(self, json_string_value(dep));
        if (d && d->managed && d->pid == 0)
            return false;
    }
    return true;
}

static void on_exit_of(supervisor_t *self, agent_t *a, int status)
{
    drain(a);
    if (a->out_fd >= 0)
        close(a->out_fd);
    a->out_fd = -1;
    a->pid = 0;
    a->has_exited = true;
    a->last_exit = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    double ran = clock_mono() - a->started_mono;
    log_info("core", "agent %s exited (%d) after %.1f s", a->name, a->last_exit, ran);
    if (a->restart_now) {
        a->restart_now = false;
        a->next_start = clock_mono();
        return;
    }
    bool failed = a->last_exit != 0;
    if (!a->wanted || a->policy == RESTART_NEVER || (a->policy == RESTART_ON_FAILURE && !failed)) {
        a->wanted = false;
        return;
    }
    if (ran >= self->stable_s)
        a->restarts = 0;
    if (++a->restarts > self->max_restarts) {
        a->wanted = false;
        a->gave_up = true;
        json_t *details = json_pack("{s:s, s:i, s:i}", "agent", a->name, "restarts", a->restarts - 1,
                                    "last_exit", a->last_exit);
        errpub_report(self->svc->errors, "agent_restart_give_up", "critical", details,
                      "Agent %s keeps failing (exit %d); gave up after %d restarts", a->name, a->last_exit,
                      a->restarts - 1);
        json_decref(details);
        log_error("core", "agent %s: gave up after %d restarts", a->name, a->restarts - 1);
        return;
    }
    a->next_start = clock_mono() + core_supervisor_backoff(a->restarts, self->backoff_base_s, self->backoff_cap_s);
}

static void run_once(supervisor_t *self)
{
    double now = clock_mono();
    for (int i = 0; i < self->count; i++) {
        agent_t *a = &self->agents[i];
        drain(a);
        int status;
        if (a->pid > 0 && waitpid(a->pid, &status, WNOHANG) == a->pid) {
            on_exit_of(self, a, status);
            continue;
        }
        if (a->pid > 0 && a->kill_at > 0 && now >= a->kill_at) {
            kill(-a->pid, SIGKILL);
            a->kill_at = 0;
        }
        if (a->pid == 0 && a->wanted && a->managed && now >= a->next_start && deps_running(self, a)) {
            if (spawn(self, a) < 0) {
                log_error("core", "cannot start agent %s: %s", a->name, strerror(errno));
                a->started_mono = now;
                on_exit_of(self, a, 127 << 8);
            }
        }
    }
}

static void *runner(void *arg)
{
    supervisor_t *self = arg;
    struct pollfd fds[MAX_AGENTS];
    for (;;) {
        pthread_mutex_lock(&self->lock);
        if (!self->running) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        run_once(self);
        int n = 0;
        for (int i = 0; i < self->count; i++)
            if (self->agents[i].out_fd >= 0)
                fds[n++] = (struct pollfd){ self->agents[i].out_fd, POLLIN, 0 };
        pthread_mutex_unlock(&self->lock);
        poll(fds, (nfds_t)n, 100);
    }
    return NULL;
}

static void stop_all(supervisor_t *self)
{
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++)
        if (self->agents[i].pid > 0)
            kill(-self->agents[i].pid, SIGTERM);
    double deadline = clock_mono() + self->stop_grace_s;
    for (;;) {
        int alive = 0;
        for (int i = 0; i < self->count; i++) {
            agent_t *a = &self->agents[i];
            int status;
            if (a->pid > 0 && waitpid(a->pid, &status, WNOHANG) == a->pid) {
                a->wanted = false;
                on_exit_of(self, a, status);
            }
            alive += a->pid > 0;
        }
        if (!alive)
            break;
        if (clock_mono() > deadline) {
            for (int i = 0; i < self->count; i++)
                if (self->agents[i].pid > 0)
                    kill(-self->agents[i].pid, SIGKILL);
            deadline = clock_mono() + 5;
        }
        usleep(20000);
    }
    pthread_mutex_unlock(&self->lock);
}

/* ---- monitor --------------------------------------------------------------- */

static void *monitor(void *arg)
{
    supervisor_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (self->running) {
        for (int i = 0; i < self->count && self->running; i++) {
            agent_t *a = &self->agents[i];
            if (a->port <= 0)
                continue;
            char endpoint[256];
            snprintf(endpoint, sizeof endpoint, "tcp://%s:%d", a->host, a->port);
            pthread_mutex_unlock(&self->lock);
            json_t *ping = json_pack("{s:s}", "action", "ping");
            char err[256];
            json_t *reply = wire_call_agent(endpoint, ping, 1000, 0, err, sizeof err);
            const char *st = json_string_value(json_object_get(reply, "status"));
            bool alive = st && (!strcmp(st, "ok") || !strcmp(st, "success") || !strcmp(st, "healthy"));
            json_decref(ping);
            pthread_mutex_lock(&self->lock);
            if (!alive && !strcmp(a->mstatus, "active")) {
                json_t *details = json_pack("{s:s, s:s}", "agent", a->name, "endpoint", endpoint);
                errpub_report(self->svc->errors, "health_check", "medium", details, "%s: %s", a->name,
                              reply ? "unhealthy reply" : err);
                json_decref(details);
            }
            a->mstatus = alive ? "active" : "inactive";
            a->last_seen = alive ? clock_wall() : 0;
            json_decref(reply);
        }
        clock_cond_wait(&self->wake, &self->lock, self->interval_s, &self->running);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------- */

int core_supervisor_start(supervisor_t *self)
{
    self->running = true;
    if (pthread_create(&self->runner, NULL, runner, self) != 0)
        return -1;
    if (pthread_create(&self->monitor, NULL, monitor, self) != 0) {
        pthread_mutex_lock(&self->lock);
        self->running = false;
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->runner, NULL);
        return -1;
    }
    self->started = true;
    return 0;
}

void core_supervisor_destroy(supervisor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    supervisor_t *self = *self_p;
    if (self->started) {
        pthread_mutex_lock(&self->lock);
        self->running = false;
        pthread_cond_broadcast(&self->wake);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->runner, NULL);
        pthread_join(self->monitor, NULL);
    }
    stop_all(self);
    for (int i = 0; i < self->count; i++) {
        agent_t *a = &self->agents[i];
        if (a->log_fd >= 0)
            close(a->log_fd);
        json_decref(a->argv);
        json_decref(a->env);
        json_decref(a->depends_on);
    }
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- replies ----------------------------------------------------------------- */

static const char *proc_state(agent_t *a)
{
    if (a->pid > 0)
        return a->kill_at > 0 || a->restart_now ? "stopping" : "running";
    if (a->gave_up)
        return "failed";
    if (a->wanted)
        return a->restarts ? "backoff" : "starting";
    return a->has_exited ? "exited" : "stopped";
}

/* Call with the lock held. */
static json_t *status_entry(agent_t *a)
{
    char ts[40];
    json_t *e = json_pack("{s:s, s:o, s:o}", "status", a->mstatus,
                          "last_seen", a->last_seen > 0 ? json_string(clock_iso_local(a->last_seen, ts, sizeof ts)) : json_null(),
                          "port", a->port > 0 ? json_integer(a->port) : json_null());
    if (a->managed)
        json_object_set_new(e, "process", json_pack("{s:s, s:o, s:i, s:o, s:s?, s:s}", "state", proc_state(a),
                            "pid", a->pid > 0 ? json_integer(a->pid) : json_null(), "restarts", a->restarts,
                            "last_exit", a->has_exited ? json_integer(a->last_exit) : json_null(),
                            "started_at", *a->started_at ? a->started_at : NULL, "log", a->log_path));
    return e;
}

static json_t *on_get_agent_status(void *ctx, wire_request_t *req)
{
    (void)req;
    supervisor_t *self = ctx;
    json_t *agents = json_object();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++)
        json_object_set_new(agents, self->agents[i].name, status_entry(&self->agents[i]));
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "agents", agents);
}

json_t *core_supervisor_agent_info(supervisor_t *self, json_t *agent)
{
    const char *name = json_string_value(agent);
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *reply = a ? json_pack("{s:s, s:{s:s, s:o, s:o}}", "status", "success", "agent", "name", a->name,
                                  "port", a->port > 0 ? json_integer(a->port) : json_null(), "status", status_entry(a))
                      : NULL;
    pthread_mutex_unlock(&self->lock);
    if (reply)
        return reply;
    char *text = name ? NULL : json_dumps(agent, JSON_ENCODE_ANY | JSON_COMPACT);
    reply = wire_error_key("message", "Unknown agent: %s", name ? name : text ? text : "None");
    free(text);
    return reply;
}

static json_t *on_get_system_info(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct utsname u;
    uname(&u);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return json_pack("{s:s, s:{s:s, s:s, s:i, s:I}}", "status", "success", "system_info", "hostname", host,
                     "platform", u.sysname, "cpu_count", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "memory_total", (json_int_t)pages * page);
}

static const char *agent_name_of(json_t *body)
{
    static const char *keys[] = { "agent", "agent_name", "name" };
    for (size_t i = 0; i < 3; i++) {
        const char *n = json_string_value(json_object_get(body, keys[i]));
        if (n && *n)
            return n;
    }
    return NULL;
}

typedef enum { OP_START, OP_STOP, OP_RESTART } op_t;

/* Call with the lock held. */
static void apply(supervisor_t *self, agent_t *a, op_t op)
{
    if (op == OP_START || (op == OP_RESTART && a->pid == 0)) {
        a->wanted = true;
        a->gave_up = false;
        a->restarts = 0;
        a->next_start = clock_mono();
    } else if (op == OP_STOP) {
        a->wanted = false;
        if (a->pid > 0) {
            kill(-a->pid, SIGTERM);
            a->kill_at = clock_mono() + self->stop_grace_s;
        }
    } else {
        a->wanted = true;
        a->gave_up = false;
        a->restart_now = true;
        kill(-a->pid, SIGTERM);
        a->kill_at = clock_mono() + self->stop_grace_s;
    }
}

static json_t *agent_op(supervisor_t *self, wire_request_t *req, op_t op)
{
    static const char *verbs[] = { "start", "stop", "restart" };
    const char *name = agent_name_of(req->body);
    if (!name)
        return wire_error("Missing 'agent' (the name of a configured agent)");
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *reply;
    if (!a) {
        reply = wire_error("Agent %s is not supervised by Keel (it is not in core.agents), so Keel cannot"
                           " %s it: %s it where it runs", name, verbs[op], verbs[op]);
        json_object_set_new(reply, "supervised", json_false());
    } else if (!a->managed) {
        reply = wire_error("Agent %s is watched but not supervised by Keel: it has no command in"
                           " core.agents, so Keel cannot %s it", name, verbs[op]);
        json_object_set_new(reply, "supervised", json_false());
    } else {
        apply(self, a, op);
        char message[300];
        snprintf(message, sizeof message, "Agent %s: %s requested", name, verbs[op]);
        reply = json_pack("{s:s, s:s, s:s, s:o}", "status", "success", "message", message, "agent", name,
                          "process", status_entry(a));
    }
    pthread_mutex_unlock(&self->lock);
    return reply;
}

static json_t *on_start_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_START); }
static json_t *on_stop_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_STOP); }
static json_t *on_restart_agent(void *ctx, wire_request_t *req) { return agent_op(ctx, req, OP_RESTART); }

/* Variant B's service actions: its reply texts, acting for real on a
 * configured agent of that name. */
static json_t *service_op(supervisor_t *self, wire_request_t *req, op_t op)
{
    static const char *words[] = { "Started", "Stopped", "Restarted" };
    const char *name = json_string_value(json_object_get(req->body, "service_name"));
    if (!name)
        name = "";
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    if (a && a->managed)
        apply(self, a, op);
    pthread_mutex_unlock(&self->lock);
    char message[300];
    snprintf(message, sizeof message, "%s service %s", words[op], name);
    return json_pack("{s:s, s:s}", "status", "success", "message", message);
}

static json_t *on_start_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_START); }
static json_t *on_stop_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_STOP); }
static json_t *on_restart_service(void *ctx, wire_request_t *req) { return service_op(ctx, req, OP_RESTART); }

static json_t *on_list_services(void *ctx, wire_request_t *req)
{
    (void)req;
    supervisor_t *self = ctx;
    json_t *services = json_object();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++)
        if (self->agents[i].managed)
            json_object_set_new(services, self->agents[i].name, status_entry(&self->agents[i]));
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:o}", "status", "success", "services", services);
}

static json_t *on_get_service_status(void *ctx, wire_request_t *req)
{
    supervisor_t *self = ctx;
    const char *name = json_string_value(json_object_get(req->body, "service_name"));
    pthread_mutex_lock(&self->lock);
    agent_t *a = find(self, name);
    json_t *info = a ? status_entry(a) : json_object();
    pthread_mutex_unlock(&self->lock);
    return json_pack("{s:s, s:s, s:o}", "status", "success", "service", name ? name : "", "info", info);
}

static json_t *on_cleanup_system(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return json_pack("{s:s, s:s}", "status", "success", "message", "System cleanup completed");
}

#define USA "UnifiedSystemAgent"

/* Process control is an administrator's: no kept agent sends any of it
 * (predictive_health_monitor.py's restart_agent was an absorbed agent's
 * recovery, now ObservabilityHub's, which carries a service token). */
static const wire_route_t routes[] = {
    { WIRE_ACTION, "get_agent_status", on_get_agent_status, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_system_info", on_get_system_info, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "start_agent", on_start_agent, NULL, ROUTE_ADMIN },          /* no kept agent sends it */
    { WIRE_ACTION, "stop_agent", on_stop_agent, NULL, ROUTE_ADMIN },            /* no kept agent sends it */
    { WIRE_ACTION, "restart_agent", on_restart_agent, NULL, ROUTE_ADMIN },      /* no kept agent sends it */
    { WIRE_ACTION, "start_service", on_start_service, USA, ROUTE_ADMIN },       /* no kept agent sends it */
    { WIRE_ACTION, "stop_service", on_stop_service, USA, ROUTE_ADMIN },         /* no kept agent sends it */
    { WIRE_ACTION, "restart_service", on_restart_service, USA, ROUTE_ADMIN },   /* no kept agent sends it */
    { WIRE_ACTION, "list_services", on_list_services, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "get_service_status", on_get_service_status, USA, ROUTE_PUBLIC },
    { WIRE_ACTION, "cleanup_system", on_cleanup_system, USA, ROUTE_ADMIN },     /* no kept agent sends it */
    { 0 },
};

void core_supervisor_attach(supervisor_t *self, wire_server_t *wire)
{
    wire_server_attach(wire, routes, self);
}

void core_supervisor_health(supervisor_t *self, json_t *dict)
{
    int running = 0, failed = 0, managed = 0;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->count; i++) {
        managed += self->agents[i].managed;
        running += self->agents[i].pid > 0;
        failed += self->agents[i].gave_up;
    }
    pthread_mutex_unlock(&self->lock);
    json_object_set_new(dict, "supervisor", json_pack("{s:i, s:i, s:i, s:i}", "agents", self->count,
                        "managed", managed, "running", running, "failed", failed));
    /* An agent given up on needs a person: say so, without a 503. */
    if (failed)
        json_object_set_new(dict, "status", json_string("degraded"));
}
