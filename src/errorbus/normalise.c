/*  normalise: see normalise.h.
 *
 *  Field resolution follows the order of spec A1.3 exactly (agent, source,
 *  agent_id, error_data.source; ...), so an event from any producer family
 *  lands in the same columns.  A field of the wrong type is not a reason to
 *  lose the event: a number or an object where a string was expected is
 *  kept as its JSON text.  Only a payload that is not a JSON object at all
 *  is refused, and the caller quarantines it.
 *
 *  Stripping for fingerprints works on tokens at word boundaries, so
 *  "agent7" keeps its digit while "retry 3" becomes "retry <n>": the
 *  number inside a name is identity, a number standing alone is data.  The
 *  grouping version is stored with every event, so a later change to these
 *  rules can regroup old events instead of silently mixing two schemes. */
#include "normalise.h"
#include "clock.h"
#include "jsonscan.h"

#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

const char *framing_name(framing_t framing)
{
    static const char *names[] = { "internal", "F1", "F2", "F3", "request", "nats" };
    return framing <= FRAMING_NATS ? names[framing] : "unknown";
}

int normalise_frames(const void *const *frames, const size_t *lens, size_t nframes,
                     const char **body, size_t *body_len, framing_t *framing,
                     char *reason, size_t reason_len)
{
    if (nframes == 1) {
        if (lens[0] < 6 || memcmp(frames[0], "ERROR:", 6) != 0) {
            snprintf(reason, reason_len, "single frame without the ERROR: prefix");
            return -1;
        }
        *body = (const char *)frames[0] + 6;
        *body_len = lens[0] - 6;
        *framing = FRAMING_F1;
        return 0;
    }
    if (nframes == 2) {
        if (lens[0] == 6 && memcmp(frames[0], "ERROR:", 6) == 0)
            *framing = FRAMING_F2;
        else if (lens[0] == 5 && memcmp(frames[0], "ERROR", 5) == 0)
            *framing = FRAMING_F3;
        else {
            snprintf(reason, reason_len, "topic frame is neither ERROR: nor ERROR");
            return -1;
        }
        *body = frames[1];
        *body_len = lens[1];
        return 0;
    }
    snprintf(reason, reason_len, "%zu frames (expected 1 or 2)", nframes);
    return -1;
}

/* ---- field resolution ------------------------------------------------- */

/* The text of a value: strings as they are, other non-null values as JSON. */
static char *value_text(json_t *value)
{
    if (!value || json_is_null(value))
        return NULL;
    if (json_is_string(value))
        return strndup(json_string_value(value), json_string_length(value));
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

static json_t *error_data_get(json_t *payload, const char *key)
{
    return json_object_get(json_object_get(payload, "error_data"), key);
}

static char *first_text(json_t *a, json_t *b, json_t *c, json_t *d, const char *fallback)
{
    json_t *candidates[] = { a, b, c, d };
    for (size_t i = 0; i < 4; i++) {
        char *text = value_text(candidates[i]);
        if (text)
            return text;
    }
    return strdup(fallback);
}

/* A timestamp sent as a string: ISO 8601, or epoch seconds as text. */
static double timestamp_of_text(const char *text, double received)
{
    double t;
    if (clock_parse_iso(text, &t) == 0)
        return t;
    char *end;
    t = strtod(text, &end);
    return end != text && *end == '\0' && isfinite(t) ? t : received;
}

static double resolve_timestamp(json_t *value, double received)
{
    if (json_is_number(value)) {
        double t = json_number_value(value);
        return isfinite(t) ? t : received;
    }
    return json_is_string(value) ? timestamp_of_text(json_string_value(value), received) : received;
}

/* details merged with context (objects), else error_data.details; a
 * non-object value is kept under its own key rather than dropped. */
static char *resolve_context(json_t *payload)
{
    json_t *details = json_object_get(payload, "details");
    json_t *context = json_object_get(payload, "context");
    /* the common shapes first, without building a merged copy */
    if (!context && !json_object_get(payload, "error_data")) {
        if (!details)
            return strdup("{}");
        if (json_is_object(details))
            return json_dumps(details, JSON_COMPACT);
    }
    json_t *merged = json_object();
    static const char *keys[] = { "details", "context" };
    for (size_t i = 0; i < 2; i++) {
        json_t *value = json_object_get(payload, keys[i]);
        if (json_is_object(value))
            json_object_update(merged, value);
        else if (value && !json_is_null(value))
            json_object_set(merged, keys[i], value);
    }
    json_t *nested = json_object_get(json_object_get(payload, "error_data"), "details");
    if (json_object_size(merged) == 0 && json_is_object(nested))
        json_object_update(merged, nested);
    char *text = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    return text;
}

const char *normalise_level(const char *severity)
{
    static const struct { const char *word, *level; } table[] = {
        { "debug", "debug" }, { "info", "info" }, { "low", "info" },
        { "warning", "warning" }, { "warn", "warning" }, { "medium", "warning" },
        { "error", "error" }, { "high", "error" },
        { "critical", "critical" }, { "fatal", "critical" },
    };
    if (!severity)
        return NULL;
    if (strncasecmp(severity, "ErrorSeverity.", 14) == 0)
        severity += 14;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(severity, table[i].word) == 0)
            return table[i].level;
    return NULL;
}

char *normalise_new_id(const char *prefix, char *buf, size_t len)
{
    static __thread unsigned char pool[4096];
    static __thread size_t used = sizeof pool;
    if (used + 16 > sizeof pool) {
        size_t got = 0;
        while (got < sizeof pool) {
            ssize_t n = getrandom(pool + got, sizeof pool - got, 0);
            if (n > 0)
                got += (size_t)n;
        }
        used = 0;
    }
    unsigned char *b = pool + used;
    used += 16;
    /* UUID version 7: the first 48 bits are the time in milliseconds, so
     * ids made one after another sort together and the unique index on
     * error_id grows at its end instead of at random pages. */
    uint64_t ms = (uint64_t)(clock_wall() * 1000.0);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t plen = strlen(prefix);
    if (len < plen + 37) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    char *o = buf + plen;
    memcpy(buf, prefix, plen);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
    return buf;
}

/* The fields of an event in the order assemble() places them: each a
 * string value to decode or, for details read by jsonscan, a JSON value to
 * compact. */
enum { FIELD_AGENT, FIELD_TYPE, FIELD_MESSAGE, FIELD_SEVERITY, FIELD_CONTEXT, FIELD_RAW,
       FIELD_ID, NFIELDS };

/* A text taken as it is. */
static jsonscan_value_t verbatim(const char *text)
{
    return (jsonscan_value_t){ JSONSCAN_STRING, text, strlen(text), false };
}

/* An event whose strings share its allocation (the pattern apart).  The
 * ingress makes events, the writer and the fan-out free them on other
 * threads, and glibc frees another thread's memory under that thread's
 * arena lock: one block is one malloc and one such free instead of eight.
 * An empty error_id becomes a new one. */
static event_t *assemble(jsonscan_value_t *fields, framing_t framing, double received,
                         double timestamp)
{
    char id[64];
    if (fields[FIELD_ID].len == 0)
        fields[FIELD_ID] = verbatim(normalise_new_id("err-", id, sizeof id));
    size_t size = sizeof(event_t);
    for (int i = 0; i < NFIELDS; i++)
        size += fields[i].len + 1;
    event_t *e = malloc(size);
    *e = (event_t){ .framing = framing };
    char **slots[NFIELDS] = { &e->agent, &e->error_type, &e->message, &e->severity,
                              &e->context, &e->raw, &e->error_id };
    char *next = (char *)(e + 1);
    for (int i = 0; i < NFIELDS; i++) {
        *slots[i] = next;
        next += 1 + (fields[i].type == JSONSCAN_STRING ? jsonscan_string(&fields[i], next)
                                                       : jsonscan_compact(&fields[i], next));
    }
    e->received = received;
    e->timestamp = timestamp;
    e->level = normalise_level(e->severity);
    if (!e->level)
        e->level = "error";
    normalise_fingerprint(e);
    return e;
}

static event_t *build(json_t *payload, const char *raw, size_t raw_len, framing_t framing,
                      double received, const char *severity_default)
{
    json_t *nested = json_object_get(json_object_get(payload, "error_data"), "details");
    char *texts[] = {
        first_text(json_object_get(payload, "agent"), json_object_get(payload, "source"),
                   json_object_get(payload, "agent_id"), error_data_get(payload, "source"),
                   "unknown"),
        first_text(json_object_get(payload, "error_type"), json_object_get(payload, "type"),
                   error_data_get(payload, "error_type"), NULL, "unknown"),
        first_text(json_object_get(payload, "message"), json_object_get(payload, "reason"),
                   json_object_get(nested, "description"), NULL, ""),
        first_text(json_object_get(payload, "severity"), error_data_get(payload, "severity"),
                   NULL, NULL, severity_default),
        resolve_context(payload),
        raw ? strndup(raw, raw_len) : json_dumps(payload, JSON_COMPACT),
    };
    json_t *id = json_object_get(payload, "error_id");
    if (!json_is_string(id) || !*json_string_value(id))
        id = error_data_get(payload, "error_id");
    jsonscan_value_t fields[NFIELDS];
    for (int i = 0; i < FIELD_ID; i++)
        fields[i] = verbatim(texts[i]);
    fields[FIELD_ID] = verbatim(json_is_string(id) ? json_string_value(id) : "");
    event_t *e = assemble(fields, framing, received,
                          resolve_timestamp(json_object_get(payload, "timestamp"), received));
    for (int i = 0; i < FIELD_ID; i++)
        free(texts[i]);
    return e;
}

/* ---- the common payloads, read without a tree ------------------------- */

/* The members build() reads, as spans of the text (text NULL: absent); a
 * repeated key keeps its last value, as jansson does. */
typedef struct {
    jsonscan_value_t agent, source, agent_id, error_type, type, message, reason, severity,
        timestamp, details, error_id;
    bool merges;                /* error_data or context: objects to merge, left to build() */
} members_t;

static void collect_member(void *ctx, const jsonscan_value_t *key, const jsonscan_value_t *value)
{
#define WANTED(name) { #name, sizeof #name - 1, offsetof(members_t, name) }
    static const struct {
        const char *name;
        size_t len, at;
    } wanted[] = {
        WANTED(agent), WANTED(source), WANTED(agent_id), WANTED(error_type), WANTED(type),
        WANTED(message), WANTED(reason), WANTED(severity), WANTED(timestamp), WANTED(details),
        WANTED(error_id),
    };
#undef WANTED
    members_t *m = ctx;
    /* an escape is at most six bytes for one: longer keys are none of ours */
    char name[72];
    if (key->len >= sizeof name)
        return;
    const char *at = key->text;
    size_t n = key->len;
    if (key->escaped) {
        n = jsonscan_string(key, name);
        at = name;
    }
    if ((n == 10 && !memcmp(at, "error_data", 10)) || (n == 7 && !memcmp(at, "context", 7))) {
        m->merges = true;
        return;
    }
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        if (wanted[i].len == n && !memcmp(wanted[i].name, at, n)) {
            *(jsonscan_value_t *)((char *)m + wanted[i].at) = *value;
            return;
        }
}

/* The first of the candidates that is present and not null, as
 * first_text() takes it, into *out (the fallback when there is none); -1
 * when that one is not a string, whose text is then jansson's rendering. */
static int first_string(const jsonscan_value_t *const *candidates, size_t n, const char *fallback,
                        jsonscan_value_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const jsonscan_value_t *v = candidates[i];
        if (!v->text || v->type == JSONSCAN_NULL)
            continue;
        if (v->type != JSONSCAN_STRING)
            return -1;
        *out = *v;
        return 0;
    }
    *out = verbatim(fallback);
    return 0;
}

static double scanned_timestamp(const jsonscan_value_t *v, double received)
{
    char text[64];
    if (!v->text || v->len >= sizeof text
        || (v->type != JSONSCAN_NUMBER && v->type != JSONSCAN_STRING))
        return received;
    if (v->type == JSONSCAN_NUMBER)
        return jsonscan_number(v);     /* finite: the scan refused what overflows */
    jsonscan_string(v, text);
    return timestamp_of_text(text, received);
}

/* build() for a payload jsonscan read; NULL for the shapes it leaves to
 * build(): merged objects, fields that are not strings, details that are
 * not an object, timestamps in strings too long to be one. */
static event_t *build_scanned(const members_t *m, const char *raw, size_t raw_len,
                              framing_t framing, double received)
{
    const jsonscan_value_t *d = &m->details, *ts = &m->timestamp;
    if (m->merges || (d->text && d->type != JSONSCAN_OBJECT)
        || (ts->type == JSONSCAN_STRING && ts->text && ts->len >= 64))
        return NULL;
    const jsonscan_value_t *agent[] = { &m->agent, &m->source, &m->agent_id };
    const jsonscan_value_t *type[] = { &m->error_type, &m->type };
    const jsonscan_value_t *message[] = { &m->message, &m->reason };
    const jsonscan_value_t *severity[] = { &m->severity };
    jsonscan_value_t fields[NFIELDS];
    if (first_string(agent, 3, "unknown", &fields[FIELD_AGENT]) < 0
        || first_string(type, 2, "unknown", &fields[FIELD_TYPE]) < 0
        || first_string(message, 2, "", &fields[FIELD_MESSAGE]) < 0
        || first_string(severity, 1, "ERROR", &fields[FIELD_SEVERITY]) < 0)
        return NULL;
    fields[FIELD_CONTEXT] = d->text ? *d : verbatim("{}");
    fields[FIELD_RAW] = (jsonscan_value_t){ JSONSCAN_STRING, raw, raw_len, false };
    fields[FIELD_ID] = m->error_id.text && m->error_id.type == JSONSCAN_STRING ? m->error_id
                                                                              : verbatim("");
    return assemble(fields, framing, received, scanned_timestamp(ts, received));
}

event_t *normalise_payload(json_t *payload, framing_t framing, double received,
                           const char *severity_default, char *reason, size_t reason_len)
{
    if (!json_is_object(payload)) {
        snprintf(reason, reason_len, "payload is not a JSON object");
        return NULL;
    }
    return build(payload, NULL, 0, framing, received, severity_default);
}

event_t *normalise_text(const char *text, size_t len, framing_t framing, double received,
                        char *reason, size_t reason_len)
{
    members_t m = { 0 };
    event_t *e = jsonscan_object(text, len, collect_member, &m) == 0
                 ? build_scanned(&m, text, len, framing, received) : NULL;
    if (e)
        return e;
    json_error_t jerr;
    json_t *payload = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!payload) {
        snprintf(reason, reason_len, "payload is not JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(payload))
        snprintf(reason, reason_len, "payload is not a JSON object");
    else
        e = build(payload, text, len, framing, received, "ERROR");
    json_decref(payload);
    return e;
}

void event_destroy(event_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->pattern);
    free(*self_p);
    *self_p = NULL;
}

/* ---- fingerprints ----------------------------------------------------- */

static int is_word(int c)
{
    return isalnum(c) || c == '_';
}

static int ends_token(int c)
{
    return c == '\0' || isspace(c) || strchr("'\",;)]}>", c) != NULL;
}

static size_t scheme_len(const char *s)
{
    size_t i = 0;
    while (isalpha((unsigned char)s[i]))
        i++;
    return i >= 2 && strncmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

static int starts_path(const char *s)
{
    if (s[0] == '/' && s[1] && !isspace((unsigned char)s[1]) && s[1] != '/')
        return 1;
    if (s[0] == '~' && s[1] == '/')
        return 1;
    return isalpha((unsigned char)s[0]) && s[1] == ':' && (s[2] == '\\' || s[2] == '/');
}

/* Length of a hex id at s (8+ of [0-9a-f-] with a digit, ending at a
 * word boundary), or 0. */
static size_t hex_id_len(const char *s)
{
    size_t n = 0;
    int digit = 0;
    while (isxdigit((unsigned char)s[n]) || s[n] == '-') {
        digit |= isdigit((unsigned char)s[n]);
        n++;
    }
    return n >= 8 && digit && !is_word((unsigned char)s[n]) ? n : 0;
}

static size_t put(char *out, size_t o, const char *text)
{
    size_t n = strlen(text);
    memcpy(out + o, text, n);
    return o + n;
}

char *normalise_strip(const char *m)
{
    size_t n = strlen(m), o = 0, i = 0;
    /* Every token consumes at least one byte and writes at most six: a
     * lone "/" before a quote or comma becomes "<path>". */
    char *out = malloc(6 * n + 8);
    while (i < n) {
        unsigned char c = (unsigned char)m[i];
        int boundary = i == 0 || !is_word((unsigned char)m[i - 1]);
        size_t k;
        if (isspace(c)) {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
            i++;
        } else if (boundary && (k = scheme_len(m + i)) > 0) {
            for (i += k; !ends_token((unsigned char)m[i]); i++)
                ;
            o = put(out, o, "<url>");
        } else if (boundary && m[i - (i > 0)] != '/' && starts_path(m + i)) {
            for (; !ends_token((unsigned char)m[i]); i++)
                ;
            o = put(out, o, "<path>");
        } else if (boundary && c == '0' && (m[i + 1] == 'x' || m[i + 1] == 'X')
                   && isxdigit((unsigned char)m[i + 2])) {
            for (i += 2; isxdigit((unsigned char)m[i]); i++)
                ;
            o = put(out, o, "<hex>");
        } else if (boundary && (k = hex_id_len(m + i)) > 0) {
            i += k;
            o = put(out, o, "<id>");
        } else if (boundary && isdigit(c)) {
            while (isdigit((unsigned char)m[i])
                   || (strchr(".:,", m[i]) && m[i] && isdigit((unsigned char)m[i + 1])))
                i++;
            o = put(out, o, "<n>");
        } else {
            out[o++] = (char)c;
            i++;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return out;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* "%016llx" of h into out (17 bytes), without printf's parsing on every event. */
static void put_hex(uint64_t h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 15];
    out[16] = '\0';
}

void normalise_fingerprint(event_t *e)
{
    char *stripped = normalise_strip(e->message);
    const uint64_t basis = 0xcbf29ce484222325ULL;
    uint64_t sig = fnv1a(basis, e->error_type, strlen(e->error_type) + 1);
    sig = fnv1a(sig, stripped, strlen(stripped));
    uint64_t fp = fnv1a(basis, e->agent, strlen(e->agent) + 1);
    fp = fnv1a(fp, e->error_type, strlen(e->error_type) + 1);
    fp = fnv1a(fp, stripped, strlen(stripped));
    put_hex(fp, e->fingerprint);
    put_hex(sig, e->signature);
    free(e->pattern);
    e->pattern = stripped;
}

char *event_to_text(const event_t *e, size_t *len_out)
{
    json_t *obj = json_pack("{s:s, s:f, s:f, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}",
                            "error_id", e->error_id, "timestamp", e->timestamp,
                            "received", e->received, "agent", e->agent,
                            "error_type", e->error_type, "message", e->message,
                            "severity", e->severity, "level", e->level,
                            "fingerprint", e->fingerprint,
                            "grouping_version", NORMALISE_GROUPING_VERSION,
                            "framing", framing_name(e->framing));
    char *head = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!head)
        return NULL;
    size_t hlen = strlen(head), clen = strlen(e->context), rlen = strlen(e->raw);
    size_t cap = hlen + clen + rlen + 32;
    char *text = malloc(cap);
    int n = snprintf(text, cap, "%.*s,\"context\":%s,\"raw\":%s}", (int)(hlen - 1), head,
                     e->context, e->raw);
    free(head);
    if (len_out)
        *len_out = (size_t)n;
    return text;
}
