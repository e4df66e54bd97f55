/*  yamljson: see yamljson.h.  Uses libyaml's document loader and walks the
 *  node graph once; sequences are recorded in the line map as "key[i]". */
#include "yamljson.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static json_t *scalar_to_json(yaml_node_t *node)
{
    const char *text = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(text, len);
    if (len == 0 || strcmp(text, "~") == 0 || strcasecmp(text, "null") == 0)
        return json_null();
    if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0
        || strcasecmp(text, "on") == 0)
        return json_true();
    if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0
        || strcasecmp(text, "off") == 0)
        return json_false();
    char *end;
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (*end == '\0' && errno == 0)
        return json_integer(i);
    errno = 0;
    double d = strtod(text, &end);
    if (*end == '\0' && errno == 0 && isfinite(d) && strpbrk(text, "0123456789"))
        return json_real(d);
    return json_stringn(text, len);
}

static json_t *node_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path,
                            json_t *lines, int depth, char *err, size_t errlen);

static json_t *mapping_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path,
                               json_t *lines, int depth, char *err, size_t errlen)
{
    json_t *obj = json_object();
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(doc, pair->value);
        if (!key || key->type != YAML_SCALAR_NODE || !value) {
            snprintf(err, errlen, "%zu: mapping keys must be plain text",
                     (key ? key->start_mark.line : node->start_mark.line) + 1);
            json_decref(obj);
            return NULL;
        }
        const char *name = (const char *)key->data.scalar.value;
        char child[512];
        snprintf(child, sizeof child, "%s%s%s", path, *path ? "." : "", name);
        if (lines)
            json_object_set_new(lines, child, json_integer(key->start_mark.line + 1));
        json_t *v = node_to_json(doc, value, child, lines, depth + 1, err, errlen);
        if (!v) {
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, name, v);
    }
    return obj;
}

static json_t *sequence_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path,
                                json_t *lines, int depth, char *err, size_t errlen)
{
    json_t *arr = json_array();
    size_t i = 0;
    for (yaml_node_item_t *item = node->data.sequence.items.start;
         item < node->data.sequence.items.top; item++, i++) {
        yaml_node_t *child_node = yaml_document_get_node(doc, *item);
        char child[512];
        snprintf(child, sizeof child, "%s[%zu]", path, i);
        if (lines && child_node)
            json_object_set_new(lines, child, json_integer(child_node->start_mark.line + 1));
        json_t *v = child_node ? node_to_json(doc, child_node, child, lines, depth + 1, err, errlen)
                               : json_null();
        if (!v) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, v);
    }
    return arr;
}

static json_t *node_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path,
                            json_t *lines, int depth, char *err, size_t errlen)
{
    if (depth > 64) {
        snprintf(err, errlen, "%zu: nesting deeper than 64 levels", node->start_mark.line + 1);
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return scalar_to_json(node);
    case YAML_MAPPING_NODE:
        return mapping_to_json(doc, node, path, lines, depth, err, errlen);
    case YAML_SEQUENCE_NODE:
        return sequence_to_json(doc, node, path, lines, depth, err, errlen);
    default:
        snprintf(err, errlen, "%zu: unsupported YAML node", node->start_mark.line + 1);
        return NULL;
    }
}

json_t *yamljson_parse(const char *text, size_t len, json_t **lines_out,
                       char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "0: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%zu: %s", parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    json_t *lines = lines_out ? json_object() : NULL;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    json_t *result = root ? node_to_json(&doc, root, "", lines, 0, err, errlen) : json_object();
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (!result) {
        json_decref(lines);
        return NULL;
    }
    if (lines_out)
        *lines_out = lines;
    return result;
}
