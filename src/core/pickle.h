/*  pickle: a decoder for the safe subset of Python's pickle format (protocols
 *  2 to 5): dicts, lists, tuples (as lists), str, bytes (as text when UTF-8,
 *  else {"base64": "..."}), int, float, bool and None.  StreamingLanguageAnalyzer and
 *  StreamingInterruptHandler publish pickled dicts; unpickling them in
 *  Python ran whatever the sender chose.  Here every opcode that could name
 *  a class or call a function (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST,
 *  OBJ, NEWOBJ, EXT*, PERSID, ...) is refused, so a frame is plain data or
 *  an error. */
#ifndef KEEL_CORE_PICKLE_H
#define KEEL_CORE_PICKLE_H
#include <jansson.h>
#include <stddef.h>

/* The decoded value (a new reference), or NULL with the reason in err. */
json_t *pickle_decode(const void *data, size_t len, char *err, size_t errlen);
#endif
