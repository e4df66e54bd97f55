/*  config: see config.h.  Loading is two passes over the parsed YAML:
 *  check() walks it against the key table (configkeys.c) and refuses the
 *  first unknown key, wrong type or value out of range, naming the file,
 *  the line and the dotted key; only a document that passes is merged, so a
 *  refused file changes nothing.  Mappings merge key by key; lists and
 *  scalars replace what was there; null puts a key back to its default
 *  (and leaves a mapping of declared keys as it is, so a file may keep
 *  "core:" with every key below it commented out). */
#include "config.h"
#include "configkeys.h"
#include "fsutil.h"
#include "yamljson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config_t {
    json_t *root;
};

/* Sets `value` (stolen) at the dotted `name`, making the mappings on the way. */
static void set_path(json_t *root, const char *name, json_t *value)
{
    json_t *node = root;
    char part[128];
    const char *p = name;
    const char *dot;
    while ((dot = strchr(p, '.')) != NULL) {
        snprintf(part, sizeof part, "%.*s", (int)(dot - p), p);
        json_t *next = json_object_get(node, part);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(node, part, next);
        }
        node = next;
        p = dot + 1;
    }
    json_object_set_new(node, p, value);
}

config_t *config_new(void)
{
    config_t *self = calloc(1, sizeof *self);
    self->root = json_object();
    size_t n;
    const configkey_t *keys = configkeys_all(&n);
    for (size_t i = 0; i < n; i++) {
        if (strpbrk(keys[i].name, "*[") || !keys[i].def)
            continue;
        set_path(self->root, keys[i].name, configkeys_default(&keys[i]));
    }
    return self;
}

void config_destroy(config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->root);
    free(*self_p);
    *self_p = NULL;
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "mapping";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* Where a key was written, for messages. */
typedef struct {
    json_t *lines;
    const char *origin;
    char *err;
    size_t errlen;
} where_t;

static int refuse(const where_t *w, const char *path, const char *fmt, const char *detail)
{
    json_int_t line = w->lines ? json_integer_value(json_object_get(w->lines, path)) : 0;
    char text[512];
    snprintf(text, sizeof text, fmt, path, detail);
    if (w->origin)
        snprintf(w->err, w->errlen, "%s:%lld: %s", w->origin, (long long)line, text);
    else
        snprintf(w->err, w->errlen, "%s", text);
    return -1;
}

/* Edit distance of two short names, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* " (did you mean 'window_s'?)" when a sibling of `pattern` is close to `name`. */
static void suggestion(const char *pattern, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t n, plen = strlen(pattern), best = 3;
    const configkey_t *keys = configkeys_all(&n);
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i].name;
        if (plen && (strncmp(k, pattern, plen) != 0 || k[plen] != '.'))
            continue;
        const char *leaf = plen ? k + plen + 1 : k;
        if (strpbrk(leaf, ".[*"))
            continue;
        size_t d = distance(leaf, name);
        if (d < best) {
            best = d;
            snprintf(buf, len, " (did you mean '%s'?)", leaf);
        }
    }
}

/* Keys that went away with what they configured, and where that lives now:
 * an old file is refused with the way forward rather than "unknown key". */
static const struct { const char *pattern, *now; } gone[] = {
    { "observability.agents[].command", "core.agents[].command" },
    { "observability.agents[].args", "core.agents[].args" },
    { "observability.stop_grace_s", "core.supervisor.stop_grace_s" },
    { "observability.spawn_retry_s", "core.supervisor.backoff_base_s" },
};

static int refuse_gone(const char *pattern, const char *name, const char *path, const where_t *w)
{
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        size_t plen = strlen(pattern);
        if (strncmp(gone[i].pattern, pattern, plen) || strcmp(gone[i].pattern + plen + !!plen, name))
            continue;
        char now[256];
        snprintf(now, sizeof now, "%s (ObservabilityHub no longer runs processes: CoreOrchestrator runs every"
                 " agent Keel starts; list the agent under core.agents, dependencies as depends_on)", gone[i].now);
        return refuse(w, path, "key '%s' has moved to %s", now);
    }
    return 0;
}

static int check_mapping(json_t *obj, const char *pattern, const char *path, const where_t *w);

/* One value against its entry: type, range, then what it contains. */
static int check_value(const configkey_t *key, json_t *value, const char *path, const where_t *w)
{
    char why[256];
    if (json_is_null(value))
        return 0;
    if (!configkeys_type_fits(key, value)) {
        snprintf(why, sizeof why, "expected %s, got %s", configkeys_type_name(key->type),
                 type_name(value));
        return refuse(w, path, "key '%s': %s", why);
    }
    if (!configkeys_in_range(key, value, why, sizeof why))
        return refuse(w, path, "key '%s': %s", why);
    if (key->type == CK_MAPPING && configkeys_has_children(key->name))
        return check_mapping(value, key->name, path, w);
    if (key->type != CK_LIST)
        return 0;
    char items[160];
    snprintf(items, sizeof items, "%s[]", key->name);
    bool declared = configkeys_has_children(items);
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item) {
        char child[600];
        snprintf(child, sizeof child, "%s[%zu]", path, i);
        if (!json_is_object(item)) {
            snprintf(why, sizeof why, "expected mapping, got %s", type_name(item));
            return refuse(w, child, "key '%s': %s", why);
        }
        if (declared && check_mapping(item, items, child, w) < 0)
            return -1;
    }
    return 0;
}

static int check_mapping(json_t *obj, const char *pattern, const char *path, const where_t *w)
{
    const char *name;
    json_t *value;
    json_object_foreach(obj, name, value) {
        char child[512];
        snprintf(child, sizeof child, "%s%s%s", path, *path ? "." : "", name);
        const configkey_t *key = configkeys_child(pattern, name);
        if (!key && refuse_gone(pattern, name, child, w) < 0)
            return -1;
        if (!key) {
            char hint[96];
            suggestion(pattern, name, hint, sizeof hint);
            return refuse(w, child, "unknown key '%s'%s", hint);
        }
        char why[512];
        if (!configkeys_name_allowed(key, name, why, sizeof why))
            return refuse(w, child, "key '%s': %s", why);
        if (check_value(key, value, child, w) < 0)
            return -1;
    }
    return 0;
}

/* Keel's own ports must stay ports once port_offset moves them. */
static int check_ports(config_t *self, const where_t *w)
{
    long offset = config_int(self, "port_offset", 0);
    size_t n;
    const configkey_t *keys = configkeys_all(&n);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].type != CK_PORT || strpbrk(keys[i].name, "*["))
            continue;
        long port = config_int(self, keys[i].name, 0);
        if (port > 0 && port + offset > 65535) {
            char why[128];
            snprintf(why, sizeof why, "%ld + port_offset %ld is above 65535", port, offset);
            return refuse(w, keys[i].name, "key '%s': %s", why);
        }
    }
    return 0;
}

/* Merges a checked mapping into base. */
static void merge(json_t *base, json_t *over, const char *pattern)
{
    const char *name;
    json_t *value;
    json_object_foreach(over, name, value) {
        const configkey_t *key = configkeys_child(pattern, name);
        bool structured = key->type == CK_MAPPING && configkeys_has_children(key->name);
        if (json_is_null(value) && structured) {
            continue;           /* "core:" with every key below commented out */
        } else if (json_is_null(value)) {
            json_t *def = configkeys_default(key);
            if (def)
                json_object_set_new(base, name, def);
            else
                json_object_del(base, name);
        } else if (structured) {
            json_t *inner = json_object_get(base, name);
            if (!json_is_object(inner)) {
                inner = json_object();
                json_object_set_new(base, name, inner);
            }
            merge(inner, value, key->name);
        } else {
            json_object_set(base, name, value);
        }
    }
}

int config_load_text(config_t *self, const char *text, const char *origin,
                     char *err, size_t errlen)
{
    json_t *lines = NULL;
    char perr[256];
    json_t *tree = yamljson_parse(text, strlen(text), &lines, perr, sizeof perr);
    if (!tree) {
        snprintf(err, errlen, "%s:%s", origin, perr);
        return -1;
    }
    where_t w = { lines, origin, err, errlen };
    int rc = 0;
    if (!json_is_object(tree)) {
        snprintf(err, errlen, "%s:1: the document must be a mapping of keys", origin);
        rc = -1;
    } else if (check_mapping(tree, "", "", &w) < 0) {
        rc = -1;
    } else {
        json_t *before = json_deep_copy(self->root);
        merge(self->root, tree, "");
        rc = check_ports(self, &w);
        if (rc < 0) {
            json_decref(self->root);
            self->root = before;
        } else {
            json_decref(before);
        }
    }
    json_decref(tree);
    json_decref(lines);
    return rc;
}

int config_load_file(config_t *self, const char *path, char *err, size_t errlen)
{
    char *text = fs_read_all(path, NULL);
    if (!text) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = config_load_text(self, text, path, err, errlen);
    free(text);
    return rc;
}

/* Finds the parent object and the last key name of a dotted path. */
static json_t *parent_of(json_t *root, const char *key, char *last, size_t lastlen)
{
    json_t *node = root;
    const char *p = key;
    const char *dot;
    while ((dot = strchr(p, '.')) != NULL) {
        char part[128];
        size_t n = (size_t)(dot - p);
        if (n >= sizeof part)
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        node = json_object_get(node, part);
        if (!json_is_object(node))
            return NULL;
        p = dot + 1;
    }
    snprintf(last, lastlen, "%s", p);
    return node;
}

json_t *config_get(config_t *self, const char *key)
{
    char last[128];
    json_t *parent = parent_of(self->root, key, last, sizeof last);
    return parent ? json_object_get(parent, last) : NULL;
}

/* The table entry of a concrete dotted key ("modules.ServiceRegistry.mode"). */
static const configkey_t *entry_of(const char *key)
{
    char pattern[256] = "", part[128];
    const configkey_t *entry = NULL;
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part)
            return NULL;
        snprintf(part, sizeof part, "%.*s", (int)n, p);
        entry = configkeys_child(pattern, part);
        if (!entry || !configkeys_name_allowed(entry, part, NULL, 0))
            return NULL;
        snprintf(pattern, sizeof pattern, "%s", entry->name);
        if (!dot)
            return entry;
        p = dot + 1;
    }
}

static json_t *parse_text(const configkey_t *key, const char *text)
{
    char *end;
    switch (key->type) {
    case CK_INTEGER:
    case CK_PORT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        return (*text && *end == '\0' && errno == 0) ? json_integer(v) : NULL;
    }
    case CK_NUMBER: {
        double v = strtod(text, &end);
        return (*text && *end == '\0') ? json_real(v) : NULL;
    }
    case CK_BOOLEAN:
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes"))
            return json_true();
        if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") || !*text)
            return json_false();
        return NULL;
    case CK_STRING:
        return json_string(text);
    default:
        return NULL;
    }
}

int config_set(config_t *self, const char *key, const char *text, char *err, size_t errlen)
{
    const configkey_t *entry = entry_of(key);
    if (!entry) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    json_t *value = parse_text(entry, text);
    char why[256];
    if (!value) {
        snprintf(err, errlen, "key '%s': expected %s, got '%s'", key,
                 configkeys_type_name(entry->type), text);
        return -1;
    }
    if (!configkeys_in_range(entry, value, why, sizeof why)) {
        snprintf(err, errlen, "key '%s': %s", key, why);
        json_decref(value);
        return -1;
    }
    json_t *before = json_deep_copy(self->root);
    set_path(self->root, key, value);
    where_t w = { NULL, NULL, err, errlen };
    if (check_ports(self, &w) < 0) {
        json_decref(self->root);
        self->root = before;
        return -1;
    }
    json_decref(before);
    return 0;
}

int config_apply_env(config_t *self, char *err, size_t errlen)
{
    static const struct { const char *env, *key; } map[] = {
        { "PORT_OFFSET", "port_offset" },
        { "KEEL_DATA_DIR", "data_dir" },
        { "KEEL_BIND", "bind" },
        { "SECURE_ZMQ", "secure_zmq" },
        { "KEEL_LOG_LEVEL", "log_level" },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *text = getenv(map[i].env);
        if (!text)
            continue;
        char inner[256];
        if (config_set(self, map[i].key, text, inner, sizeof inner) < 0) {
            snprintf(err, errlen, "environment %s: %s", map[i].env, inner);
            return -1;
        }
    }
    return 0;
}

const char *config_str(config_t *self, const char *key, const char *fallback)
{
    json_t *v = config_get(self, key);
    return json_is_string(v) ? json_string_value(v) : fallback;
}

long config_int(config_t *self, const char *key, long fallback)
{
    json_t *v = config_get(self, key);
    return json_is_number(v) ? (long)json_number_value(v) : fallback;
}

double config_double(config_t *self, const char *key, double fallback)
{
    json_t *v = config_get(self, key);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

bool config_bool(config_t *self, const char *key, bool fallback)
{
    json_t *v = config_get(self, key);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

int config_port(config_t *self, int base)
{
    return base + (int)config_int(self, "port_offset", 0);
}

void config_local_endpoint(config_t *self, int base, char *buf, size_t len)
{
    const char *bind = config_str(self, "bind", "127.0.0.1");
    if (!strcmp(bind, "0.0.0.0") || !strcmp(bind, "*"))
        bind = "127.0.0.1";
    snprintf(buf, len, "tcp://%s:%d", bind, config_port(self, base));
}
