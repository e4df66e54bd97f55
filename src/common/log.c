/*  log: see log.h.  The JSON line is built with jansson so that any byte a
 *  message carries (quotes, control characters) is escaped correctly.
 *  JOURNAL_STREAM is checked against stderr's own device and inode, as
 *  systemd.exec(5) advises, so a stderr redirected elsewhere by a script
 *  keeps its timestamps even when the variable was inherited. */
#include "log.h"
#include "clock.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *json_file;
static char json_path[PATH_MAX];
static log_level_t min_level = LOG_INFO;
static bool journal;
static const char *level_names[] = { "debug", "info", "warn", "error" };
static const int syslog_priority[] = { 7, 6, 4, 3 };    /* debug, info, warning, err */

int log_open(const char *path)
{
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&lock);
    if (json_file)
        fclose(json_file);
    json_file = f;
    snprintf(json_path, sizeof json_path, "%s", path);
    pthread_mutex_unlock(&lock);
    return 0;
}

int log_reopen(void)
{
    char path[PATH_MAX];
    pthread_mutex_lock(&lock);
    snprintf(path, sizeof path, "%s", json_path);
    pthread_mutex_unlock(&lock);
    return *path ? log_open(path) : 0;
}

void log_close(void)
{
    pthread_mutex_lock(&lock);
    if (json_file)
        fclose(json_file);
    json_file = NULL;
    json_path[0] = '\0';
    pthread_mutex_unlock(&lock);
}

void log_follow_journal(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    journal = stream && sscanf(stream, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0
              && (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(log_level_t level)
{
    min_level = level;
}

int log_level_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "warning") == 0)
        return LOG_WARN;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

/* The message as one line of text: a newline an agent's string carried
 * would otherwise start a forged line (and, in the journal, an entry with
 * a priority of its choosing). */
static void one_line(const char *msg, char *out, size_t len)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 5 < len; p++) {
        if (*p == '\n')
            n += (size_t)snprintf(out + n, len - n, "\\n");
        else if (*p == '\r')
            n += (size_t)snprintf(out + n, len - n, "\\r");
        else if (*p < 0x20 && *p != '\t')
            n += (size_t)snprintf(out + n, len - n, "\\x%02x", *p);
        else
            out[n++] = (char)*p;
    }
    out[n] = '\0';
}

void log_write(log_level_t level, const char *component, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char ts[40], line[sizeof msg * 2];
    clock_iso_utc(clock_wall(), ts, sizeof ts);
    one_line(msg, line, sizeof line);
    pthread_mutex_lock(&lock);
    if (journal)
        fprintf(stderr, "<%d>[%s] %s\n", syslog_priority[level], component, line);
    else
        fprintf(stderr, "%s %-5s [%s] %s\n", ts, level_names[level], component, line);
    if (json_file) {
        json_t *line = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts,
                                 "level", level_names[level],
                                 "component", component, "msg", msg);
        if (line) {     /* invalid UTF-8 in msg makes json_pack fail */
            json_dumpf(line, json_file, JSON_COMPACT | JSON_ENSURE_ASCII);
            fputc('\n', json_file);
            json_decref(line);
        }
    }
    pthread_mutex_unlock(&lock);
}
