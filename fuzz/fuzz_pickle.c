/*  fuzz_pickle: the safe-subset pickle decoder that replaced unpickling
 *  the analyzers' frames.  Whatever it accepts must encode as JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *value = pickle_decode(data, size, err, sizeof err);
    if (value) {
        char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
        free(text);
        json_decref(value);
    }
    return 0;
}
