/*  log: one logging path for the whole process.  Every line goes to stderr
 *  as readable text and, once log_open() has named a file, to that file as
 *  one JSON object per line (ts, level, component, msg), for machines to
 *  read.  Under systemd, stderr is the journal: there each line starts with
 *  its syslog priority ("<3>" for an error, sd-daemon(3)), so that
 *  `journalctl -p err` filters it, and carries no timestamp, since the
 *  journal stamps every line itself.  Callers must never pass secrets
 *  (passwords, tokens) to it.  Thread-safe: one mutex around both writes. */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Opens (appends to) the JSON log file, closing the one open before; 0 or
 * -1 (the old file stays open then). */
int log_open(const char *path);
/* Opens the same file again: after logrotate moved it (SIGHUP).  0 or -1. */
int log_reopen(void);
void log_close(void);
/* Writes stderr in the journal's form when stderr is the journal stream
 * systemd named in JOURNAL_STREAM ("device:inode"); the readable form
 * otherwise.  Call once at start, and again if stderr changes. */
void log_follow_journal(void);
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
