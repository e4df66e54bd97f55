/*  fuzz_registry: CoreOrchestrator's AgentRegistration validation (pydantic's
 *  lax rules), the check every register_agent request goes through before
 *  anything is stored.  The input is the request's JSON. */
#include <stdint.h>
#include <stdlib.h>

#include "core/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *fields = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!fields)
        return 0;
    char id[256], err[512];
    json_t *record = registry_validate(fields, id, sizeof id, err, sizeof err);
    if (record) {
        free(json_dumps(record, JSON_COMPACT));
        json_decref(record);
    }
    json_decref(fields);
    return 0;
}
