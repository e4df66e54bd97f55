/*  fuzz_normalise: the ErrorBus ingress path without sockets.  The input is
 *  split into frames at each 0x1F byte (at most four), framed by
 *  normalise_frames, and the body normalised and written back out as the
 *  record the fan-out carries.  The severity default alternates with the
 *  first byte, covering both the bus and the legacy report_error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errorbus/normalise.h"

#define MAX_FRAMES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const void *frames[MAX_FRAMES];
    size_t lens[MAX_FRAMES];
    size_t nframes = 0, start = 0;
    for (size_t i = 0; i <= size && nframes < MAX_FRAMES; i++) {
        if (i == size || data[i] == 0x1F) {
            frames[nframes] = data + start;
            lens[nframes++] = i - start;
            start = i + 1;
        }
    }
    const char *body;
    size_t body_len;
    framing_t framing;
    char reason[256];
    if (normalise_frames(frames, lens, nframes, &body, &body_len, &framing, reason,
                         sizeof reason) != 0) {
        framing = FRAMING_REQUEST;
        body = (const char *)data;
        body_len = size;
    }
    const char *severity = size && (data[0] & 1) ? "low" : "ERROR";
    json_error_t jerr;
    json_t *payload = json_loadb(body, body_len, JSON_DECODE_ANY, &jerr);
    event_t *event = payload ? normalise_payload(payload, framing, 1752660000.0, severity,
                                                 reason, sizeof reason) : NULL;
    json_decref(payload);
    if (event) {
        size_t len;
        free(event_to_text(event, &len));
        event_destroy(&event);
    }
    event = normalise_text(body, body_len, framing, 1752660000.0, reason, sizeof reason);
    event_destroy(&event);
    char *stripped = malloc(body_len + 1);
    if (stripped) {
        memcpy(stripped, body, body_len);
        stripped[body_len] = '\0';
        normalise_level(stripped);
        free(normalise_strip(stripped));
        free(stripped);
    }
    return 0;
}
