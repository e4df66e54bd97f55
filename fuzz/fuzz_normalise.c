/*  fuzz_normalise: the ErrorBus ingress path without sockets.  The input is
 *  split into frames at each 0x1F byte (at most four), framed by
 *  normalise_frames, and the body normalised and written back out as the
 *  record the fan-out carries.  The severity default alternates with the
 *  first byte, covering both the bus and the legacy report_error.  The
 *  ingress reads common payloads without a tree (jsonscan): its event must
 *  be the one jansson's tree gives, or the target aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errorbus/normalise.h"

#define MAX_FRAMES 4

static int same_text(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static int same_context(const char *a, const char *b)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    int same = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

static int same_event(const event_t *a, const event_t *b)
{
    return same_text(a->agent, b->agent) && same_text(a->error_type, b->error_type)
        && same_text(a->message, b->message) && same_text(a->severity, b->severity)
        && same_text(a->level, b->level) && a->timestamp == b->timestamp
        && same_text(a->fingerprint, b->fingerprint) && same_text(a->signature, b->signature)
        && same_context(a->context, b->context);
}

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
    if (event) {
        size_t len;
        free(event_to_text(event, &len));
        event_destroy(&event);
    }
    event_t *tree = payload ? normalise_payload(payload, framing, 1752660000.0, "ERROR", reason,
                                                sizeof reason) : NULL;
    json_decref(payload);
    event = normalise_text(body, body_len, framing, 1752660000.0, reason, sizeof reason);
    if (!event != !tree || (event && !same_event(event, tree)))
        abort();
    event_destroy(&event);
    event_destroy(&tree);
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
