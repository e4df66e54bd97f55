/*  yamljson: YAML text to a jansson tree, with the source line of every
 *  node recorded, so configuration errors can name a line.  Plain scalars
 *  are typed as YAML 1.1 core does (int, float, true/false/yes/no,
 *  null/~); quoted scalars stay strings.  */
#ifndef KEEL_YAMLJSON_H
#define KEEL_YAMLJSON_H
#include <jansson.h>
#include <stddef.h>

/* Returns the document's root (an empty object for an empty document), or
 * NULL with "LINE: reason" in err.  *lines_out (may be NULL) receives an
 * object mapping dotted key paths to 1-based line numbers. */
json_t *yamljson_parse(const char *text, size_t len, json_t **lines_out,
                       char *err, size_t errlen);
#endif
