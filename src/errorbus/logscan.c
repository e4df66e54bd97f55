/*  logscan: see logscan.h.
 *
 *  Only whole lines are consumed: a line still being written (no newline
 *  yet) is left for the next scan, so it is never split into two events or
 *  lost.  A file is identified by path and inode, so a rotated file (same
 *  name, new inode) is read from its start, as is one truncated below the
 *  stored offset.  At most READ_CAP bytes are read per file per scan; the
 *  rest waits for the next scan rather than holding a huge file in memory.
 *
 *  Keel's own log lines carry "component":"errorbus" in keel.log; those
 *  and files named errorbus*.log or error_bus*.log are skipped, which
 *  breaks the original's loop of the bus ingesting its own complaints. */
#include "logscan.h"
#include "actor.h"
#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CAP (16 << 20)
#define MAX_PATTERNS 64

typedef struct {
    regex_t re;
    char *error_type, *severity;
} pattern_t;

struct logscan_t {
    evstore_t *store;
    char *dir;
    actor_t *ticker;            /* the first scan after an interval */
    pattern_t patterns[MAX_PATTERNS];
    size_t npatterns;
};

static const char *ems_patterns[] = {
    "TimeoutError", "ZMQError", "CUDA out of memory", "Connection refused",
};

static void add_pattern(logscan_t *self, const char *re, const char *type, const char *severity)
{
    if (self->npatterns >= MAX_PATTERNS)
        return;
    pattern_t *p = &self->patterns[self->npatterns];
    if (regcomp(&p->re, re, REG_EXTENDED) != 0) {
        log_warn("errorbus", "log pattern '%s' does not compile; ignored", re);
        return;
    }
    p->error_type = strdup(type);
    p->severity = strdup(severity);
    self->npatterns++;
}

static void scan(void *arg)
{
    logscan_run(arg);
}

logscan_t *logscan_new(evstore_t *store, const char *dir, double interval_s, json_t *patterns)
{
    logscan_t *self = calloc(1, sizeof *self);
    self->store = store;
    self->dir = strdup(dir);
    self->ticker = actor_new("errorbus logscan", interval_s > 0 ? interval_s : 60, scan, self);
    actor_delay_first(self->ticker);
    if (json_is_array(patterns)) {
        size_t i;
        json_t *p;
        json_array_foreach(patterns, i, p) {
            const char *re = json_string_value(json_object_get(p, "pattern"));
            if (re)
                add_pattern(self, re,
                            json_string_value(json_object_get(p, "error_type")) ?: "unknown",
                            json_string_value(json_object_get(p, "severity")) ?: "WARNING");
        }
    } else {
        add_pattern(self, ".*Connection refused.*", "connection_error", "ERROR");
        add_pattern(self, ".*Timeout.*", "timeout_error", "WARNING");
        add_pattern(self, ".*Out of memory.*", "resource_error", "CRITICAL");
    }
    return self;
}

void logscan_destroy(logscan_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    logscan_t *self = *self_p;
    actor_destroy(&self->ticker);
    for (size_t i = 0; i < self->npatterns; i++) {
        regfree(&self->patterns[i].re);
        free(self->patterns[i].error_type);
        free(self->patterns[i].severity);
    }
    free(self->dir);
    free(self);
    *self_p = NULL;
}

static void submit(logscan_t *self, json_t *payload)
{
    char id[64], reason[64];
    json_object_set_new(payload, "error_id", json_string(normalise_new_id("log-", id, sizeof id)));
    json_object_set_new(payload, "timestamp", json_real(clock_wall()));
    event_t *e = normalise_payload(payload, FRAMING_INTERNAL, clock_wall(), "warning",
                                   reason, sizeof reason);
    json_decref(payload);
    if (e)
        evstore_submit(self->store, e);
}

static char *trimmed(const char *line)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t n = strlen(line);
    while (n > 0 && strchr(" \t\r\n", line[n - 1]))
        n--;
    return strndup(line, n);
}

/* Both originals' rules over one line; the number of events. */
static int scan_line(logscan_t *self, const char *line, const char *stem, const char *path)
{
    if (strstr(line, "\"component\":\"errorbus\"") || strstr(line, "\"component\": \"errorbus\""))
        return 0;
    int events = 0;
    if (strstr(line, "ERROR") || strstr(line, "CRITICAL")) {
        for (size_t i = 0; i < sizeof ems_patterns / sizeof ems_patterns[0]; i++) {
            if (!strstr(line, ems_patterns[i]))
                continue;
            char source[300];
            snprintf(source, sizeof source, "LogScanner(%s)", stem);
            char *message = trimmed(line);
            submit(self, json_pack("{s:s, s:s, s:s, s:s}", "source", source, "error_type",
                                   "log_pattern_detected", "message", message,
                                   "severity", "warning"));
            free(message);
            events++;
            break;
        }
    }
    for (size_t i = 0; i < self->npatterns; i++) {
        regmatch_t m;
        if (regexec(&self->patterns[i].re, line, 1, &m, 0) != 0)
            continue;
        char *match = strndup(line + m.rm_so, (size_t)(m.rm_eo - m.rm_so));
        submit(self, json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "agent", stem,
                               "error_type", self->patterns[i].error_type, "message", match,
                               "severity", self->patterns[i].severity, "details",
                               "source", "log_scan", "log_file", path));
        free(match);
        events++;
    }
    return events;
}

static bool own_log(const char *name)
{
    return !strncmp(name, "errorbus", 8) || !strncmp(name, "error_bus", 9);
}

static int scan_file(logscan_t *self, const char *path, const char *name)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    double offset = evstore_scalar(self->store, 0, "SELECT position FROM log_offsets WHERE path = ?"
                                   " AND inode = ?", "si", path, (long)st.st_ino);
    off_t from = (off_t)offset;
    if (from > st.st_size)
        from = 0;           /* truncated: read again from the start */
    if (from == st.st_size)
        return 0;
    size_t want = (size_t)(st.st_size - from);
    if (want > READ_CAP)
        want = READ_CAP;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = malloc(want + 1);
    size_t got = fseeko(f, from, SEEK_SET) == 0 ? fread(buf, 1, want, f) : 0;
    fclose(f);
    buf[got] = '\0';
    char stem[256];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(name) - 4), name);
    int events = 0;
    size_t used = 0;
    char *line = buf, *nl;
    while ((nl = memchr(line, '\n', got - (size_t)(line - buf)))) {
        *nl = '\0';
        events += scan_line(self, line, stem, path);
        used = (size_t)(nl + 1 - buf);
        line = nl + 1;
    }
    free(buf);
    evstore_exec(self->store, "INSERT OR REPLACE INTO log_offsets(path, position, inode)"
                 " VALUES(?,?,?)", "sii", path, (long)(from + (off_t)used), (long)st.st_ino);
    return events;
}

int logscan_run(logscan_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return 0;
    int events = 0;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        size_t n = strlen(entry->d_name);
        if (n <= 4 || strcmp(entry->d_name + n - 4, ".log") != 0 || own_log(entry->d_name))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", self->dir, entry->d_name);
        events += scan_file(self, path, entry->d_name);
    }
    closedir(d);
    return events;
}

int logscan_start(logscan_t *self)
{
    return actor_start(self->ticker);
}
