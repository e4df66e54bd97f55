/*  log: see log.h.  The JSON line is built with jansson so that any byte a
 *  message carries (quotes, control characters) is escaped correctly. */
#include "log.h"
#include "clock.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *json_file;
static log_level_t min_level = LOG_INFO;
static const char *level_names[] = { "debug", "info", "warn", "error" };

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
    pthread_mutex_unlock(&lock);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&lock);
    if (json_file)
        fclose(json_file);
    json_file = NULL;
    pthread_mutex_unlock(&lock);
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

void log_write(log_level_t level, const char *component, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char ts[40];
    clock_iso_utc(clock_wall(), ts, sizeof ts);
    pthread_mutex_lock(&lock);
    fprintf(stderr, "%s %-5s [%s] %s\n", ts, level_names[level], component, msg);
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
