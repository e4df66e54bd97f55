/*  fuzz_config: the configuration loader on arbitrary YAML text.  A fresh
 *  tree per input, since a merge that half-succeeded must still leave a
 *  tree that reads and frees cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    config_t *cfg = config_new();
    char err[512];
    config_load_text(cfg, text, "fuzz", err, sizeof err);
    config_str(cfg, "data_dir", "");
    config_int(cfg, "port_offset", 0);
    config_port(cfg, 7000);
    config_destroy(&cfg);
    free(text);
    return 0;
}
