/*  child: see child.h.
 *
 *  A program that is missing is known at once, before any spawn: child_check
 *  looks for it as the exec would.  glibc's posix_spawn reports a failed exec
 *  as its own return value too, but only because it waits for the exec in the
 *  child; under valgrind it is a plain fork and the program "runs" and exits
 *  127, which would let its dependents start.  The child
 *  gets only its three standard descriptors (every other one of keeld's is
 *  closed), an empty signal mask and SIGPIPE back at its default, though
 *  keeld blocks and ignores them: a clean start whatever keeld inherited.
 *
 *  Stdout and stderr share one pipe when only a file keeps them, so the
 *  file has them in the order written; logging lines takes one pipe each,
 *  since stderr's lines are logged at ERROR level. */
#include "child.h"
#include "clock.h"
#include "log.h"
#include "token.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    int fd;
    bool is_err;
    char line[4096];            /* an unfinished line of CHILD_OUTPUT_LOG */
    size_t len;
} stream_t;

struct child_t {
    char *name, *cwd, *log_path;
    char **argv, **envp;
    int output;
    child_restart_t policy;
    child_timing_t timing;
    errpub_t *errors;
    child_t **deps;
    size_t ndeps;
    stream_t out, err;
    int log_fd;
    pid_t pid;
    bool wanted, restart_now, gave_up, has_exited;
    int restarts, starts, last_exit;    /* last_exit: the code, or -signal */
    double next_start, started_mono, kill_at;
    char started_at[40];
    char error[160];            /* why the last spawn failed */
};

double child_backoff(int attempt, double base_s, double max_s)
{
    if (attempt < 1)
        attempt = 1;
    double d = base_s * pow(2.0, attempt - 1);
    return d > max_s ? max_s : d;
}

/* ---- construction ------------------------------------------------------ */

static char **strv_of(json_t *array)
{
    size_t n = json_array_size(array);
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(array, i));
        v[i] = strdup(s ? s : "");
    }
    return v;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* keeld's environment with `env` over it, made once: a threaded process
 * must not build it from environ while another thread could change it. */
static char **plan_environment(json_t *env)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + json_object_size(env) + 1, sizeof *envp);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char *key = strndup(environ[i], strcspn(environ[i], "="));
        if (!json_object_get(env, key))
            envp[o++] = strdup(environ[i]);
        free(key);
    }
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        char *text = json_is_string(v) ? strdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
        if (asprintf(&envp[o], "%s=%s", k, text ? text : "") >= 0)
            o++;
        free(text);
    }
    return envp;
}

child_t *child_new(const child_args_t *args)
{
    child_t *self = calloc(1, sizeof *self);
    self->name = strdup(args->name);
    self->argv = strv_of(args->argv);
    self->envp = plan_environment(args->env);
    self->cwd = args->cwd && *args->cwd ? strdup(args->cwd) : NULL;
    self->output = args->output;
    if ((args->output & CHILD_OUTPUT_FILE) && args->log_path)
        self->log_path = strdup(args->log_path);
    self->policy = args->restart;
    self->timing = args->timing;
    self->errors = args->errors;
    self->out.fd = self->err.fd = self->log_fd = -1;
    self->err.is_err = true;
    return self;
}

void child_destroy(child_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    child_t *self = *self_p;
    child_stop_all(&self, 1);
    if (self->log_fd >= 0)
        close(self->log_fd);
    strv_free(self->argv);
    strv_free(self->envp);
    free(self->name);
    free(self->cwd);
    free(self->log_path);
    free(self->deps);
    free(self);
    *self_p = NULL;
}

static bool reaches(child_t *from, child_t *to)
{
    if (from == to)
        return true;
    for (size_t i = 0; i < from->ndeps; i++)
        if (reaches(from->deps[i], to))
            return true;
    return false;
}

int child_depends_on(child_t *self, child_t *dependency)
{
    if (reaches(dependency, self))
        return -1;
    self->deps = realloc(self->deps, (self->ndeps + 1) * sizeof *self->deps);
    self->deps[self->ndeps++] = dependency;
    return 0;
}

/* ---- output ---------------------------------------------------------------- */

static void log_line(child_t *self, stream_t *s, const char *text)
{
    if (s->is_err)
        log_error("child", "[%s] %s", self->name, text);
    else
        log_info("child", "[%s] %s", self->name, text);
}

/* Logs the whole lines; an unfinished one waits for its end, unless it
 * fills the buffer or the stream ends. */
static void log_lines(child_t *self, stream_t *s, bool flush)
{
    char *start = s->line, *end = s->line + s->len, *nl;
    while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
        *nl = '\0';
        if (nl > start)
            log_line(self, s, start);
        start = nl + 1;
    }
    size_t rest = (size_t)(end - start);
    if (rest && (flush || rest == sizeof s->line - 1)) {
        start[rest] = '\0';
        log_line(self, s, start);
        rest = 0;
    }
    memmove(s->line, start, rest);
    s->len = rest;
}

static void close_stream(child_t *self, stream_t *s)
{
    if (s->fd < 0)
        return;
    if (self->output & CHILD_OUTPUT_LOG)
        log_lines(self, s, true);
    close(s->fd);
    s->fd = -1;
    s->len = 0;
}

/* Reads what the pipe holds now, up to 64 KiB so that one chatty child
 * cannot keep the owner from the others; closes the pipe at its end. */
static void drain(child_t *self, stream_t *s)
{
    for (int reads = 0; s->fd >= 0 && reads < 16; reads++) {
        char *at = s->line + s->len;
        ssize_t got = read(s->fd, at, sizeof s->line - 1 - s->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0) {
            close_stream(self, s);
            return;
        }
        if (self->log_fd >= 0 && write(self->log_fd, at, (size_t)got) < 0) {
            log_warn("child", "%s: cannot write %s (%s); its output is no longer kept there",
                     self->name, self->log_path, strerror(errno));
            close(self->log_fd);
            self->log_fd = -1;
        }
        if (self->output & CHILD_OUTPUT_LOG) {
            s->len += (size_t)got;
            log_lines(self, s, false);
        }
    }
}

int child_fds(child_t *self, struct pollfd *fds)
{
    int n = 0;
    if (self->out.fd >= 0)
        fds[n++] = (struct pollfd){ self->out.fd, POLLIN, 0 };
    if (self->err.fd >= 0)
        fds[n++] = (struct pollfd){ self->err.fd, POLLIN, 0 };
    return n;
}

/* ---- processes --------------------------------------------------------------- */

/* 0, or the errno of the failure. */
static int spawn(child_t *self)
{
    int out[2], err[2] = { -1, -1 };
    if (pipe2(out, O_CLOEXEC) < 0)
        return errno;
    if ((self->output & CHILD_OUTPUT_LOG) && pipe2(err, O_CLOEXEC) < 0) {
        int e = errno;
        close(out[0]);
        close(out[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err[1] >= 0 ? err[1] : out[1], STDERR_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    if (self->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, self->cwd);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, defaults;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    pid_t pid;
    int rc = posix_spawnp(&pid, self->argv[0], &fa, &attr, self->argv, self->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    if (err[1] >= 0)
        close(err[1]);
    if (rc != 0) {
        close(out[0]);
        if (err[0] >= 0)
            close(err[0]);
        return rc;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    if (err[0] >= 0)
        fcntl(err[0], F_SETFL, O_NONBLOCK);
    self->out.fd = out[0];
    self->err.fd = err[0];
    if (self->log_path && self->log_fd < 0
        && (self->log_fd = open(self->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)) < 0)
        log_warn("child", "%s: cannot open %s: %s", self->name, self->log_path, strerror(errno));
    self->pid = pid;
    self->starts++;
    return 0;
}

/* The program and its own children; the program alone if it left the
 * group it was started in. */
static void signal_group(child_t *self, int sig)
{
    if (kill(-self->pid, sig) < 0)
        kill(self->pid, sig);
}

static void give_up(child_t *self, child_t *dependency)
{
    self->wanted = false;
    self->gave_up = true;
    char message[600];
    if (dependency)
        snprintf(message, sizeof message, "Agent %s cannot start: its dependency %s was given up on",
                 self->name, dependency->name);
    else
        snprintf(message, sizeof message, "Agent %s keeps failing (exit %d); gave up after %d restarts",
                 self->name, self->last_exit, self->restarts - 1);
    log_error("child", "%s", message);
    json_t *details = json_pack("{s:s, s:i, s:i, s:s?}", "agent", self->name, "restarts", self->restarts - 1,
                                "last_exit", self->last_exit, "dependency", dependency ? dependency->name : NULL);
    if (self->errors)
        errpub_report(self->errors, "agent_restart_give_up", "critical", details, "%s", message);
    json_decref(details);
}

/* After an exit, or a spawn that failed: when to start again, if ever. */
static void plan_restart(child_t *self, bool failed, double ran_s)
{
    if (self->restart_now) {
        self->restart_now = false;
        self->next_start = clock_mono();
        return;
    }
    if (!self->wanted || self->policy == CHILD_RESTART_NEVER
        || (self->policy == CHILD_RESTART_ON_FAILURE && !failed)) {
        self->wanted = false;
        return;
    }
    if (ran_s >= self->timing.stable_s)
        self->restarts = 0;
    if (++self->restarts > self->timing.max_restarts) {
        give_up(self, NULL);
        return;
    }
    self->next_start = clock_mono() + child_backoff(self->restarts, self->timing.backoff_base_s,
                                                    self->timing.backoff_max_s);
}

static void exited(child_t *self, int status)
{
    drain(self, &self->out);
    drain(self, &self->err);
    close_stream(self, &self->out);     /* still open while the program's own children hold it */
    close_stream(self, &self->err);
    self->pid = 0;
    self->kill_at = 0;
    self->has_exited = true;
    self->last_exit = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    double ran = clock_mono() - self->started_mono;
    log_info("child", "%s exited (%d) after %.1f s", self->name, self->last_exit, ran);
    plan_restart(self, self->last_exit != 0, ran);
}

static void start_now(child_t *self)
{
    self->started_mono = clock_mono();
    if (child_check(self, self->error, sizeof self->error) == 0) {
        int rc = spawn(self);
        if (rc == 0) {
            clock_iso_local(clock_wall(), self->started_at, sizeof self->started_at);
            self->error[0] = '\0';
            log_info("child", "started %s (pid %d)", self->name, (int)self->pid);
            return;
        }
        snprintf(self->error, sizeof self->error, "%s: %s", self->argv[0], strerror(rc));
    }
    log_error("child", "cannot start %s: %s", self->name, self->error);
    self->has_exited = true;
    self->last_exit = 127;      /* the shell's "command not found" */
    plan_restart(self, true, 0);
}

static child_t *failed_dependency(child_t *self)
{
    for (size_t i = 0; i < self->ndeps; i++)
        if (self->deps[i]->gave_up)
            return self->deps[i];
    return NULL;
}

static bool dependencies_run(child_t *self)
{
    for (size_t i = 0; i < self->ndeps; i++)
        if (self->deps[i]->pid == 0)
            return false;
    return true;
}

void child_run(child_t *self)
{
    drain(self, &self->out);
    drain(self, &self->err);
    int status;
    if (self->pid > 0 && waitpid(self->pid, &status, WNOHANG) == self->pid)
        exited(self, status);
    double now = clock_mono();
    if (self->pid > 0 && self->kill_at > 0 && now >= self->kill_at) {
        log_warn("child", "%s (pid %d) ignored SIGTERM for %.1f s: killing it", self->name, (int)self->pid,
                 self->timing.stop_grace_s);
        signal_group(self, SIGKILL);
        self->kill_at = INFINITY;
    }
    if (self->pid > 0 || !self->wanted || now < self->next_start)
        return;
    child_t *failed = failed_dependency(self);
    if (failed)
        give_up(self, failed);
    else if (dependencies_run(self))
        start_now(self);
}

/* ---- what the owner wants ------------------------------------------------------ */

void child_start(child_t *self)
{
    for (size_t i = 0; i < self->ndeps; i++)
        if (!self->deps[i]->wanted)
            child_start(self->deps[i]);
    self->wanted = true;
    self->gave_up = false;
    self->restarts = 0;
    self->next_start = clock_mono();
}

/* SIGTERM, once; child_run sends SIGKILL after the grace. */
static void terminate(child_t *self)
{
    if (self->pid > 0 && self->kill_at == 0) {
        signal_group(self, SIGTERM);
        self->kill_at = clock_mono() + self->timing.stop_grace_s;
    }
}

void child_stop(child_t *self)
{
    self->wanted = false;
    self->restart_now = false;
    terminate(self);
}

void child_restart(child_t *self)
{
    if (self->pid == 0) {
        child_start(self);
        return;
    }
    self->wanted = true;
    self->gave_up = false;
    self->restart_now = true;
    terminate(self);
}

void child_stop_all(child_t **children, size_t n)
{
    for (size_t i = 0; i < n; i++)
        child_stop(children[i]);
    for (;;) {
        bool alive = false;
        for (size_t i = 0; i < n; i++) {
            child_run(children[i]);
            alive = alive || children[i]->pid > 0;
        }
        if (!alive)
            return;
        usleep(20000);
    }
}

/* Where posix_spawnp would look for the program: beside the working
 * directory for a relative path, else along PATH. */
int child_check(child_t *self, char *why, size_t len)
{
    const char *program = self->argv[0];
    if (self->cwd && access(self->cwd, X_OK) < 0) {
        snprintf(why, len, "%s: %s", self->cwd, strerror(errno));
        return -1;
    }
    char path[4096];
    if (strchr(program, '/')) {
        snprintf(path, sizeof path, "%s%s%s", program[0] != '/' && self->cwd ? self->cwd : "",
                 program[0] != '/' && self->cwd ? "/" : "", program);
        if (access(path, X_OK) == 0)
            return 0;
        snprintf(why, len, "%s: %s", program, strerror(errno));
        return -1;
    }
    const char *d = getenv("PATH");
    for (d = d ? d : "/bin:/usr/bin"; *program;) {
        int dlen = (int)strcspn(d, ":");
        snprintf(path, sizeof path, "%.*s/%s", dlen ? dlen : 1, dlen ? d : ".", program);
        if (access(path, X_OK) == 0)
            return 0;
        if (!d[dlen])
            break;
        d += dlen + 1;
    }
    snprintf(why, len, "%s: %s", program, strerror(ENOENT));
    return -1;
}

/* ---- what it is doing ---------------------------------------------------------- */

pid_t child_pid(child_t *self) { return self->pid; }
bool child_failed(child_t *self) { return self->gave_up; }
int child_starts(child_t *self) { return self->starts; }

static const char *state(child_t *self)
{
    if (self->pid > 0)
        return self->kill_at > 0 || self->restart_now ? "stopping" : "running";
    if (self->gave_up)
        return "failed";
    if (self->wanted)
        return self->restarts ? "backoff" : "starting";
    return self->has_exited ? "exited" : "stopped";
}

json_t *child_status(child_t *self)
{
    return json_pack("{s:s, s:o, s:i, s:o, s:s?, s:s?, s:s?}", "state", state(self),
                     "pid", self->pid > 0 ? json_integer(self->pid) : json_null(),
                     "restarts", self->restarts,
                     "last_exit", self->has_exited ? json_integer(self->last_exit) : json_null(),
                     "started_at", *self->started_at ? self->started_at : NULL,
                     "log", self->log_path, "error", *self->error ? self->error : NULL);
}

int child_ask_restart(config_t *config, const char *endpoint, const char *caller, const char *agent,
                      const char *reason, int timeout_ms, char *why, size_t len)
{
    char *token = token_issue_service(config, caller, 60);
    json_t *request = json_pack("{s:s, s:s, s:s?, s:s?}", "action", "restart_agent", "agent_name", agent,
                                "reason", reason, "auth_token", token);     /* the token names the caller */
    free(token);
    json_t *reply = wire_call(endpoint, request, timeout_ms, 0, why, len);
    json_decref(request);
    const char *status = json_string_value(json_object_get(reply, "status"));
    int rc = status && !strcasecmp(status, "success") ? 0 : -1;
    if (reply && rc < 0) {
        const char *text = json_string_value(json_object_get(reply, "error"));
        if (!text)
            text = json_string_value(json_object_get(reply, "message"));
        snprintf(why, len, "%s", text ? text : "restart refused");
    }
    json_decref(reply);
    return rc;
}
