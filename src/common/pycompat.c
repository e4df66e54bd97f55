/*  pycompat: see pycompat.h.  The shortest round-trip digits come from
 *  trying %.Ne with growing precision; the layout (fixed between 1e-4 and
 *  1e16, exponent with at least two digits outside) is Python's float_repr.
 *  Text is built in a growing buffer and cut only when copied out, so a
 *  long list never writes past a caller's array. */
#include "pycompat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;
    size_t len, cap;
} text_t;

static void put(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->text = realloc(t->text, t->cap);
    }
    memcpy(t->text + t->len, s, n);
    t->len += n;
    t->text[t->len] = '\0';
}

static void puts_text(text_t *t, const char *s)
{
    put(t, s, strlen(s));
}

/* ---- numbers ------------------------------------------------------------ */

/* Splits the shortest %e text of value into digits and a decimal exponent. */
static int shortest_digits(double value, char *digits, size_t len, int *exponent)
{
    char tmp[48];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(tmp, sizeof tmp, "%.*e", precision, value);
        if (strtod(tmp, NULL) == value)
            break;
    }
    char *e = strchr(tmp, 'e');
    if (!e)
        return -1;
    *exponent = atoi(e + 1);
    size_t n = 0;
    for (char *p = tmp; p < e && n + 1 < len; p++)
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    digits[n] = '\0';
    while (n > 1 && digits[n - 1] == '0')
        digits[--n] = '\0';
    return 0;
}

/* The digits laid out without an exponent: "1.0", "0.0015", "123.5". */
static void fixed_notation(const char *digits, int exp10, char *out)
{
    int nd = (int)strlen(digits);
    size_t o = 0;
    if (exp10 >= 0) {
        for (int i = 0; i <= exp10; i++)
            out[o++] = i < nd ? digits[i] : '0';
        out[o++] = '.';
        if (exp10 + 1 < nd)
            for (int i = exp10 + 1; i < nd; i++)
                out[o++] = digits[i];
        else
            out[o++] = '0';
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            out[o++] = '0';
        for (int i = 0; i < nd; i++)
            out[o++] = digits[i];
    }
    out[o] = '\0';
}

char *pycompat_float(double value, char *buf, size_t len)
{
    if (isnan(value)) {
        snprintf(buf, len, "nan");
        return buf;
    }
    if (isinf(value)) {
        snprintf(buf, len, value < 0 ? "-inf" : "inf");
        return buf;
    }
    const char *sign = signbit(value) ? "-" : "";
    char digits[32];
    int exp10;
    if (shortest_digits(fabs(value), digits, sizeof digits, &exp10) < 0) {
        snprintf(buf, len, "%g", value);
        return buf;
    }
    if (exp10 >= -4 && exp10 < 16) {
        char fixed[48];
        fixed_notation(digits, exp10, fixed);
        snprintf(buf, len, "%s%s", sign, fixed);
    } else if (digits[1]) {
        snprintf(buf, len, "%s%c.%se%c%02d", sign, digits[0], digits + 1, exp10 < 0 ? '-' : '+', abs(exp10));
    } else {
        snprintf(buf, len, "%s%ce%c%02d", sign, digits[0], exp10 < 0 ? '-' : '+', abs(exp10));
    }
    return buf;
}

/* ---- str() and repr() -------------------------------------------------------- */

/* The code point of the UTF-8 sequence at s, and its length in *n: a
 * jansson string is valid UTF-8, so every continuation byte is there. */
static unsigned code_point(const unsigned char *s, size_t *n)
{
    if (s[0] < 0x80) {
        *n = 1;
        return s[0];
    }
    *n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : 4;
    unsigned cp = s[0] & (0x7Fu >> *n);
    for (size_t i = 1; i < *n; i++)
        cp = (cp << 6) | (s[i] & 0x3Fu);
    return cp;
}

/* repr(str): single quotes unless the text holds one and no double quote;
 * escapes for the quote, backslash, \n \r \t, and what Python deems not
 * printable (C0 and C1 controls, DEL, the soft hyphen, the line and
 * paragraph separators). */
static void repr_string(text_t *t, const char *s)
{
    char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';
    put(t, &quote, 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        unsigned cp = code_point(p, &n);
        char esc[12] = "";
        if (cp == (unsigned char)quote || cp == '\\')
            snprintf(esc, sizeof esc, "\\%c", (char)cp);
        else if (cp == '\n' || cp == '\r' || cp == '\t')
            snprintf(esc, sizeof esc, "\\%c", cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
        else if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD)
            snprintf(esc, sizeof esc, "\\x%02x", cp);
        else if (cp == 0x2028 || cp == 0x2029)
            snprintf(esc, sizeof esc, "\\u%04x", cp);
        if (*esc)
            puts_text(t, esc);
        else
            put(t, (const char *)p, n);
        p += n;
    }
    put(t, &quote, 1);
}

static void write_value(text_t *t, json_t *value, bool repr)
{
    char num[48];
    switch (value ? json_typeof(value) : JSON_NULL) {
    case JSON_NULL: puts_text(t, "None"); return;
    case JSON_TRUE: puts_text(t, "True"); return;
    case JSON_FALSE: puts_text(t, "False"); return;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(value));
        puts_text(t, num);
        return;
    case JSON_REAL: puts_text(t, pycompat_float(json_real_value(value), num, sizeof num)); return;
    case JSON_STRING:
        if (repr)
            repr_string(t, json_string_value(value));
        else
            put(t, json_string_value(value), json_string_length(value));
        return;
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        puts_text(t, "[");
        json_array_foreach(value, i, item) {
            if (i)
                puts_text(t, ", ");
            write_value(t, item, true);
        }
        puts_text(t, "]");
        return;
    }
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        bool first = true;
        puts_text(t, "{");
        json_object_foreach(value, key, item) {
            if (!first)
                puts_text(t, ", ");
            first = false;
            repr_string(t, key);
            puts_text(t, ": ");
            write_value(t, item, true);
        }
        puts_text(t, "}");
        return;
    }
    }
}

char *pycompat_str(json_t *value, char *buf, size_t len)
{
    text_t t = { 0 };
    write_value(&t, value, false);
    snprintf(buf, len, "%s", t.text ? t.text : "");
    free(t.text);
    return buf;
}

bool pycompat_truthy(json_t *value)
{
    switch (value ? json_typeof(value) : JSON_NULL) {
    case JSON_NULL:
    case JSON_FALSE: return false;
    case JSON_TRUE: return true;
    case JSON_STRING: return json_string_length(value) > 0;
    case JSON_INTEGER: return json_integer_value(value) != 0;
    case JSON_REAL: return json_real_value(value) != 0.0;
    case JSON_OBJECT: return json_object_size(value) > 0;
    case JSON_ARRAY: return json_array_size(value) > 0;
    }
    return true;
}

json_t *pycompat_unknown_action(json_t *action, const char *key, const char *missing)
{
    text_t t = { 0 };
    puts_text(&t, "Unknown action: ");
    if (!action || json_is_null(action))
        puts_text(&t, missing);
    else
        write_value(&t, action, false);
    json_t *reply = json_pack("{s:s, s:s}", "status", "error", key, t.text);
    free(t.text);
    return reply;
}
