/*  fuzz_coordinator: CoreOrchestrator's coordinator requests (the `type`
 *  dialect): the per-type validation every request passes before it is
 *  queued, the priority formula over its metadata, and the conversion of a
 *  language_analysis message into a text request.  The input is the
 *  request's JSON; these are the pure parts of the handlers, which
 *  otherwise need the running service. */
#include <stdint.h>
#include <stdlib.h>

#include "core/coordinator.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!body)
        return 0;
    const char *type = json_string_value(json_object_get(body, "type"));
    char buf[512];
    coordinator_validate(type ? type : "", body, buf, sizeof buf);
    coordinator_priority(type ? type : "", json_string_value(json_object_get(body, "user_id")),
                              json_object_get(body, "metadata"), size % 64, 32);
    json_t *text = coordinator_from_language(body);
    if (text) {
        free(json_dumps(text, JSON_COMPACT));
        json_decref(text);
    }
    json_decref(body);
    return 0;
}
