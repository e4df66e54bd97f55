/*  pycompat: answers in the words the original Python agents used.  The
 *  agents built reply texts with f-strings ("Allocated 1.0 gpu", "Unknown
 *  action: None") and decided with Python's truthiness, and their callers
 *  compare those texts and rely on those decisions, so Keel writes values
 *  as Python's str() writes them and tests them as `if value:` does.
 *
 *  Floats use the shortest repr that reads back to the same double, with
 *  ".0" on whole numbers and Python's switch to exponent notation; lists
 *  and dicts print their items with repr(): strings quoted the way Python
 *  quotes them. */
#ifndef KEEL_PYCOMPAT_H
#define KEEL_PYCOMPAT_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* repr(float): "1.0", "0.85", "1e+16", "1.5e-05", "inf", "nan".  Returns buf. */
char *pycompat_float(double value, char *buf, size_t len);
/* str(value) of a decoded JSON value (NULL is None): None, True, 2, 1.0,
 * text as is, [1, 'a'], {'k': None}.  Cut to fit `len`; returns buf. */
char *pycompat_str(json_t *value, char *buf, size_t len);
/* Python truthiness (null, "", 0, 0.0, false, {}, [] are false). */
bool pycompat_truthy(json_t *value);
/* {"status": "error", key: "Unknown action: <str(action)>"} (a new
 * reference), the BaseAgent's answer to an action it does not know; a
 * missing or null action prints as `missing` ("None" for most agents,
 * "" where an agent wrote an empty default). */
json_t *pycompat_unknown_action(json_t *action, const char *key, const char *missing);
#endif
