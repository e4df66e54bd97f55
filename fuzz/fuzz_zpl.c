/*  fuzz_zpl: the ZPL reader (certificate files) on arbitrary text, for
 *  the paths Keel reads.  A value found must fit the room given and be one
 *  line; a refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *paths[] = { "curve/public-key", "curve/secret-key", "metadata/name", "a" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char value[64], err[256] = "";
        if (zpl_find(text, paths[i], value, sizeof value, err, sizeof err) == 0) {
            if (strlen(value) >= sizeof value || strchr(value, '\n'))
                abort();
        } else if (!*err) {
            abort();
        }
    }
    free(text);
    return 0;
}
