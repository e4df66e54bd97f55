/*  wirejson: see wirejson.h.
 *
 *  The reader is a plain recursive descent over the bytes.  It returns
 *  UNSURE instead of a value whenever jansson might decide differently
 *  from a simple reading, and the caller then asks json_loadb: the fast
 *  path never has to reproduce jansson's error handling, only its values
 *  on well-formed input. */
#include "wirejson.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's own parser refuses nesting past 2048; the writer's limit also
 * ends a cycle, which json_dumps refuses too. */
#define MAX_DUMP_DEPTH 2048
#define MAX_LOAD_DEPTH 64       /* deeper: jansson decides */
#define MAX_DIGITS 18           /* an integer of at most 18 digits fits a long long */
#define MAX_REAL_TEXT 64

/* Bytes a string cannot pass through as they are, reading or writing:
 * the quote, a backslash, control characters and everything not ASCII. */
static const unsigned char stops[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* ---- writing ----------------------------------------------------------- */

static bool reserve(wirejson_buf_t *buf, size_t n)
{
    if (buf->failed)
        return false;
    if (buf->len + n + 1 <= buf->cap)
        return true;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + n + 1)
        cap *= 2;
    char *data = realloc(buf->data, cap);
    if (!data) {
        buf->failed = true;
        return false;
    }
    buf->data = data;
    buf->cap = cap;
    return true;
}

void wirejson_buf_reserve(wirejson_buf_t *buf, size_t n)
{
    reserve(buf, n);
}

void wirejson_buf_raw(wirejson_buf_t *buf, const char *text, size_t n)
{
    if (!reserve(buf, n))
        return;
    memcpy(buf->data + buf->len, text, n);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

void wirejson_buf_string(wirejson_buf_t *buf, const char *text, size_t n)
{
    /* Worst case: every byte a six-byte \u escape, plus the quotes. */
    if (!reserve(buf, n * 6 + 2))
        return;
    const unsigned char *s = (const unsigned char *)text, *end = s + n;
    char *o = buf->data + buf->len;
    *o++ = '"';
    while (s < end) {
        unsigned char c = *s;
        if (!stops[c]) {
            *o++ = (char)c;
            s++;
        } else if (c >= 0x80) {
            size_t k = utf8_sequence(s, (size_t)(end - s));
            if (!k) {
                buf->failed = true;     /* json_dumps refuses it too */
                return;
            }
            memcpy(o, s, k);
            o += k;
            s += k;
        } else {
            static const char hex[] = "0123456789ABCDEF";
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            s++;
        }
    }
    *o++ = '"';
    buf->len = (size_t)(o - buf->data);
    buf->data[buf->len] = '\0';
}

void wirejson_buf_integer(wirejson_buf_t *buf, long long value)
{
    char text[24];
    char *p = text + sizeof text;
    unsigned long long u = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (value < 0)
        *--p = '-';
    wirejson_buf_raw(buf, p, (size_t)(text + sizeof text - p));
}

/* jansson's jsonp_dtostr: "%.17g", ".0" where that has neither a point nor
 * an exponent, no '+' and no leading zeros in the exponent.  Whole numbers
 * well inside a double's exact range print the same digits without
 * snprintf. */
void wirejson_buf_real(wirejson_buf_t *buf, double value)
{
    if (!isfinite(value)) {
        buf->failed = true;
        return;
    }
    if (value == floor(value) && fabs(value) < 1e15 && !(value == 0 && signbit(value))) {
        wirejson_buf_integer(buf, (long long)value);
        wirejson_buf_raw(buf, ".0", 2);
        return;
    }
    char text[MAX_REAL_TEXT];
    int n = snprintf(text, sizeof text - 3, "%.17g", value);
    if (n < 0 || (size_t)n >= sizeof text - 3) {
        buf->failed = true;
        return;
    }
    size_t len = (size_t)n;
    if (!strchr(text, '.') && !strchr(text, 'e')) {
        memcpy(text + len, ".0", 3);
        len += 2;
    }
    char *start = strchr(text, 'e');
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - text) + 1);
            len -= (size_t)(end - start);
        }
    }
    wirejson_buf_raw(buf, text, len);
}

static void write_value(wirejson_buf_t *buf, const json_t *value, int depth)
{
    if (!value || depth > MAX_DUMP_DEPTH) {
        buf->failed = true;
        return;
    }
    switch (json_typeof(value)) {
    case JSON_NULL:
        wirejson_buf_raw(buf, "null", 4);
        break;
    case JSON_TRUE:
        wirejson_buf_raw(buf, "true", 4);
        break;
    case JSON_FALSE:
        wirejson_buf_raw(buf, "false", 5);
        break;
    case JSON_INTEGER:
        wirejson_buf_integer(buf, json_integer_value(value));
        break;
    case JSON_REAL:
        wirejson_buf_real(buf, json_real_value(value));
        break;
    case JSON_STRING:
        wirejson_buf_string(buf, json_string_value(value), json_string_length(value));
        break;
    case JSON_ARRAY: {
        wirejson_buf_raw(buf, "[", 1);
        size_t n = json_array_size(value);
        for (size_t i = 0; i < n && !buf->failed; i++) {
            if (i)
                wirejson_buf_raw(buf, ",", 1);
            write_value(buf, json_array_get(value, i), depth + 1);
        }
        wirejson_buf_raw(buf, "]", 1);
        break;
    }
    case JSON_OBJECT: {
        wirejson_buf_raw(buf, "{", 1);
        bool first = true;
        for (void *it = json_object_iter((json_t *)value); it && !buf->failed;
             it = json_object_iter_next((json_t *)value, it)) {
            if (!first)
                wirejson_buf_raw(buf, ",", 1);
            first = false;
            wirejson_buf_string(buf, json_object_iter_key(it), json_object_iter_key_len(it));
            wirejson_buf_raw(buf, ":", 1);
            write_value(buf, json_object_iter_value(it), depth + 1);
        }
        wirejson_buf_raw(buf, "}", 1);
        break;
    }
    }
}

void wirejson_buf_value(wirejson_buf_t *buf, const json_t *value)
{
    write_value(buf, value, 0);
}

char *wirejson_buf_finish(wirejson_buf_t *buf, size_t *len)
{
    if (buf->failed || !reserve(buf, 0)) {
        free(buf->data);
        *buf = (wirejson_buf_t){ 0 };
        return NULL;
    }
    char *text = buf->data;
    if (len)
        *len = buf->len;
    *buf = (wirejson_buf_t){ 0 };
    return text;
}

char *wirejson_dump(const json_t *value, size_t *len)
{
    wirejson_buf_t buf = { 0 };
    wirejson_buf_value(&buf, value);
    return wirejson_buf_finish(&buf, len);
}

/* ---- reading ----------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} input_t;

static void skip_blanks(input_t *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\n' || *in->p == '\r' || *in->p == '\t'))
        in->p++;
}


/* A string at in->p (past its opening quote) into *out (malloc'd) and *len;
 * false when unsure. */
static bool read_string(input_t *in, char **out, size_t *len)
{
    const unsigned char *s = (const unsigned char *)in->p, *end = (const unsigned char *)in->end;
    const unsigned char *start = s;
    bool escaped = false;
    for (;;) {
        while (s < end && !stops[*s])
            s++;
        if (s >= end || *s == '"')
            break;
        if (*s == '\\') {
            if (s + 1 >= end)
                return false;
            escaped = true;
            s += 2;
        } else if (*s < 0x20) {
            return false;
        } else {
            size_t k = utf8_sequence(s, (size_t)(end - s));
            if (!k)
                return false;
            s += k;
        }
    }
    if (s >= end)
        return false;
    size_t n = (size_t)(s - start);
    char *text = malloc(n + 1);
    if (!text)
        return false;
    if (!escaped) {
        memcpy(text, start, n);
        *len = n;
    } else {
        size_t o = 0;
        for (const unsigned char *q = start; q < s; q++) {
            if (*q != '\\') {
                text[o++] = (char)*q;
                continue;
            }
            q++;
            switch (*q) {
            case '"': text[o++] = '"'; break;
            case '\\': text[o++] = '\\'; break;
            case '/': text[o++] = '/'; break;
            case 'b': text[o++] = '\b'; break;
            case 'f': text[o++] = '\f'; break;
            case 'n': text[o++] = '\n'; break;
            case 'r': text[o++] = '\r'; break;
            case 't': text[o++] = '\t'; break;
            default:            /* \u (surrogates, NUL) and anything wrong: jansson's */
                free(text);
                return false;
            }
        }
        *len = o;
    }
    text[*len] = '\0';
    *out = text;
    in->p = (const char *)s + 1;
    return true;
}

static json_t *read_number(input_t *in)
{
    const char *p = in->p, *end = in->end;
    bool negative = p < end && *p == '-';
    if (negative)
        p++;
    const char *digits = p;
    if (p >= end || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
        return NULL;            /* a leading zero: jansson refuses it */
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    size_t ndigits = (size_t)(p - digits);
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        p++;
        const char *frac = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == frac)
            return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *exp = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == exp)
            return NULL;
    }
    json_t *value;
    if (!real) {
        if (ndigits > MAX_DIGITS)
            return NULL;        /* may not fit: jansson says whether it does */
        long long v = 0;
        for (const char *d = digits; d < p; d++)
            v = v * 10 + (*d - '0');
        value = json_integer(negative ? -v : v);
    } else {
        char text[MAX_REAL_TEXT];
        size_t n = (size_t)(p - in->p);
        if (n >= sizeof text)
            return NULL;
        memcpy(text, in->p, n);
        text[n] = '\0';
        errno = 0;
        double v = strtod(text, NULL);
        if ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE)
            return NULL;        /* jansson refuses an overflow */
        value = json_real(v);
    }
    if (value)
        in->p = p;
    return value;
}

static json_t *read_value(input_t *in, int depth);

static json_t *read_object(input_t *in, int depth)
{
    json_t *object = json_object();
    in->p++;
    skip_blanks(in);
    if (in->p < in->end && *in->p == '}') {
        in->p++;
        return object;
    }
    for (;;) {
        skip_blanks(in);
        if (in->p >= in->end || *in->p != '"')
            break;
        in->p++;
        char *key;
        size_t keylen;
        if (!read_string(in, &key, &keylen))
            break;
        skip_blanks(in);
        json_t *value = NULL;
        if (in->p < in->end && *in->p == ':') {
            in->p++;
            value = read_value(in, depth + 1);
        }
        int rc = value ? json_object_setn_new_nocheck(object, key, keylen, value) : -1;
        free(key);
        if (rc != 0)
            break;
        skip_blanks(in);
        if (in->p < in->end && *in->p == ',') {
            in->p++;
            continue;
        }
        if (in->p < in->end && *in->p == '}') {
            in->p++;
            return object;
        }
        break;
    }
    json_decref(object);
    return NULL;
}

static json_t *read_array(input_t *in, int depth)
{
    json_t *array = json_array();
    in->p++;
    skip_blanks(in);
    if (in->p < in->end && *in->p == ']') {
        in->p++;
        return array;
    }
    for (;;) {
        json_t *value = read_value(in, depth + 1);
        if (!value || json_array_append_new(array, value) != 0)
            break;
        skip_blanks(in);
        if (in->p < in->end && *in->p == ',') {
            in->p++;
            continue;
        }
        if (in->p < in->end && *in->p == ']') {
            in->p++;
            return array;
        }
        break;
    }
    json_decref(array);
    return NULL;
}

static bool literal(input_t *in, const char *word, size_t n)
{
    if ((size_t)(in->end - in->p) < n || memcmp(in->p, word, n) != 0)
        return false;
    in->p += n;
    return true;
}

static json_t *read_value(input_t *in, int depth)
{
    if (depth > MAX_LOAD_DEPTH)
        return NULL;
    skip_blanks(in);
    if (in->p >= in->end)
        return NULL;
    switch (*in->p) {
    case '{':
        return read_object(in, depth);
    case '[':
        return read_array(in, depth);
    case '"': {
        in->p++;
        char *text;
        size_t len;
        if (!read_string(in, &text, &len))
            return NULL;
        json_t *value = json_stringn_nocheck(text, len);
        free(text);
        return value;
    }
    case 't':
        return literal(in, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(in, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(in, "null", 4) ? json_null() : NULL;
    default:
        return read_number(in);
    }
}

json_t *wirejson_load(const char *text, size_t len)
{
    input_t in = { text, text + len };
    json_t *value = read_value(&in, 0);
    if (value) {
        skip_blanks(&in);
        if (in.p == in.end)
            return value;
        json_decref(value);
    }
    json_error_t err;
    return json_loadb(text, len, JSON_DECODE_ANY, &err);
}
