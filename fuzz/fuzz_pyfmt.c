/*  fuzz_pyfmt: ResourceManager's Python-style formatting of request values
 *  into reply texts (str() of any JSON value a client sent, repr() of
 *  floats).  The input is a JSON value; its first eight bytes are also
 *  read as a double, so every bit pattern (NaN payloads, subnormals,
 *  infinities) reaches the float formatter. */
#include <stdint.h>
#include <string.h>

#include "resource/pyfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[128];
    if (size >= sizeof(double)) {
        double d;
        memcpy(&d, data, sizeof d);
        rs_py_float(d, buf, sizeof buf);
        rs_py_float(d, buf, 8);
    }
    json_t *value = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!value)
        return 0;
    rs_py_str(value, buf, sizeof buf);
    rs_py_str(value, buf, 4);
    rs_py_truthy(value);
    json_decref(value);
    return 0;
}
