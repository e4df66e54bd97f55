/*  jsonscan: see jsonscan.h.
 *
 *  Recursive descent over the bytes, the depth bounded by
 *  JSONSCAN_MAX_DEPTH, so neither the stack nor the time can be made to
 *  grow by nesting.  Nothing is copied or allocated while scanning: a value
 *  is a span of the caller's text, and strings are decoded (or values
 *  compacted) only when the caller asks for one.  Numbers are checked the
 *  way jansson reads them: an integer must fit 64 bits (18 digits always
 *  do, longer ones are left to jansson), a real must not overflow strtod. */
#include "jsonscan.h"
#include "hexdigit.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *p, *end;
} scan_t;

static int scan_value(scan_t *s, jsonscan_value_t *v, int depth);

static void skip_space(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* The code unit of \uXXXX at p (which points at the backslash), or -1. */
static long escape_unit(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    long unit = 0;
    for (int i = 2; i < 6; i++) {
        int d = hexdigit_value(p[i]);
        if (d < 0)
            return -1;
        unit = unit * 16 + d;
    }
    return unit;
}

/* How many of the 8 bytes of w, in memory order, come before the first
 * one that needs a look: a quote, a backslash, a control character or one
 * past ASCII.  The tests of "Bit Twiddling Hacks" can flag a byte after a
 * flagged one wrongly, never the first. */
static unsigned plain_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t special = (((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote)
                        | ((backslash - ones) & ~backslash) | w) & high;
    if (!special)
        return 8;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned)__builtin_ctzll(special) / 8;
#else
    return (unsigned)__builtin_clzll(special) / 8;
#endif
}

/* A string, from just after its opening quote to just after its closing
 * one.  Most of a string is plain ASCII, passed 8 bytes at a time. */
static int scan_string(scan_t *s, jsonscan_value_t *v)
{
    const unsigned char *start = s->p;
    v->escaped = false;
    while (s->p < s->end) {
        if (s->end - s->p >= 8) {
            uint64_t w;
            memcpy(&w, s->p, 8);
            unsigned plain = plain_bytes(w);
            s->p += plain;
            if (plain == 8)
                continue;
        }
        unsigned char c = *s->p;
        if (c == '"') {
            v->type = JSONSCAN_STRING;
            v->text = (const char *)start;
            v->len = (size_t)(s->p - start);
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            size_t n = utf8_sequence(s->p, (size_t)(s->end - s->p));
            if (n == 0)
                return -1;
            s->p += n;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        v->escaped = true;
        if (s->end - s->p < 2)
            return -1;
        c = s->p[1];
        if (c != 'u') {
            if (!c || !strchr("\"\\/bfnrt", c))
                return -1;
            s->p += 2;
            continue;
        }
        long unit = escape_unit(s->p, s->end);
        if (unit <= 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
            return -1;          /* \u0000, or a low surrogate alone */
        s->p += 6;
        if (unit >= 0xD800 && unit <= 0xDBFF) {
            long low = escape_unit(s->p, s->end);
            if (low < 0xDC00 || low > 0xDFFF)
                return -1;
            s->p += 6;
        }
    }
    return -1;
}

static int scan_digits(scan_t *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && is_digit(*s->p))
        s->p++;
    return s->p > start ? 0 : -1;
}

/* Whether a real of fewer than 64 characters may reach DBL_MAX (about
 * 1.8e308): only with an exponent above 200, as it has fewer than 64
 * digits before the exponent. */
static bool may_overflow(const unsigned char *start, const unsigned char *end)
{
    const unsigned char *e = start;
    while (e < end && *e != 'e' && *e != 'E')
        e++;
    if (e == end || *++e == '-')
        return false;
    if (*e == '+')
        e++;
    long exponent = 0;
    while (e < end && exponent <= 200)
        exponent = exponent * 10 + (*e++ - '0');
    return exponent > 200;
}

static int scan_number(scan_t *s, jsonscan_value_t *v)
{
    const unsigned char *start = s->p;
    if (*s->p == '-')
        s->p++;
    const unsigned char *digits = s->p;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (scan_digits(s) < 0)
        return -1;
    size_t int_digits = (size_t)(s->p - digits);
    bool integer = true;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        integer = false;
        if (scan_digits(s) < 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        integer = false;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (scan_digits(s) < 0)
            return -1;
    }
    if (s->p < s->end && is_digit(*s->p))
        return -1;              /* a leading zero: "01" */
    v->type = JSONSCAN_NUMBER;
    v->text = (const char *)start;
    v->len = (size_t)(s->p - start);
    v->escaped = false;
    if (integer)
        return int_digits <= 18 ? 0 : -1;
    char text[64];
    if (v->len >= sizeof text)
        return -1;
    if (!may_overflow(start, s->p))
        return 0;
    memcpy(text, start, v->len);
    text[v->len] = '\0';
    errno = 0;
    double real = strtod(text, NULL);
    return (real == HUGE_VAL || real == -HUGE_VAL) && errno == ERANGE ? -1 : 0;
}

static int scan_literal(scan_t *s, jsonscan_value_t *v, const char *word, jsonscan_type_t type)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    v->type = type;
    v->text = (const char *)s->p;
    v->len = n;
    v->escaped = false;
    s->p += n;
    return 0;
}

/* The members of an object or the elements of an array, from just after
 * its opening bracket to just after its closing one. */
static int scan_members(scan_t *s, bool object, int depth, jsonscan_member_fn *fn, void *ctx)
{
    char close = object ? '}' : ']';
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        jsonscan_value_t key = { 0 }, value;
        if (object) {
            if (s->p >= s->end || *s->p != '"')
                return -1;
            s->p++;
            if (scan_string(s, &key) < 0)
                return -1;
            skip_space(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
            skip_space(s);
        }
        if (scan_value(s, &value, depth) < 0)
            return -1;
        if (fn)
            fn(ctx, &key, &value);
        skip_space(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == close) {
            s->p++;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
        skip_space(s);
    }
}

static int scan_value(scan_t *s, jsonscan_value_t *v, int depth)
{
    if (s->p >= s->end)
        return -1;
    const unsigned char *start = s->p;
    switch (*s->p) {
    case '"':
        s->p++;
        return scan_string(s, v);
    case '{':
    case '[': {
        bool object = *s->p == '{';
        if (depth >= JSONSCAN_MAX_DEPTH)
            return -1;
        s->p++;
        if (scan_members(s, object, depth + 1, NULL, NULL) < 0)
            return -1;
        v->type = object ? JSONSCAN_OBJECT : JSONSCAN_ARRAY;
        v->text = (const char *)start;
        v->len = (size_t)(s->p - start);
        v->escaped = false;
        return 0;
    }
    case 't':
        return scan_literal(s, v, "true", JSONSCAN_TRUE);
    case 'f':
        return scan_literal(s, v, "false", JSONSCAN_FALSE);
    case 'n':
        return scan_literal(s, v, "null", JSONSCAN_NULL);
    default:
        return *s->p == '-' || is_digit(*s->p) ? scan_number(s, v) : -1;
    }
}

int jsonscan_object(const char *text, size_t len, jsonscan_member_fn *fn, void *ctx)
{
    scan_t s = { (const unsigned char *)text, (const unsigned char *)text + len };
    skip_space(&s);
    if (s.p >= s.end || *s.p != '{')
        return -1;
    s.p++;
    if (scan_members(&s, true, 1, fn, ctx) < 0)
        return -1;
    skip_space(&s);
    return s.p == s.end ? 0 : -1;
}

double jsonscan_number(const jsonscan_value_t *value)
{
    static const double powers[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                      1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                      1e20, 1e21, 1e22 };
    const char *p = value->text, *end = p + value->len;
    bool negative = *p == '-';
    p += negative;
    uint64_t digits = 0;
    int significant = 0, scale = 0;
    bool fraction = false;
    for (; p < end; p++) {
        if (*p == '.' && !fraction) {
            fraction = true;
            continue;
        }
        if (!is_digit(*p))
            break;
        digits = digits * 10 + (uint64_t)(*p - '0');
        significant += significant || *p != '0';
        scale -= fraction;
    }
    /* an integer (the scan let through 18 digits at most) as jansson reads
     * it, through int64: "-0" is 0 */
    if (p == end && !fraction)
        return (double)(negative ? -(int64_t)digits : (int64_t)digits);
    /* Clinger's fast path: digits up to 2^53 make an exact double and so
     * do the powers of ten up to 1e22, so one IEEE division rounds once,
     * the way strtod does */
    if (p == end && significant <= 19 && digits <= (1ULL << 53) && scale >= -22) {
        double d = (double)digits / powers[-scale];
        return negative ? -d : d;
    }
    char text[64];
    memcpy(text, value->text, value->len);
    text[value->len] = '\0';
    return strtod(text, NULL);
}

/* Code point cp as UTF-8 at out; the number of bytes. */
static size_t put_utf8(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every escape was checked by the scan, so this only translates: each one
 * is at least as long as what it stands for. */
size_t jsonscan_string(const jsonscan_value_t *value, char *out)
{
    const unsigned char *p = (const unsigned char *)value->text, *end = p + value->len;
    if (!value->escaped) {
        memcpy(out, p, value->len);
        out[value->len] = '\0';
        return value->len;
    }
    size_t o = 0;
    while (p < end) {
        if (*p != '\\') {
            out[o++] = (char)*p++;
            continue;
        }
        char c = (char)p[1];
        if (c == 'u') {
            unsigned long cp = (unsigned long)escape_unit(p, end);
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)escape_unit(p, end) - 0xDC00);
                p += 6;
            }
            o += put_utf8(cp, out + o);
            continue;
        }
        static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
        const char *at = strchr(from, c);
        out[o++] = at ? to[at - from] : c;
        p += 2;
    }
    out[o] = '\0';
    return o;
}

size_t jsonscan_compact(const jsonscan_value_t *value, char *out)
{
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; i < value->len; i++) {
        char c = value->text[i];
        if (in_string) {
            if (c == '\\') {
                out[o++] = c;
                c = value->text[++i];
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}
