/*  wirejson: how the wire reads a request frame and writes a reply, in a
 *  fraction of the instructions jansson's own json_loadb and json_dumps
 *  take, and with exactly their results.
 *
 *  Why: profiled under callgrind, a request's JSON cost more than the work
 *  it asked for.  json_dumps checks every object and array for cycles by
 *  printing its address into a hash table, formats each integer with
 *  snprintf and writes through a callback a few bytes at a time; json_loadb
 *  reads one character at a time through a stream with its own UTF-8
 *  decoder.  Together they were half of a ping and a third of a lookup.
 *
 *  Exactly their results, because agents parse the text and tests compare
 *  it: the writer emits what json_dumps(value, JSON_COMPACT |
 *  JSON_ENCODE_ANY) emits byte for byte (keys in insertion order, reals as
 *  "%.17g" with ".0" on whole numbers: 0.84999999999999998 where Python
 *  writes 0.85, but it parses back to the identical double, which fewer
 *  digits do not guarantee; the same escapes, the same refusal
 *  of a string that is not UTF-8; a key that is not UTF-8, which jansson
 *  writes as a broken text, it refuses too).  The reader decides only what
 *  it is sure of: well-formed input of the shapes requests have (objects,
 *  arrays, strings with the short escapes, integers, reals, literals).
 *  Anything else (a \u escape, an integer of 19 digits or more, deep
 *  nesting, and every malformed frame) it hands to json_loadb, so the
 *  value, or the refusal, is always jansson's.  tests/unit/test_wirejson.c
 *  and fuzz/fuzz_wirejson.c check both against jansson. */
#ifndef KEEL_WIREJSON_H
#define KEEL_WIREJSON_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A growing text buffer, for replies written in pieces. */
typedef struct {
    char *data;         /* malloc'd, NUL-terminated while !failed */
    size_t len, cap;
    bool failed;        /* out of memory, or a value json_dumps refuses */
} wirejson_buf_t;

/* Makes room for n more bytes at once (a reply of known size). */
void wirejson_buf_reserve(wirejson_buf_t *buf, size_t n);
/* Appends n bytes as they are. */
void wirejson_buf_raw(wirejson_buf_t *buf, const char *text, size_t n);
/* Appends a JSON string of n bytes of UTF-8, quoted and escaped. */
void wirejson_buf_string(wirejson_buf_t *buf, const char *text, size_t n);
/* Appends a value (borrowed) as json_dumps would write it. */
void wirejson_buf_value(wirejson_buf_t *buf, const json_t *value);
/* Appends a real as json_dumps would write it. */
void wirejson_buf_real(wirejson_buf_t *buf, double value);
/* Appends an integer. */
void wirejson_buf_integer(wirejson_buf_t *buf, long long value);
/* The text (the caller frees it), or NULL (and nothing to free) when
 * anything appended failed; *len its length when len is not NULL. */
char *wirejson_buf_finish(wirejson_buf_t *buf, size_t *len);

/* json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY): the text (caller
 * frees), or NULL where json_dumps returns NULL. */
char *wirejson_dump(const json_t *value, size_t *len);
/* json_loadb(text, len, JSON_DECODE_ANY, ...): a new reference, or NULL
 * where json_loadb fails. */
json_t *wirejson_load(const char *text, size_t len);
#endif
