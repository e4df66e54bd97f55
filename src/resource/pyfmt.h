/*  pyfmt: values written the way Python's str() writes them, because the
 *  original agents built reply messages with f-strings ("Allocated 1.0
 *  gpu", "VRAM threshold critical set to 0.85") and callers compare the
 *  text.  Floats use the shortest repr that reads back to the same double,
 *  with ".0" on whole numbers and Python's switch to exponent notation. */
#ifndef KEEL_RS_PYFMT_H
#define KEEL_RS_PYFMT_H
#include <jansson.h>
#include <stddef.h>

/* repr(float): "1.0", "0.85", "1e+16", "1.5e-05", "inf", "nan". */
char *rs_py_float(double value, char *buf, size_t len);
/* str(value) of a decoded JSON value: None, True, 2, 1.0, text as is. */
char *rs_py_str(json_t *value, char *buf, size_t len);
/* Python truthiness of a JSON value (null, "", 0, 0.0, false, {}, [] are false). */
int rs_py_truthy(json_t *value);
#endif
