/*  print: keelctl's output.  Agent names, error messages, hosts, patterns:
 *  much of what keelctl shows was written by agents, which anyone who can
 *  reach a port can be, so every string printed for people passes through
 *  ctl_escape, in tables (ctl_table) and in lines (ctl_say, ctl_warn) alike;
 *  an escape sequence in an agent's name is shown, never obeyed.  JSON
 *  output is as safe and still exact: jansson writes control characters,
 *  and with JSON_ENSURE_ASCII every other non-ASCII character (C1 controls
 *  included), as \u escapes.  Column widths count characters, not bytes,
 *  so names in UTF-8 stay aligned. */
#include "ctl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at p (its code point in *cp), or 0. */
static size_t utf8_sequence(const unsigned char *p, uint32_t *cp)
{
    static const uint32_t min_of[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2 : 0;
    if (n == 0 || (n == 3 && p[0] >= 0xf0))
        return 0;
    uint32_t v = p[0] & (0xff >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min_of[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* C1 controls, bidirectional controls and line separators: printable
 * bytes that a terminal obeys or that reorder the text around them. */
static bool invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x061c || cp == 0x200e || cp == 0x200f
           || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *ctl_escape(const char *text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p;) {
        uint32_t cp;
        size_t n;
        if (*p == '\n' || *p == '\t' || *p == '\r') {
            fprintf(mem, "\\%c", *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(mem, "\\x%02x", *p++);
        } else if (*p < 0x80) {
            fputc(*p++, mem);
        } else if ((n = utf8_sequence(p, &cp)) == 0) {
            fprintf(mem, "\\x%02x", *p++);
        } else if (invisible(cp)) {
            fprintf(mem, "\\u{%04x}", (unsigned)cp);
            p += n;
        } else {
            fwrite(p, 1, n, mem);
            p += n;
        }
    }
    fclose(mem);
    return out;
}

static void print_escaped(FILE *out, const char *prefix, const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        return;
    char *safe = ctl_escape(text);
    fprintf(out, "%s%s\n", prefix, safe);
    free(safe);
    free(text);
}

void ctl_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_escaped(stdout, "", fmt, ap);
    va_end(ap);
}

void ctl_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_escaped(stderr, "keelctl: ", fmt, ap);
    va_end(ap);
}

/* Characters, not bytes: every byte but a UTF-8 continuation starts one. */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void print_cell(const char *text, size_t width, bool last)
{
    if (last) {
        printf("%s\n", text);
        return;
    }
    fputs(text, stdout);
    for (size_t w = width_of(text); w < width + 2; w++)
        fputc(' ', stdout);
}

void ctl_table(const char *const *header, size_t ncols, json_t *rows)
{
    size_t nrows = json_array_size(rows);
    char **cells = calloc(nrows * ncols + 1, sizeof *cells);
    size_t *width = calloc(ncols, sizeof *width);
    for (size_t c = 0; c < ncols; c++)
        width[c] = width_of(header[c]);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            char *cell = ctl_escape(json_string_value(json_array_get(json_array_get(rows, r), c)));
            cells[r * ncols + c] = cell;
            if (width_of(cell) > width[c])
                width[c] = width_of(cell);
        }
    for (size_t c = 0; c < ncols; c++)
        print_cell(header[c], width[c], c + 1 == ncols);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++)
            print_cell(cells[r * ncols + c], width[c], c + 1 == ncols);
    for (size_t i = 0; i < nrows * ncols; i++)
        free(cells[i]);
    free(cells);
    free(width);
}

void ctl_print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
    if (text)
        puts(text);
    free(text);
}

char *ctl_duration(double seconds, char *buf, size_t len)
{
    long s = (long)seconds;
    if (s >= 86400)
        snprintf(buf, len, "%ldd %ldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, len, "%ldh %ldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%ldm %lds", s / 60, s % 60);
    else
        snprintf(buf, len, "%.1fs", seconds);
    return buf;
}

char *ctl_time(double unix_s, char *buf, size_t len)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (unix_s <= 0 || !localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, len, "-");
    return buf;
}
