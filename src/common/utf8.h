/*  utf8: which bytes Keel takes for UTF-8, decided in one place.  The rule
 *  is jansson's (no overlong forms, no surrogates, nothing past U+10FFFF):
 *  the wire checks a whole request by it, jsonscan and wirejson check each
 *  string by it as they read, and a text any of them lets through is one
 *  jansson would have taken too, so both paths of a reader agree. */
#ifndef KEEL_UTF8_H
#define KEEL_UTF8_H
#include <stdbool.h>
#include <stddef.h>

/* The length of the sequence at s (its lead byte >= 0x80; `avail` bytes
 * readable) when it is one character by the rule, else 0. */
size_t utf8_sequence(const unsigned char *s, size_t avail);
/* Whether all `len` bytes at s are characters by the rule. */
bool utf8_valid(const unsigned char *s, size_t len);
#endif
