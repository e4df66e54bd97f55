/*  fuzz_wirejson: the wire's JSON reader and writer (src/common/wirejson.c)
 *  against jansson on the same bytes.  Any input: both readers must agree
 *  (both refuse, or equal values whose texts are equal); every value read
 *  must be written by both writers to the same text.  A disagreement
 *  aborts, so the fuzzer keeps it as a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wirejson.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

static void same_text(const json_t *value)
{
    char *theirs = json_dumps(value, FLAGS);
    char *ours = wirejson_dump(value, NULL);
    if ((theirs == NULL) != (ours == NULL) || (theirs && strcmp(theirs, ours) != 0))
        abort();
    free(theirs);
    free(ours);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *theirs = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *ours = wirejson_load((const char *)data, size);
    if ((theirs == NULL) != (ours == NULL) || (theirs && !json_equal(theirs, ours)))
        abort();
    if (theirs) {
        same_text(theirs);
        same_text(ours);
    }
    json_decref(theirs);
    json_decref(ours);
    return 0;
}
