/*  migrate state: imports what the legacy agents kept into the databases
 *  of the Keel services that absorbed them, so switching an agent off
 *  loses nothing:
 *
 *    --redis URL       ServiceRegistry's Redis keys `service_registry:*`
 *                      -> CoreOrchestrator's registry (core/registry.db)
 *    --perf-db FILE    PerformanceLoggerAgent's metrics and resource_usage
 *                      -> ObservabilityHub (observability/observability.db)
 *    --error-db FILE   error_system.db: ErrorBusService's `errors` and
 *                      ErrorManagementSystem's `error_log` tables
 *                      -> ErrorBus (errorbus/error_system.db)
 *    --auth-users FILE AuthenticationAgent's users, which the agent only
 *                      ever held in memory: the `users` dict dumped as
 *                      JSON ({user_id: {password_hash, created_at,
 *                      last_login}}) -> SecurityGateway (security.db),
 *                      SHA-256 hashes kept as they are, so each user is
 *                      rehashed to Argon2id at the next login.
 *
 *  The files are written directly, through each service's own opener (its
 *  schema and migrations), never through a copy of its DDL; so no service
 *  may be running on the data directory, and the command refuses while any
 *  holds its directory's lock (dirlock.h).  Every source is read and checked in
 *  full before anything is written: a missing file or an unreachable
 *  Redis fails the whole run with nothing changed.
 *
 *  Idempotence comes from the data itself, not from a ledger that could be
 *  lost: a registry entry, an error (by error_id) or a user is present when
 *  its key is; a performance row has no key, so a row counts as present
 *  when Keel holds at least as many identical rows as the legacy table
 *  does.  Presence is probed on a separate read-only connection, the same
 *  way for a real run and for --dry-run (which opens nothing for writing
 *  and creates no file). */
#include "ctl.h"
#include "clock.h"
#include "dirlock.h"
#include "fsutil.h"
#include "core/backend.h"
#include "core/registry.h"
#include "errorbus/evstore.h"
#include "observability/hubdb.h"
#include "security/passwd.h"
#include "security/users.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define PROBLEMS_SHOWN 5

typedef struct {
    const char *redis_url, *redis_prefix, *perf_db, *error_db, *auth_users;
    char data_dir[2048];
    bool dry_run;
} options_t;

/* One source's counts, and its progress line on stderr. */
typedef struct {
    const char *name, *from;
    char target[2300];
    long total, done, added, present, invalid;
    json_t *problems;           /* the first few invalid records, why */
    bool tty;
    int shown;                  /* the last bar length drawn */
} tally_t;

/* ---- progress and report ------------------------------------------------ */

static void tally_init(tally_t *t, const char *name, const char *from, long total)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->from = from;
    t->total = total;
    t->problems = json_array();
    t->tty = isatty(STDERR_FILENO);
    t->shown = -1;
}

static void bar(tally_t *t)
{
    int filled = t->total > 0 ? (int)(t->done * BAR_WIDTH / t->total) : BAR_WIDTH;
    char cells[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        cells[i] = i < filled ? '#' : '-';
    cells[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%-20s [%s] %ld/%ld", t->name, cells, t->done, t->total);
    t->shown = filled;
}

/* One record handled: the bar is redrawn only when it grows, so a large
 * table costs a few dozen writes to the terminal, not one per row. */
static void tally_step(tally_t *t)
{
    t->done++;
    if (t->tty && (t->total <= 0 || (int)(t->done * BAR_WIDTH / t->total) != t->shown))
        bar(t);
}

static void tally_invalid(tally_t *t, const char *key, const char *why)
{
    t->invalid++;
    if (json_array_size(t->problems) < PROBLEMS_SHOWN)
        json_array_append_new(t->problems, json_pack("{s:s, s:s}", "record", key, "error", why));
}

static void tally_end(tally_t *t)
{
    if (t->tty) {
        bar(t);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %ld/%ld records read from %s\n", t->name, t->done, t->total, t->from);
    }
}

static json_t *tally_json(tally_t *t)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:O}", "source", t->name,
                     "from", t->from, "target", t->target, "read", (json_int_t)t->done,
                     "new", (json_int_t)t->added, "present", (json_int_t)t->present,
                     "invalid", (json_int_t)t->invalid, "problems", t->problems);
}

static void report(ctl_t *ctl, bool dry_run, tally_t *tallies, size_t n)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rows, tally_json(&tallies[i]));
    if (ctl->json) {
        json_t *doc = json_pack("{s:b, s:o}", "dry_run", dry_run, "sources", rows);
        ctl_print_json(doc);
        json_decref(doc);
        return;
    }
    if (dry_run)
        printf("dry run: nothing was written; \"new\" is what a real run would import\n");
    json_t *table = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        char cells[4][32];
        static const char *const keys[] = { "read", "new", "present", "invalid" };
        for (int c = 0; c < 4; c++)
            snprintf(cells[c], sizeof cells[c], "%lld",
                     (long long)json_integer_value(json_object_get(row, keys[c])));
        json_array_append_new(table, json_pack("[s, s, s, s, s, s]",
                              json_string_value(json_object_get(row, "source")),
                              cells[0], cells[1], cells[2], cells[3],
                              json_string_value(json_object_get(row, "target"))));
    }
    static const char *const header[] = { "SOURCE", "READ", "NEW", "PRESENT", "INVALID", "TARGET" };
    ctl_table(header, 6, table);
    json_array_foreach(rows, i, row) {
        size_t j;
        json_t *p;
        json_array_foreach(json_object_get(row, "problems"), j, p)
            ctl_say("invalid %s record %s: %s", json_string_value(json_object_get(row, "source")),
                   json_string_value(json_object_get(p, "record")),
                   json_string_value(json_object_get(p, "error")));
    }
    json_decref(table);
    json_decref(rows);
}

/* ---- shared helpers ----------------------------------------------------- */

/* A read-only connection to a Keel database, or NULL when the file does
 * not exist yet (then nothing is present). */
static sqlite3 *probe_open(const char *path)
{
    if (access(path, F_OK) != 0)
        return NULL;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of `sql` with one text bind, as a count; 0 without a
 * database or a table. */
static long probe_count_text(sqlite3 *db, const char *sql, const char *text)
{
    sqlite3_stmt *st = NULL;
    if (!db || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return n;
}

static void target_path(const options_t *o, const char *service, const char *file,
                        char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/%s", o->data_dir, service, file);
}

/* The service's own directory, made as keeld would make it. */
static int service_dir(const options_t *o, const char *service)
{
    char dir[2200];
    snprintf(dir, sizeof dir, "%s/%s", o->data_dir, service);
    if (fs_mkdirs(dir) == 0)
        return 0;
    ctl_warn("cannot create %s: %s", dir, strerror(errno));
    return -1;
}

/* A legacy SQLite file, opened read-only, that must hold at least one of
 * `tables`; NULL with the reason printed. */
static sqlite3 *legacy_open(const char *path, const char *what, const char *const *tables)
{
    if (access(path, R_OK) != 0) {
        ctl_warn("cannot read %s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ctl_warn("cannot open %s %s: %s", what, path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    long found = 0;
    for (size_t i = 0; tables[i]; i++) {
        sqlite3_stmt *st = NULL;
        const char *sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?";
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            ctl_warn("%s %s is not a SQLite database: %s", what, path,
                    sqlite3_errmsg(db));
            sqlite3_finalize(st);
            sqlite3_close(db);
            return NULL;
        }
        sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            found += sqlite3_column_int64(st, 0);
        else
            ctl_warn("%s %s: %s", what, path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    if (found == 0) {
        ctl_warn("%s %s has none of the expected tables (%s%s%s)", what, path, tables[0],
                 tables[1] ? ", " : "", tables[1] ? tables[1] : "");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static bool has_table(sqlite3 *db, const char *table)
{
    return probe_count_text(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                            table) > 0;
}

static long table_rows(sqlite3 *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st = NULL;
    long n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* A column as JSON: NULL for SQL NULL (the caller leaves the key out). */
static json_t *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_NULL: return NULL;
    default: return json_stringn((const char *)sqlite3_column_text(st, i),
                                 (size_t)sqlite3_column_bytes(st, i));
    }
}

/* ---- ServiceRegistry: Redis -> core/registry.db ------------------------- */

typedef struct {
    char host[256], password[256];
    int port, db;
} redis_addr_t;

static int parse_redis_url(const char *url, redis_addr_t *a)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    if (strncmp(url, "redis://", 8) != 0)
        return -1;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(a->password, sizeof a->password, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hostlen = strcspn(p, ":/");
    snprintf(a->host, sizeof a->host, "%.*s", (int)hostlen, p);
    p += hostlen;
    if (*p == ':') {
        a->port = (int)strtol(p + 1, (char **)&p, 10);
        if (a->port <= 0 || a->port > 65535)
            return -1;
    }
    if (*p == '/' && p[1])
        a->db = (int)strtol(p + 1, NULL, 10);
    return *a->host ? 0 : -1;
}

/* SCAN's MATCH is a glob: the prefix's own glob characters are escaped. */
static void scan_pattern(const char *prefix, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *c = prefix; *c && o + 3 < len; c++) {
        if (strchr("*?[]\\", *c))
            buf[o++] = '\\';
        buf[o++] = *c;
    }
    buf[o++] = '*';
    buf[o] = '\0';
}

static redisReply *command(redisContext *rc, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    if (!r) {
        ctl_warn("Redis %s failed: %s", what, rc->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        ctl_warn("Redis %s failed: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static redisContext *redis_connect(const char *url)
{
    redis_addr_t a;
    if (parse_redis_url(url, &a) < 0) {
        ctl_warn("bad Redis URL '%s' (redis://[:password@]host[:port][/db])", url);
        return NULL;
    }
    struct timeval tv = { 2, 0 };
    redisContext *rc = redisConnectWithTimeout(a.host, a.port, tv);
    if (!rc || rc->err) {
        ctl_warn("cannot reach Redis at %s:%d: %s", a.host, a.port,
                rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    if (*a.password) {
        redisReply *r = command(rc, "AUTH", "AUTH %s", a.password);
        if (!r) {
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (a.db) {
        redisReply *r = command(rc, "SELECT", "SELECT %d", a.db);
        if (!r) {
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* Every `<prefix>*` key as {agent_id: value text, or null when the key
 * does not hold a string}.  SCAN, never KEYS, which would block every
 * other client of a production Redis. */
static json_t *redis_read(const char *url, const char *prefix)
{
    redisContext *rc = redis_connect(url);
    if (!rc)
        return NULL;
    char pattern[512];
    scan_pattern(prefix, pattern, sizeof pattern);
    json_t *entries = json_object();
    char cursor[32] = "0";
    do {
        redisReply *r = command(rc, "SCAN", "SCAN %s MATCH %s COUNT 500", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            json_decref(entries);
            redisFree(rc);
            return NULL;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *key = keys->element[i]->str;
            redisReply *v = redisCommand(rc, "GET %s", key);
            if (!v) {
                ctl_warn("Redis GET %s failed: %s", key, rc->errstr);
                freeReplyObject(r);
                json_decref(entries);
                redisFree(rc);
                return NULL;
            }
            json_object_set_new(entries, key + strlen(prefix),
                                v->type == REDIS_REPLY_STRING ? json_stringn(v->str, v->len)
                                                              : json_null());
            freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    return entries;
}

/* The legacy record checked as CoreOrchestrator checks a registration,
 * keeping its last_registered; NULL with the reason. */
static json_t *registry_record(const char *id, json_t *text, char *err, size_t errlen)
{
    if (!json_is_string(text)) {
        snprintf(err, errlen, "the key does not hold a string");
        return NULL;
    }
    json_error_t jerr;
    json_t *legacy = json_loads(json_string_value(text), 0, &jerr);
    if (!json_is_object(legacy)) {
        snprintf(err, errlen, "not a JSON object: %s", legacy ? "wrong type" : jerr.text);
        json_decref(legacy);
        return NULL;
    }
    json_t *fields = json_deep_copy(legacy);
    json_object_set_new(fields, "agent_id", json_string(id));
    char key[512];
    json_t *rec = registry_validate(fields, key, sizeof key, err, errlen);
    json_decref(fields);
    if (rec) {
        json_t *when = json_object_get(legacy, "last_registered");
        json_object_set(rec, "last_registered", json_is_string(when) ? when : json_string(""));
    }
    json_decref(legacy);
    return rec;
}

static int import_registry(const options_t *o, json_t *entries, tally_t *t)
{
    target_path(o, "core", "registry.db", t->target, sizeof t->target);
    backend_t *backend = NULL;
    char err[512];
    if (!o->dry_run) {
        if (service_dir(o, "core") < 0)
            return -1;
        backend = backend_new("sqlite", t->target, NULL, o->redis_prefix, false, err, sizeof err);
        if (!backend) {
            ctl_warn("cannot open %s: %s", t->target, err);
            return -1;
        }
    }
    sqlite3 *probe = probe_open(t->target);
    int rc = 0;
    const char *id;
    json_t *text;
    json_object_foreach(entries, id, text) {
        json_t *rec = registry_record(id, text, err, sizeof err);
        if (!rec) {
            tally_invalid(t, id, err);
        } else if (probe_count_text(probe, "SELECT count(*) FROM entries WHERE tbl = 'agents'"
                                           " AND key = ?", id) > 0) {
            t->present++;
        } else if (backend && backend_put(backend, "agents", id, rec, err, sizeof err) < 0) {
            ctl_warn("cannot store %s: %s", id, err);
            rc = -1;
        } else {
            t->added++;
        }
        json_decref(rec);
        tally_step(t);
        if (rc < 0)
            break;
    }
    sqlite3_close(probe);
    backend_destroy(&backend);
    return rc;
}

/* ---- PerformanceLoggerAgent -> observability/observability.db ----------- */

/* The two tables have the same shape: five data columns and no key. */
typedef struct {
    const char *table, *name, *columns, *match;
} perf_table_t;

static const perf_table_t perf_tables[] = {
    { "metrics", "perf metrics", "agent, action, duration, timestamp, metadata",
      "agent IS ?1 AND action IS ?2 AND duration IS ?3 AND timestamp IS ?4 AND metadata IS ?5" },
    { "resource_usage", "perf resource usage", "agent, cpu_percent, memory_mb, timestamp, metadata",
      "agent IS ?1 AND cpu_percent IS ?2 AND memory_mb IS ?3 AND timestamp IS ?4 AND metadata IS ?5" },
};
#define PERF_COLS 5

static bool same_values(sqlite3_value **a, sqlite3_stmt *row)
{
    for (int i = 0; i < PERF_COLS; i++) {
        sqlite3_value *b = sqlite3_column_value(row, i);
        int type = sqlite3_value_type(a[i]);
        if (type != sqlite3_value_type(b))
            return false;
        if (type == SQLITE_INTEGER && sqlite3_value_int64(a[i]) != sqlite3_value_int64(b))
            return false;
        if (type == SQLITE_FLOAT && sqlite3_value_double(a[i]) != sqlite3_value_double(b))
            return false;
        if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
            int n = sqlite3_value_bytes(a[i]);
            const void *x = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(a[i])
                                                : sqlite3_value_blob(a[i]);
            const void *y = type == SQLITE_TEXT ? (const void *)sqlite3_value_text(b)
                                                : sqlite3_value_blob(b);
            if (n != sqlite3_value_bytes(b) || (n && memcmp(x, y, (size_t)n) != 0))
                return false;
        }
    }
    return true;
}

static void keep_values(sqlite3_value **kept, sqlite3_stmt *row)
{
    for (int i = 0; i < PERF_COLS; i++) {
        sqlite3_value_free(kept[i]);
        kept[i] = sqlite3_value_dup(sqlite3_column_value(row, i));
    }
}

/* The statement counting rows identical to a legacy row; NULL when Keel's
 * file does not exist yet. */
static sqlite3_stmt *perf_counter(sqlite3 *probe, const perf_table_t *pt)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", pt->table, pt->match);
    sqlite3_stmt *st = NULL;
    if (probe && sqlite3_prepare_v2(probe, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* How many rows identical to `row` Keel holds already. */
static long perf_count(sqlite3_stmt *counter, sqlite3_stmt *row)
{
    if (!counter)
        return 0;
    for (int i = 0; i < PERF_COLS; i++)
        sqlite3_bind_value(counter, i + 1, sqlite3_column_value(row, i));
    long n = sqlite3_step(counter) == SQLITE_ROW ? sqlite3_column_int64(counter, 0) : 0;
    sqlite3_reset(counter);
    return n;
}

/* Rows come sorted by content, so identical rows are neighbours: the kth
 * copy of a row is new when Keel holds k or fewer copies of it. */
static int import_perf_table(sqlite3 *legacy, hubdb_t *hub, sqlite3 *probe,
                             const perf_table_t *pt, tally_t *t)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s ORDER BY %s", pt->columns, pt->table, pt->columns);
    sqlite3_stmt *row = NULL;
    if (sqlite3_prepare_v2(legacy, sql, -1, &row, NULL) != SQLITE_OK) {
        ctl_warn("cannot read %s: %s", pt->table, sqlite3_errmsg(legacy));
        sqlite3_finalize(row);
        return -1;
    }
    snprintf(sql, sizeof sql, "INSERT INTO %s(%s) VALUES(?, ?, ?, ?, ?)", pt->table, pt->columns);
    sqlite3_stmt *insert = hub ? store_prepare(hub->store, sql) : NULL;
    if (hub && !insert) {
        sqlite3_finalize(row);
        return -1;
    }
    sqlite3_stmt *counter = perf_counter(probe, pt);
    sqlite3_value *kept[PERF_COLS] = { NULL };
    long copy = 0, held = 0;
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(row)) == SQLITE_ROW) {
        if (kept[0] && same_values(kept, row)) {
            copy++;
        } else {
            keep_values(kept, row);
            copy = 0;
            held = perf_count(counter, row);
        }
        if (copy < held) {
            t->present++;
        } else if (insert) {
            for (int i = 0; i < PERF_COLS; i++)
                sqlite3_bind_value(insert, i + 1, sqlite3_column_value(row, i));
            if (sqlite3_step(insert) != SQLITE_DONE) {
                ctl_warn("cannot insert into %s: %s", pt->table,
                        store_errmsg(hub->store));
                rc = -1;
            }
            sqlite3_reset(insert);
            t->added += rc == 0;
        } else {
            t->added++;
        }
        tally_step(t);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        ctl_warn("reading %s failed: %s", pt->table, sqlite3_errmsg(legacy));
        rc = -1;
    }
    for (int i = 0; i < PERF_COLS; i++)
        sqlite3_value_free(kept[i]);
    sqlite3_finalize(counter);
    sqlite3_finalize(row);
    return rc;
}

/* Both tables in one transaction: a failure leaves Keel's file as it was. */
static int import_perf(const options_t *o, sqlite3 *legacy, tally_t *tallies)
{
    char path[2300];
    target_path(o, "observability", "observability.db", path, sizeof path);
    hubdb_t *hub = NULL;
    if (!o->dry_run) {
        if (service_dir(o, "observability") < 0)
            return -1;
        if (!(hub = hubdb_new(path))) {
            ctl_warn("cannot open %s", path);
            return -1;
        }
        if (store_begin(hub->store) < 0) {
            hubdb_destroy(&hub);
            return -1;
        }
    }
    sqlite3 *probe = probe_open(path);
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        snprintf(tallies[i].target, sizeof tallies[i].target, "%s", path);
        if (has_table(legacy, perf_tables[i].table))
            rc = import_perf_table(legacy, hub, probe, &perf_tables[i], &tallies[i]);
        tally_end(&tallies[i]);
    }
    sqlite3_close(probe);
    if (hub && (rc < 0 || store_commit(hub->store) < 0)) {
        store_rollback(hub->store);
        rc = -1;
    }
    hubdb_destroy(&hub);
    return rc;
}

/* ---- ErrorBusService / ErrorManagementSystem -> errorbus/error_system.db - */

/* A legacy details/context column: its JSON when it parses, else the text. */
static json_t *details_json(sqlite3_stmt *st, int i)
{
    json_t *v = column_json(st, i);
    if (!json_is_string(v))
        return v;
    json_t *parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
    if (!parsed)
        return v;
    json_decref(v);
    return parsed;
}

/* FNV-1a of the payload's canonical JSON. */
static unsigned long long content_hash(json_t *payload)
{
    char *text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned long long h = 1469598103934665603ULL;
    for (const char *c = text ? text : ""; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    free(text);
    return h;
}

/* The legacy row as the payload an agent would have published: EMS's
 * error_log keeps its error_id; ErrorBusService's errors table had none,
 * so its rows get `legacy-errors-<id>-<hash of the row>`: stable across
 * runs, and distinct between the databases of two machines whose row
 * numbers overlap. */
static json_t *error_payload(sqlite3_stmt *st, bool ems)
{
    static const char *const ems_keys[] = { "error_id", "source", "error_type", "message",
                                            "severity", "timestamp", "details" };
    static const char *const bus_keys[] = { "id", "timestamp", "agent", "error_type", "message",
                                            "severity", "details" };
    const char *const *keys = ems ? ems_keys : bus_keys;
    json_t *payload = json_object();
    for (int i = 0; i < 7; i++) {
        json_t *v = i == 6 ? details_json(st, i) : column_json(st, i);
        if (v)
            json_object_set_new(payload, keys[i], v);
    }
    json_t *id = json_object_get(payload, "error_id");
    if (!json_is_string(id) || !*json_string_value(id)) {
        char buf[96];
        snprintf(buf, sizeof buf, "legacy-%s-%lld-%016llx", ems ? "error_log" : "errors",
                 (long long)sqlite3_column_int64(st, 7), content_hash(payload));
        json_object_set_new(payload, "error_id", json_string(buf));
    }
    json_object_del(payload, "id");
    return payload;
}

static int import_error_table(sqlite3 *legacy, evstore_t *store, sqlite3 *probe, bool ems,
                              tally_t *t)
{
    const char *sql = ems ? "SELECT error_id, source, error_type, message, severity, timestamp,"
                            " details, rowid FROM error_log ORDER BY rowid"
                          : "SELECT id, timestamp, agent, error_type, message, severity,"
                            " context, rowid FROM errors ORDER BY id";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(legacy, sql, -1, &st, NULL) != SQLITE_OK) {
        ctl_warn("cannot read the legacy %s table: %s", ems ? "error_log" : "errors",
                sqlite3_errmsg(legacy));
        sqlite3_finalize(st);
        return -1;
    }
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *payload = error_payload(st, ems);
        const char *id = json_string_value(json_object_get(payload, "error_id"));
        char reason[256];
        if (probe_count_text(probe, "SELECT count(*) FROM errors WHERE error_id = ?", id) > 0) {
            t->present++;
        } else if (store) {
            event_t *e = normalise_payload(payload, FRAMING_INTERNAL, clock_wall(), "ERROR",
                                           reason, sizeof reason);
            if (!e)
                tally_invalid(t, id, reason);
            else if (evstore_submit(store, e) < 0)
                rc = -1;
            else
                t->added++;
        } else {
            t->added++;
        }
        json_decref(payload);
        tally_step(t);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        ctl_warn("reading the legacy errors failed: %s", sqlite3_errmsg(legacy));
        rc = -1;
    }
    sqlite3_finalize(st);
    return rc;
}

static int import_errors(const options_t *o, sqlite3 *legacy, tally_t *t)
{
    target_path(o, "errorbus", "error_system.db", t->target, sizeof t->target);
    evstore_t *store = NULL;
    char err[512];
    if (!o->dry_run) {
        store = evstore_new(t->target, NULL, NULL, 100000, err, sizeof err);
        if (!store) {
            ctl_warn("cannot open %s: %s", t->target, err);
            return -1;
        }
        /* Retention is the service's business: the import deletes nothing. */
        evstore_set_retention(store, 1e9, 1e9);
        if (evstore_start(store) < 0) {
            evstore_destroy(&store);
            return -1;
        }
    }
    sqlite3 *probe = probe_open(t->target);
    int rc = 0;
    if (has_table(legacy, "errors"))
        rc = import_error_table(legacy, store, probe, false, t);
    if (rc == 0 && has_table(legacy, "error_log"))
        rc = import_error_table(legacy, store, probe, true, t);
    sqlite3_close(probe);
    if (store) {
        evstore_stop(store);
        evstore_stats_t st;
        evstore_stats(store, &st);
        if (st.dropped || st.write_failed) {
            ctl_warn("%ld errors could not be written to %s",
                    st.dropped + st.write_failed, t->target);
            rc = -1;
        }
        t->added -= st.duplicates;
        t->present += st.duplicates;
        evstore_destroy(&store);
    }
    return rc;
}

/* ---- AuthenticationAgent users -> security/security.db ------------------ */

/* The dumped `users` dict, or a list of {user_id, password_hash, ...}, as
 * one object keyed by user_id; NULL with the reason printed. */
static json_t *users_read(const char *path)
{
    char *text = fs_read_all(path, NULL);
    if (!text) {
        ctl_warn("cannot read users file %s: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    free(text);
    if (!doc) {
        ctl_warn("users file %s, line %d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    if (json_is_object(doc))
        return doc;
    if (json_is_array(doc)) {
        json_t *users = json_object();
        size_t i;
        json_t *u;
        json_array_foreach(doc, i, u)
            if (json_is_string(json_object_get(u, "user_id")))
                json_object_set(users, json_string_value(json_object_get(u, "user_id")), u);
        json_decref(doc);
        return users;
    }
    ctl_warn("users file %s must hold an object {user_id: {password_hash, ...}}", path);
    json_decref(doc);
    return NULL;
}

static int store_user(store_t *db, const char *id, const char *hash, json_t *u)
{
    if (users_add(db, id, hash, false) < 0)
        return -1;
    json_t *created = json_object_get(u, "created_at");
    json_t *last = json_object_get(u, "last_login");
    if (!json_is_string(created) && !json_is_string(last))
        return 0;
    sqlite3_stmt *st = store_prepare(db, "UPDATE users SET created_at = coalesce(?, created_at),"
                                         " last_login = ? WHERE user_id = ?");
    if (!st)
        return -1;
    if (json_is_string(created))
        sqlite3_bind_text(st, 1, json_string_value(created), -1, SQLITE_TRANSIENT);
    if (json_is_string(last))
        sqlite3_bind_text(st, 2, json_string_value(last), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    sqlite3_reset(st);
    return rc;
}

static int import_users(const options_t *o, json_t *users, tally_t *t)
{
    target_path(o, "security", "security.db", t->target, sizeof t->target);
    store_t *db = NULL;
    char err[512];
    if (!o->dry_run) {
        if (service_dir(o, "security") < 0)
            return -1;
        if (!(db = users_open(t->target, err, sizeof err))) {
            ctl_warn("cannot open %s: %s", t->target, err);
            return -1;
        }
    }
    sqlite3 *probe = probe_open(t->target);
    int rc = 0;
    const char *id;
    json_t *u;
    json_object_foreach(users, id, u) {
        const char *hash = json_string_value(json_object_get(u, "password_hash"));
        if (!*id) {
            tally_invalid(t, id, "empty user_id");
        } else if (!hash || !passwd_is_legacy(hash)) {
            tally_invalid(t, id, "password_hash is not the agent's SHA-256 hex (64 lowercase hex)");
        } else if (probe_count_text(probe, "SELECT count(*) FROM users WHERE user_id = ?", id) > 0) {
            t->present++;
        } else if (db && store_user(db, id, hash, u) < 0) {
            ctl_warn("cannot store user %s: %s", id, store_errmsg(db));
            rc = -1;
        } else {
            t->added++;
        }
        tally_step(t);
        if (rc < 0)
            break;
    }
    sqlite3_close(probe);
    store_destroy(&db);
    return rc;
}

/* ---- the command -------------------------------------------------------- */

/* The services write these files themselves; a second writer would race
 * their caches.  The pid of one running on data_dir, or 0. */
static long service_running(const char *data_dir)
{
    static const char *const names[] = { "core", "resource", "observability", "errorbus", "security" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char dir[2200];
        snprintf(dir, sizeof dir, "%s/%s", data_dir, names[i]);
        long pid = dirlock_holder(dir);
        if (pid != 0)
            return pid;
    }
    return 0;
}

static int parse(ctl_t *ctl, const ctl_args_t *args, options_t *o)
{
    memset(o, 0, sizeof *o);
    o->dry_run = ctl_option(args, "dry-run") != NULL;
    o->redis_url = ctl_option(args, "redis");
    o->redis_prefix = ctl_option(args, "redis-prefix");
    if (!o->redis_prefix)
        o->redis_prefix = "service_registry:";
    o->perf_db = ctl_option(args, "perf-db");
    o->error_db = ctl_option(args, "error-db");
    o->auth_users = ctl_option(args, "auth-users");
    snprintf(o->data_dir, sizeof o->data_dir, "%s", config_str(ctl->config, "data_dir", "./var/keel"));
    if (o->redis_url || o->perf_db || o->error_db || o->auth_users)
        return 0;
    ctl_warn("migrate state: name at least one source (--redis, --perf-db, --error-db, --auth-users)");
    return -1;
}

typedef struct {
    json_t *registry, *users;
    sqlite3 *perf, *errors;
} sources_t;

static void sources_close(sources_t *s)
{
    json_decref(s->registry);
    json_decref(s->users);
    sqlite3_close(s->perf);
    sqlite3_close(s->errors);
}

/* Reads or opens every source given; -1 (reason printed) if any fails. */
static int sources_open(const options_t *o, sources_t *s)
{
    static const char *const perf_tables_names[] = { "metrics", "resource_usage", NULL };
    static const char *const error_tables[] = { "errors", "error_log", NULL };
    memset(s, 0, sizeof *s);
    if (o->redis_url && !(s->registry = redis_read(o->redis_url, o->redis_prefix)))
        return -1;
    if (o->perf_db && !(s->perf = legacy_open(o->perf_db, "PerformanceLoggerAgent database",
                                              perf_tables_names)))
        return -1;
    if (o->error_db && !(s->errors = legacy_open(o->error_db, "error database", error_tables)))
        return -1;
    if (o->auth_users && !(s->users = users_read(o->auth_users)))
        return -1;
    return 0;
}

static int run_imports(const options_t *o, sources_t *s, tally_t *tallies, size_t *n)
{
    if (s->registry) {
        tally_t *t = &tallies[(*n)++];
        tally_init(t, "registry", o->redis_url, (long)json_object_size(s->registry));
        int rc = import_registry(o, s->registry, t);
        tally_end(t);
        if (rc < 0)
            return -1;
    }
    if (s->perf) {
        tally_t *t = &tallies[*n];
        *n += 2;
        for (int i = 0; i < 2; i++)
            tally_init(&t[i], perf_tables[i].name, o->perf_db,
                       has_table(s->perf, perf_tables[i].table) ? table_rows(s->perf, perf_tables[i].table) : 0);
        if (import_perf(o, s->perf, t) < 0)
            return -1;
    }
    if (s->errors) {
        tally_t *t = &tallies[(*n)++];
        long total = (has_table(s->errors, "errors") ? table_rows(s->errors, "errors") : 0)
                   + (has_table(s->errors, "error_log") ? table_rows(s->errors, "error_log") : 0);
        tally_init(t, "errors", o->error_db, total);
        int rc = import_errors(o, s->errors, t);
        tally_end(t);
        if (rc < 0)
            return -1;
    }
    if (s->users) {
        tally_t *t = &tallies[(*n)++];
        tally_init(t, "users", o->auth_users, (long)json_object_size(s->users));
        int rc = import_users(o, s->users, t);
        tally_end(t);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int run(ctl_t *ctl, const ctl_args_t *args)
{
    options_t o;
    if (parse(ctl, args, &o) < 0)
        return CTL_USAGE;
    long pid = o.dry_run ? 0 : service_running(o.data_dir);
    if (pid != 0) {
        ctl_warn("keeld (pid %ld) is running on %s; stop it first: the migration writes the services'"
                 " database files directly", pid, o.data_dir);
        return CTL_FAILED;
    }
    sources_t s;
    if (sources_open(&o, &s) < 0) {
        sources_close(&s);
        return CTL_FAILED;
    }
    tally_t tallies[5];
    size_t n = 0;
    int rc = run_imports(&o, &s, tallies, &n);
    sources_close(&s);
    if (rc == 0)
        report(ctl, o.dry_run, tallies, n);
    for (size_t i = 0; i < n; i++)
        json_decref(tallies[i].problems);
    return rc == 0 ? CTL_OK : CTL_FAILED;
}

static const ctl_option_t state_options[] = {
    { "dry-run", 0, NULL, "read and count everything, write nothing" },
    { "redis", 0, "URL", "ServiceRegistry's Redis (redis://[:password@]host[:port][/db])" },
    { "redis-prefix", 0, "P", "the registry's key prefix (default service_registry:)" },
    { "perf-db", 0, "FILE", "PerformanceLoggerAgent's SQLite database" },
    { "error-db", 0, "FILE", "the error bus's error_system.db" },
    { "auth-users", 0, "FILE", "AuthenticationAgent's users dumped as JSON" },
    { NULL, 0, NULL, NULL },
};

const ctl_command_t ctl_migrate_state_command = {
    .name = "state",
    .operands = "",
    .summary = "import the legacy agents' state into Keel's databases",
    .description =
        "Imports what the legacy agents kept into the databases of the Keel services\n"
        "that absorbed them, under the data directory (--data-dir, KEEL_DATA_DIR, the\n"
        "configuration's data_dir).  Every source is read and checked before anything is\n"
        "written; a record already present is not imported twice.  Refused while a Keel\n"
        "service runs on the data directory.",
    .options = state_options,
    .run = run,
    .local = true,
};
