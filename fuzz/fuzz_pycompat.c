/*  fuzz_pycompat: the Python-compatible answers (src/common/pycompat.c):
 *  str() of any JSON value a client sent, repr() of floats and strings,
 *  truthiness and the unknown-action reply.  The input is a JSON value; its first eight bytes are also
 *  read as a double, so every bit pattern (NaN payloads, subnormals,
 *  infinities) reaches the float formatter. */
#include <stdint.h>
#include <string.h>

#include "pycompat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[128];
    if (size >= sizeof(double)) {
        double d;
        memcpy(&d, data, sizeof d);
        pycompat_float(d, buf, sizeof buf);
        pycompat_float(d, buf, 8);
    }
    json_t *value = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!value)
        return 0;
    pycompat_str(value, buf, sizeof buf);
    pycompat_str(value, buf, 4);
    json_decref(pycompat_unknown_action(value, "error", "None"));
    pycompat_truthy(value);
    json_decref(value);
    return 0;
}
