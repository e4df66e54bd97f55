/*  config: see config.h.  The defaults are written as JSON text below, so
 *  the set of known keys and their types live in one place; a key whose
 *  default is null or an empty list/object accepts any value of that kind
 *  (lists of agents, module maps). */
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "yamljson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *defaults_json =
    "{"
    "\"bind\": \"127.0.0.1\","
    "\"port_offset\": 0,"
    "\"data_dir\": \"./var/keel\","
    "\"log_level\": \"info\","
    "\"legacy_ports\": false,"
    "\"metrics_source\": \"real\","
    "\"error_bus_endpoint\": \"\","
    "\"secure_zmq\": false,"
    "\"certificates_dir\": \"./certificates\","
    "\"max_request_bytes\": 1048576,"
    "\"core\": {"
    "  \"registry\": {\"backend\": \"sqlite\", \"redis_url\": \"redis://127.0.0.1:6379/0\","
    "                \"prefix\": \"service_registry:\", \"ttl_s\": 300.0},"
    "  \"prometheus_url\": \"\","
    "  \"agents\": []"
    "},"
    "\"resource\": {"
    "  \"model_manager_endpoint\": \"tcp://127.0.0.1:5570\","
    "  \"thresholds\": {\"cpu\": 80.0, \"memory\": 80.0, \"gpu\": 80.0}"
    "},"
    "\"observability\": {\"agents\": [], \"interval_s\": 2.0},"
    "\"errorbus\": {\"nats_url\": \"\", \"retention_days\": 30},"
    "\"security\": {"
    "  \"allow_registration\": false,"
    "  \"lockout\": {\"failures\": 5, \"window_s\": 900, \"base_lock_s\": 60}"
    "},"
    "\"modules\": {}"
    "}";

struct config_t {
    json_t *root;
};

config_t *config_new(void)
{
    config_t *self = calloc(1, sizeof *self);
    json_error_t jerr;
    self->root = json_loads(defaults_json, 0, &jerr);
    if (!self->root) {
        log_error("config", "built-in defaults do not parse: %s", jerr.text);
        free(self);
        return NULL;
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

/* May `value` replace `def`?  Integers may stand for numbers; an empty
 * default container or null default accepts anything. */
static bool type_fits(json_t *def, json_t *value)
{
    if (json_is_null(def))
        return true;
    if (json_is_object(def) && json_object_size(def) == 0)
        return json_is_object(value);
    if (json_is_real(def))
        return json_is_number(value);
    if (json_is_boolean(def))
        return json_is_boolean(value);
    return json_typeof(def) == json_typeof(value);
}

static int merge(json_t *base, json_t *over, const char *path, json_t *lines,
                 const char *origin, bool top, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    json_object_foreach(over, key, value) {
        char child[512];
        snprintf(child, sizeof child, "%s%s%s", path, *path ? "." : "", key);
        json_int_t line = lines ? json_integer_value(json_object_get(lines, child)) : 0;
        json_t *def = json_object_get(base, key);
        if (!def) {
            if (top) {
                snprintf(err, errlen, "%s:%lld: unknown key '%s'", origin, (long long)line, child);
                return -1;
            }
            /* Services read many keys beyond the defaults here, each with
             * its own fallback: only a top-level stranger is an error. */
            log_debug("config", "%s:%lld: key '%s' has no built-in default; kept as given",
                      origin, (long long)line, child);
            json_object_set(base, key, value);
            continue;
        }
        if (!type_fits(def, value)) {
            snprintf(err, errlen, "%s:%lld: key '%s': expected %s, got %s", origin,
                     (long long)line, child, type_name(def), type_name(value));
            return -1;
        }
        if (json_is_object(def) && json_object_size(def) > 0) {
            if (merge(def, value, child, lines, origin, false, err, errlen) < 0)
                return -1;
        } else {
            json_object_set(base, key, value);
        }
    }
    return 0;
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
    int rc = 0;
    if (!json_is_object(tree)) {
        snprintf(err, errlen, "%s:1: the document must be a mapping of keys", origin);
        rc = -1;
    } else {
        rc = merge(self->root, tree, "", lines, origin, true, err, errlen);
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

static json_t *parse_flag_value(json_t *def, const char *text)
{
    char *end;
    if (json_is_integer(def)) {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        return (*text && *end == '\0' && errno == 0) ? json_integer(v) : NULL;
    }
    if (json_is_real(def)) {
        double v = strtod(text, &end);
        return (*text && *end == '\0') ? json_real(v) : NULL;
    }
    if (json_is_boolean(def)) {
        if (!strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes"))
            return json_true();
        if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no") || !*text)
            return json_false();
        return NULL;
    }
    if (json_is_string(def) || json_is_null(def))
        return json_string(text);
    return NULL;
}

int config_set(config_t *self, const char *key, const char *text, char *err, size_t errlen)
{
    char last[128];
    json_t *parent = parent_of(self->root, key, last, sizeof last);
    json_t *def = parent ? json_object_get(parent, last) : NULL;
    if (!def) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    json_t *value = parse_flag_value(def, text);
    if (!value) {
        snprintf(err, errlen, "key '%s': expected %s, got '%s'", key, type_name(def), text);
        return -1;
    }
    json_object_set_new(parent, last, value);
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
