/*  jsonscan: JSON text checked in one pass, and the members of its
 *  top-level object handed out as spans of that text, without building a
 *  tree.  It is for hot paths that read a few fields of a small object and
 *  throw the rest away: on the ErrorBus ingress, jansson's json_loadb and
 *  the tree it built and freed were half of an event's instructions.
 *
 *  It is never more lenient than jansson's json_loadb with JSON_DECODE_ANY
 *  (how Keel parses): the grammar of RFC 8259, UTF-8 checked as jansson
 *  checks it (no overlong forms, no surrogates, nothing past U+10FFFF), no
 *  \u0000, no lone surrogate escapes, integers that fit 64 bits and reals
 *  that do not overflow.  It is stricter in rare cases (nesting deeper than
 *  JSONSCAN_MAX_DEPTH, integers of 19 digits or more, numbers longer than
 *  63 characters), so a caller takes its "no" as "ask jansson", never as
 *  "invalid". */
#ifndef KEEL_JSONSCAN_H
#define KEEL_JSONSCAN_H
#include <stdbool.h>
#include <stddef.h>

#define JSONSCAN_MAX_DEPTH 32

typedef enum {
    JSONSCAN_STRING, JSONSCAN_NUMBER, JSONSCAN_OBJECT, JSONSCAN_ARRAY,
    JSONSCAN_TRUE, JSONSCAN_FALSE, JSONSCAN_NULL,
} jsonscan_type_t;

typedef struct {
    jsonscan_type_t type;
    const char *text;           /* borrowed from the scanned text; a string's without quotes */
    size_t len;
    bool escaped;               /* a string with backslash escapes */
} jsonscan_value_t;

/* Called for each member of the object, in the order of the text. */
typedef void (jsonscan_member_fn)(void *ctx, const jsonscan_value_t *key,
                                  const jsonscan_value_t *value);

/* 0 when text[0, len) is one JSON object (white space around it allowed),
 * each of whose members went to fn; -1 otherwise: not an object, not JSON,
 * or past this scanner (see above).  fn may have been called before a -1,
 * so a caller trusts what it collected only after a 0. */
int jsonscan_object(const char *text, size_t len, jsonscan_member_fn *fn, void *ctx);
/* A number value (as the scan found it: fewer than 64 characters) as
 * jansson reads it: integers through int64, reals as strtod rounds them. */
double jsonscan_number(const jsonscan_value_t *value);
/* A string value decoded into out (value->len + 1 bytes); its length. */
size_t jsonscan_string(const jsonscan_value_t *value, char *out);
/* A value's text without the white space between its tokens, into out
 * (value->len + 1 bytes); its length. */
size_t jsonscan_compact(const jsonscan_value_t *value, char *out);
#endif
