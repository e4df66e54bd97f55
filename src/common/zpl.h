/*  zpl: reads ZPL, the ZeroMQ property language (RFC 4) that CURVE
 *  certificate files are written in, by czmq, pyzmq and Keel alike:
 *
 *      # a comment line
 *      metadata
 *          name = "server"
 *      curve
 *          public-key = "<40 Z85 characters>"
 *
 *  One name per line, indented four spaces per level below its parent, an
 *  optional value after "=", in double or single quotes or bare.  A bare
 *  value runs to a '#' or the end of the line (pyzmq writes metadata
 *  unquoted, spaces and all).  The whole text is checked, so a truncated or
 *  hand-mangled file is refused with the line at fault rather than half
 *  read. */
#ifndef KEEL_ZPL_H
#define KEEL_ZPL_H
#include <stddef.h>

#define ZPL_MAX_DEPTH 16

/* Finds the first value at `path` (names from the top level down, joined
 * by '/': "curve/public-key") in `text` and copies it into `value`; a name
 * without a value has "".  0, or -1 with the reason in `err`: a line that
 * is not ZPL, the path missing, or a value longer than len - 1. */
int zpl_find(const char *text, const char *path, char *value, size_t len, char *err, size_t errlen);
#endif
