/*  legacyconf: see legacyconf.h. */
#include "legacyconf.h"
#include "fsutil.h"
#include "log.h"
#include "yamljson.h"

#include <stdlib.h>
#include <string.h>

static json_t *substituted(json_t *value)
{
    const char *text = json_string_value(value);
    size_t n = text ? strlen(text) : 0;
    if (n < 4 || strncmp(text, "${", 2) != 0 || text[n - 1] != '}' || memchr(text + 2, '}', n - 3))
        return NULL;
    char name[256];
    if (n - 3 >= sizeof name)
        return NULL;
    memcpy(name, text + 2, n - 3);
    name[n - 3] = '\0';
    const char *env = getenv(name);
    return env ? json_string(env) : NULL;
}

void legacyconf_substitute(json_t *node)
{
    if (json_is_object(node)) {
        const char *key;
        json_t *value;
        json_object_foreach(node, key, value) {
            json_t *fresh = substituted(value);
            if (fresh)
                json_object_set_new(node, key, fresh);
            else
                legacyconf_substitute(value);
        }
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *fresh = substituted(json_array_get(node, i));
            if (fresh)
                json_array_set_new(node, i, fresh);
            else
                legacyconf_substitute(json_array_get(node, i));
        }
    }
}

json_t *legacyconf_load(const char *path)
{
    size_t len;
    char *text = fs_read_all(path, &len);
    if (!text)
        return NULL;
    char err[256];
    json_t *root = yamljson_parse(text, len, NULL, err, sizeof err);
    free(text);
    if (!root) {
        log_warn("errorbus", "%s ignored: %s", path, err);
        return NULL;
    }
    legacyconf_substitute(root);
    log_info("errorbus", "read legacy settings from %s", path);
    return root;
}
