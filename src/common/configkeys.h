/*  configkeys: the one table of every configuration key Keel reads.  Each
 *  key has its dotted name, its type, its default, the values it allows and
 *  one line of meaning.  The loader (config.c) validates every file,
 *  environment variable and flag against it at every depth; the built-in
 *  defaults come from it; keel.yaml(5), the example /etc/keel/keel.yaml and
 *  docs/configuration.md are generated from it (src/cmd/configdoc.c), and a
 *  test fails when they drift, or when the code reads a key the table does
 *  not list.  Adding a key is one line in configkeys.c.
 *
 *  Names: "a.b.c" is a key inside mappings; "*" stands for any one mapping
 *  key (its range, when given, lists the names allowed there); "[]" is an
 *  item of a list of mappings, so "core.agents[].name" is the name of each
 *  supervised agent. */
#ifndef KEEL_CONFIGKEYS_H
#define KEEL_CONFIGKEYS_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    CK_STRING,
    CK_INTEGER,
    CK_NUMBER,          /* an integer is accepted too */
    CK_BOOLEAN,
    CK_PORT,            /* a Keel port: 0..65535, moved by port_offset */
    CK_STRINGS,         /* a list of strings */
    CK_LIST,            /* a list of mappings, their keys named "name[].key" */
    CK_MAPPING,         /* keys named "name.key" or "name.*"; free-form when none are */
} configkey_type_t;

typedef struct {
    const char *name;
    configkey_type_t type;
    /* The default as text ("300", "true", "[]"), or NULL: unset, and the
     * reader works one out (the meaning says how). */
    const char *def;
    /* "lo..hi" for numbers (either end may be left out), "a|b|c" for
     * strings and for the names a "*" may take, or NULL. */
    const char *range;
    const char *meaning;
} configkey_t;

/* Every key, in the order of the documentation; *count gets their number. */
const configkey_t *configkeys_all(size_t *count);
/* The entry named exactly `pattern` ("modules.*.mode"), or NULL. */
const configkey_t *configkeys_find(const char *pattern);
/* The entry for key `name` inside the entry `parent` ("" for the top):
 * the exact child, else the "*" child.  NULL when there is none. */
const configkey_t *configkeys_child(const char *parent, const char *name);
/* Whether any entry lies below `pattern` (a mapping with declared keys). */
bool configkeys_has_children(const char *pattern);
/* "string", "integer", ..., for messages and documentation. */
const char *configkeys_type_name(configkey_type_t type);
/* The default as a JSON value (a new reference), or NULL when unset. */
json_t *configkeys_default(const configkey_t *key);
/* Whether `value` has the key's type (null never does: callers decide). */
bool configkeys_type_fits(const configkey_t *key, json_t *value);
/* Whether `value` (of the right type) lies in the key's range; on false,
 * a reason ("99999 is out of range 0..38533") in why. */
bool configkeys_in_range(const configkey_t *key, json_t *value, char *why, size_t len);
/* Whether a "*" entry allows the mapping key `name`, with the reason
 * (always true for other entries). */
bool configkeys_name_allowed(const configkey_t *key, const char *name, char *why, size_t len);
#endif
