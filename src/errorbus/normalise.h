/*  normalise: turning whatever an agent put on the bus into one event
 *  record.  The agents disagree on framing (F1 `ERROR:{json}`, F2
 *  ["ERROR:", json], F3 ["ERROR", json]), on field names (agent, source,
 *  agent_id, error_data.source; error_type, type; details, context) and on
 *  severity words (ERROR, error, high, ErrorSeverity.ERROR); the record
 *  keeps the raw values and adds the canonical ones, so nothing the sender
 *  said is lost and every query can rely on one vocabulary.  Pure functions
 *  with no I/O: the unit test drives every dialect of spec A1.3 through
 *  them. */
#ifndef KEEL_ERRORBUS_NORMALISE_H
#define KEEL_ERRORBUS_NORMALISE_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define NORMALISE_GROUPING_VERSION 1

typedef enum {
    FRAMING_INTERNAL = 0,   /* made by the bus itself (log scan, recovery) */
    FRAMING_F1, FRAMING_F2, FRAMING_F3,
    FRAMING_REQUEST,        /* report_error on the query port */
    FRAMING_NATS,           /* from the NATS bridge */
} framing_t;

/* An event and its strings are one allocation (the pattern apart): read
 * the strings, never free or replace one; event_destroy frees it all. */
typedef struct {
    char *error_id;
    double timestamp;       /* epoch seconds */
    double received;
    char *agent;
    char *error_type;
    char *message;
    char *severity;         /* raw, as sent */
    const char *level;      /* canonical: debug info warning error critical */
    char *context;          /* JSON text: details merged with context */
    char *raw;              /* the payload as received (JSON text) */
    char *pattern;          /* the message stripped for grouping */
    char fingerprint[17];   /* agent + type + pattern */
    char signature[17];     /* type + stripped message: groups across sources */
    framing_t framing;
} event_t;

/* The frames of one ingress message.  On success *body and *body_len point into
 * the frames and *framing says which framing it was; -1 with the reason. */
int normalise_frames(const void *const *frames, const size_t *lens, size_t nframes,
                     const char **body, size_t *body_len, framing_t *framing,
                     char *reason, size_t reason_len);

/* Builds an event from a payload object (borrowed).  `severity_default`
 * is "ERROR" for the bus, "low" for the legacy report_error.  NULL with
 * the reason when the payload is not an object. */
event_t *normalise_payload(json_t *payload, framing_t framing, double received,
                           const char *severity_default, char *reason, size_t reason_len);
/* Parses JSON text and normalises it; NULL with the reason. */
event_t *normalise_text(const char *text, size_t len, framing_t framing, double received,
                        char *reason, size_t reason_len);
void event_destroy(event_t **self_p);

/* The canonical level of a severity word ("ErrorSeverity.WARNING" ->
 * "warning", "high" -> "error"); NULL when the word is not one of the
 * vocabularies. */
const char *normalise_level(const char *severity);
/* Sentry-style message stripping: numbers, hex ids, UUIDs, addresses,
 * URLs and paths become tokens such as <n> and <path>.  Returns a new string. */
char *normalise_strip(const char *message);
/* Fills the event's pattern, fingerprint and signature from its fields. */
void normalise_fingerprint(event_t *event);
/* prefix + a new UUID (version 7: time-ordered, 74 random bits) into buf. */
char *normalise_new_id(const char *prefix, char *buf, size_t len);
/* The event as the normalised JSON record the fan-out and NATS carry
 * (context and raw embedded as JSON); the caller frees it. */
char *event_to_text(const event_t *event, size_t *len_out);
const char *framing_name(framing_t framing);
#endif
