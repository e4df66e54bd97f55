/*  procs: see procs.h.
 *
 *  A spawn is checked with a close-on-exec pipe: the child writes errno to
 *  it only when exec fails, so the parent knows at once whether the
 *  program really started, and can retry.  One reader thread polls every
 *  child's stdout and stderr pipes and logs whole lines; it also reaps a
 *  child that exits on its own, so none is left a zombie.  The table lock
 *  is never held while waiting for a child to stop. */
#include "procs.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 256
#define LINE_MAX_LEN 4096

typedef struct {
    char *name;
    char **argv;                /* command, args..., NULL */
    json_t *deps;
    pid_t pid;
    int out_fd, err_fd;
    char out_buf[LINE_MAX_LEN], err_buf[LINE_MAX_LEN];
    size_t out_len, err_len;
} proc_t;

struct procs_t {
    pthread_mutex_t lock;
    proc_t procs[MAX_PROCS];
    size_t count;
    double grace_s;
    double retry_base_s;
    int wake[2];                /* self-pipe: new fds to poll, or stop */
    pthread_t reader;
    bool running;
};

static proc_t *find(procs_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp(self->procs[i].name, name))
            return &self->procs[i];
    return NULL;
}

bool procs_manages(procs_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    bool found = find(self, name) != NULL;
    pthread_mutex_unlock(&self->lock);
    return found;
}

/* Logs the complete lines in buf; keeps the unfinished tail. */
static void log_lines(const char *name, char *buf, size_t *len, bool is_err, bool flush)
{
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', (size_t)(buf + *len - start)))) {
        *nl = '\0';
        if (nl > start) {
            if (is_err)
                log_error("observability", "[%s] %s", name, start);
            else
                log_info("observability", "[%s] %s", name, start);
        }
        start = nl + 1;
    }
    size_t rest = (size_t)(buf + *len - start);
    if (flush || rest == LINE_MAX_LEN - 1) {
        if (rest) {
            buf[*len] = '\0';
            if (is_err)
                log_error("observability", "[%s] %s", name, start);
            else
                log_info("observability", "[%s] %s", name, start);
        }
        rest = 0;
    }
    memmove(buf, start, rest);
    *len = rest;
}

static void close_pipe(proc_t *p, bool is_err)
{
    int *fd = is_err ? &p->err_fd : &p->out_fd;
    if (*fd >= 0) {
        log_lines(p->name, is_err ? p->err_buf : p->out_buf, is_err ? &p->err_len : &p->out_len,
                  is_err, true);
        close(*fd);
        *fd = -1;
    }
}

static void *reader(void *arg)
{
    procs_t *self = arg;
    struct pollfd fds[MAX_PROCS * 2 + 1];
    for (;;) {
        pthread_mutex_lock(&self->lock);
        if (!self->running) {
            pthread_mutex_unlock(&self->lock);
            break;
        }
        size_t n = 0;
        fds[n++] = (struct pollfd){ self->wake[0], POLLIN, 0 };
        for (size_t i = 0; i < self->count; i++) {
            if (self->procs[i].out_fd >= 0)
                fds[n++] = (struct pollfd){ self->procs[i].out_fd, POLLIN, 0 };
            if (self->procs[i].err_fd >= 0)
                fds[n++] = (struct pollfd){ self->procs[i].err_fd, POLLIN, 0 };
        }
        pthread_mutex_unlock(&self->lock);
        if (poll(fds, n, 500) < 0 && errno != EINTR)
            break;
        char drain[64];
        if (fds[0].revents & POLLIN)
            while (read(self->wake[0], drain, sizeof drain) > 0)
                ;
        pthread_mutex_lock(&self->lock);
        for (size_t k = 1; k < n; k++) {
            if (!fds[k].revents)
                continue;
            for (size_t i = 0; i < self->count; i++) {
                proc_t *p = &self->procs[i];
                bool is_err = fds[k].fd == p->err_fd;
                if (fds[k].fd != p->out_fd && !is_err)
                    continue;
                char *buf = is_err ? p->err_buf : p->out_buf;
                size_t *len = is_err ? &p->err_len : &p->out_len;
                ssize_t got = read(fds[k].fd, buf + *len, LINE_MAX_LEN - 1 - *len);
                if (got > 0) {
                    *len += (size_t)got;
                    log_lines(p->name, buf, len, is_err, false);
                } else if (got == 0 || errno != EAGAIN) {
                    close_pipe(p, is_err);
                }
                break;
            }
        }
        for (size_t i = 0; i < self->count; i++)
            if (self->procs[i].pid > 0 && waitpid(self->procs[i].pid, NULL, WNOHANG) == self->procs[i].pid) {
                log_warn("observability", "%s (pid %d) exited", self->procs[i].name, (int)self->procs[i].pid);
                self->procs[i].pid = 0;
            }
        pthread_mutex_unlock(&self->lock);
    }
    return NULL;
}

static void poke(procs_t *self)
{
    if (write(self->wake[1], "x", 1) < 0 && errno != EAGAIN)
        log_warn("observability", "cannot wake the process reader: %s", strerror(errno));
}

procs_t *procs_new(config_t *config)
{
    procs_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->grace_s = config_double(config, "observability.stop_grace_s", 5.0);
    self->retry_base_s = config_double(config, "observability.spawn_retry_s", 1.0);
    size_t i;
    json_t *entry;
    json_array_foreach(config_get(config, "observability.agents"), i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        const char *command = json_string_value(json_object_get(entry, "command"));
        if (!name || !command || !*command || self->count >= MAX_PROCS)
            continue;
        json_t *args = json_object_get(entry, "args");
        size_t nargs = json_is_array(args) ? json_array_size(args) : 0;
        proc_t *p = &self->procs[self->count++];
        p->name = strdup(name);
        p->argv = calloc(nargs + 2, sizeof *p->argv);
        p->argv[0] = strdup(command);
        for (size_t k = 0; k < nargs; k++) {
            const char *a = json_string_value(json_array_get(args, k));
            p->argv[k + 1] = strdup(a ? a : "");
        }
        json_t *deps = json_object_get(entry, "dependencies");
        p->deps = json_is_array(deps) ? json_deep_copy(deps) : json_array();
        p->out_fd = p->err_fd = -1;
    }
    if (pipe2(self->wake, O_CLOEXEC | O_NONBLOCK) == 0) {
        self->running = true;
        if (pthread_create(&self->reader, NULL, reader, self) != 0)
            self->running = false;
    } else {
        self->wake[0] = self->wake[1] = -1;
    }
    return self;
}

void procs_destroy(procs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    procs_t *self = *self_p;
    for (size_t i = self->count; i-- > 0;)
        procs_stop(self, self->procs[i].name);
    pthread_mutex_lock(&self->lock);
    bool was = self->running;
    self->running = false;
    pthread_mutex_unlock(&self->lock);
    if (was) {
        poke(self);
        pthread_join(self->reader, NULL);
    }
    for (size_t i = 0; i < self->count; i++) {
        proc_t *p = &self->procs[i];
        close_pipe(p, false);
        close_pipe(p, true);
        for (char **a = p->argv; *a; a++)
            free(*a);
        free(p->argv);
        free(p->name);
        json_decref(p->deps);
    }
    if (self->wake[0] >= 0) {
        close(self->wake[0]);
        close(self->wake[1]);
    }
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* One fork/exec; 0, or -1 with errno of the failed exec in *err. */
static int spawn(proc_t *p, int *err)
{
    int out[2], errp[2], check[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return *err = errno, -1;
    if (pipe2(errp, O_CLOEXEC) < 0) {
        *err = errno;
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pipe2(check, O_CLOEXEC) < 0) {
        *err = errno;
        close(out[0]), close(out[1]), close(errp[0]), close(errp[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(errp[1], STDERR_FILENO);
        setpgid(0, 0);
        execvp(p->argv[0], p->argv);
        int e = errno;
        if (write(check[1], &e, sizeof e) < 0)
            _exit(126);
        _exit(127);
    }
    close(out[1]);
    close(errp[1]);
    close(check[1]);
    int child_err = 0;
    ssize_t got = pid > 0 ? read(check[0], &child_err, sizeof child_err) : -1;
    close(check[0]);
    if (pid < 0 || got > 0) {
        *err = pid < 0 ? errno : child_err;
        if (pid > 0)
            waitpid(pid, NULL, 0);
        close(out[0]);
        close(errp[0]);
        return -1;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = errp[0];
    p->out_len = p->err_len = 0;
    return 0;
}

static int start_one(procs_t *self, const char *name, int depth, char *why, size_t len)
{
    if (depth > 16) {
        snprintf(why, len, "dependency cycle at %s", name);
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    proc_t *p = find(self, name);
    json_t *deps = p ? json_incref(p->deps) : NULL;
    bool running = p && p->pid > 0;
    pthread_mutex_unlock(&self->lock);
    if (!p) {
        snprintf(why, len, "%s is not an agent the hub runs", name);
        return -1;
    }
    if (running) {
        json_decref(deps);
        return 0;
    }
    size_t i;
    json_t *dep;
    json_array_foreach(deps, i, dep) {
        const char *d = json_string_value(dep);
        if (d && start_one(self, d, depth + 1, why, len) < 0) {
            char inner[192];
            snprintf(inner, sizeof inner, "%s", why);
            snprintf(why, len, "dependency %s of %s: %s", d, name, inner);
            json_decref(deps);
            return -1;
        }
    }
    json_decref(deps);
    int err = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (attempt)
            usleep((useconds_t)(self->retry_base_s * (double)(1 << (attempt - 1)) * 1e6));
        pthread_mutex_lock(&self->lock);
        int rc = p->pid > 0 ? 0 : spawn(p, &err);
        pid_t pid = p->pid;
        pthread_mutex_unlock(&self->lock);
        if (rc == 0) {
            log_info("observability", "started %s (pid %d)", name, (int)pid);
            poke(self);
            return 0;
        }
        log_warn("observability", "cannot start %s (attempt %d of 3): %s", name, attempt + 1, strerror(err));
    }
    snprintf(why, len, "cannot start %s: %s", name, strerror(err));
    return -1;
}

int procs_start(procs_t *self, const char *name, char *why, size_t len)
{
    return start_one(self, name, 0, why, len);
}

int procs_stop(procs_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    proc_t *p = find(self, name);
    pid_t pid = p ? p->pid : 0;
    pthread_mutex_unlock(&self->lock);
    if (!p)
        return -1;
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    double deadline = clock_mono() + self->grace_s;
    bool gone = false;
    while (!gone && clock_mono() < deadline) {
        pthread_mutex_lock(&self->lock);
        gone = p->pid != pid || waitpid(pid, NULL, WNOHANG) == pid;
        pthread_mutex_unlock(&self->lock);
        if (!gone)
            usleep(20000);
    }
    if (!gone) {
        log_warn("observability", "%s (pid %d) ignored SIGTERM for %.1f s: killing it", name, (int)pid,
                 self->grace_s);
        kill(pid, SIGKILL);
        pthread_mutex_lock(&self->lock);
        if (p->pid == pid)
            waitpid(pid, NULL, 0);
        pthread_mutex_unlock(&self->lock);
    }
    pthread_mutex_lock(&self->lock);
    if (p->pid == pid)
        p->pid = 0;
    pthread_mutex_unlock(&self->lock);
    log_info("observability", "stopped %s (pid %d)", name, (int)pid);
    return 0;
}

int procs_restart(procs_t *self, const char *name, char *why, size_t len)
{
    if (procs_stop(self, name) < 0) {
        snprintf(why, len, "%s is not an agent the hub runs", name);
        return -1;
    }
    return procs_start(self, name, why, len);
}

int procs_start_all(procs_t *self)
{
    int failed = 0;
    char why[256];
    for (size_t i = 0; i < self->count; i++)
        if (procs_start(self, self->procs[i].name, why, sizeof why) < 0) {
            log_error("observability", "%s", why);
            failed++;
        }
    return failed;
}

json_t *procs_list(procs_t *self)
{
    json_t *list = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->count; i++)
        json_object_set_new(list, self->procs[i].name, json_integer(self->procs[i].pid));
    pthread_mutex_unlock(&self->lock);
    return list;
}
