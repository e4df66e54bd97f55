/*  log: one logging path for the whole process.  Every line goes to stderr
 *  as readable text and, once log_open() has named a file, to that file as
 *  one JSON object per line (ts, level, component, msg), for machines to
 *  read.  Callers must never pass secrets (passwords, tokens) to it.
 *  Thread-safe: one mutex around both writes. */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Opens (appends to) the JSON log file; 0 or -1. */
int log_open(const char *path);
void log_close(void);
void log_set_level(log_level_t level);
/* "debug", "info", "warn"/"warning", "error"; -1 when unknown. */
int log_level_parse(const char *name);
void log_write(log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_write(LOG_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...)  log_write(LOG_INFO, c, __VA_ARGS__)
#define log_warn(c, ...)  log_write(LOG_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_write(LOG_ERROR, c, __VA_ARGS__)
#endif
