/*  zpl: see zpl.h. */
#include "zpl.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *text;
    size_t len;
} span_t;

typedef struct {
    int level;                  /* -1: a blank or comment line */
    span_t name, value;
} line_t;

/* The characters RFC 4 allows in a name. */
static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("$-_@.&+/", c));
}

static const char *skip_blanks(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* Reads the line [p, end); 0, or -1 with why. */
static int parse_line(const char *p, const char *end, line_t *line, const char **why)
{
    const char *s = p;
    while (s < end && *s == ' ')
        s++;
    line->level = -1;
    if (s == end || *s == '#')
        return 0;
    if ((s - p) % 4) {
        *why = "the indentation is not a multiple of four spaces";
        return -1;
    }
    line->level = (int)((s - p) / 4);
    line->name.text = s;
    while (s < end && is_name_char(*s))
        s++;
    line->name.len = (size_t)(s - line->name.text);
    if (line->name.len == 0) {
        *why = "a name is expected";
        return -1;
    }
    s = skip_blanks(s, end);
    line->value = (span_t){ s, 0 };
    if (s < end && *s == '=') {
        s = skip_blanks(s + 1, end);
        if (s < end && (*s == '"' || *s == '\'')) {
            const char *close = memchr(s + 1, *s, (size_t)(end - s - 1));
            if (!close) {
                *why = "a quoted value is not closed";
                return -1;
            }
            line->value = (span_t){ s + 1, (size_t)(close - s - 1) };
            s = skip_blanks(close + 1, end);
        } else {
            line->value.text = s;
            while (s < end && *s != '#')
                s++;
            const char *last = s;
            while (last > line->value.text && (last[-1] == ' ' || last[-1] == '\t'))
                last--;
            line->value.len = (size_t)(last - line->value.text);
        }
    }
    if (s < end && *s != '#') {
        *why = "unexpected text after the name or its value";
        return -1;
    }
    return 0;
}

/* Splits "a/b/c" into its names; how many, or -1 when one is empty or
 * there are more than ZPL_MAX_DEPTH. */
static int split_path(const char *path, span_t *names)
{
    int count = 0;
    for (const char *p = path;; count++) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || count == ZPL_MAX_DEPTH)
            return -1;
        names[count] = (span_t){ p, n };
        if (!slash)
            return count + 1;
        p = slash + 1;
    }
}

static bool same_names(const span_t *a, const span_t *b, int count)
{
    for (int i = 0; i < count; i++)
        if (a[i].len != b[i].len || memcmp(a[i].text, b[i].text, a[i].len) != 0)
            return false;
    return true;
}

int zpl_find(const char *text, const char *path, char *value, size_t len, char *err, size_t errlen)
{
    span_t want[ZPL_MAX_DEPTH], chain[ZPL_MAX_DEPTH];
    int nwant = split_path(path, want);
    if (nwant < 0) {
        snprintf(err, errlen, "%s is not a ZPL path", path);
        return -1;
    }
    bool found = false;
    int depth = -1, number = 0;
    const char *p = text;
    while (*p) {
        const char *newline = strchr(p, '\n');
        const char *end = newline ? newline : p + strlen(p);
        const char *stop = end > p && end[-1] == '\r' ? end - 1 : end;
        const char *why = NULL;
        line_t line;
        number++;
        if (parse_line(p, stop, &line, &why) == 0 && line.level > depth + 1)
            why = "indented deeper than the line above allows";
        else if (!why && line.level >= ZPL_MAX_DEPTH)
            why = "nested too deep";
        if (why) {
            snprintf(err, errlen, "line %d: %s", number, why);
            return -1;
        }
        if (line.level >= 0) {
            depth = line.level;
            chain[depth] = line.name;
            if (!found && depth == nwant - 1 && same_names(chain, want, nwant)) {
                if (line.value.len >= len) {
                    snprintf(err, errlen, "line %d: the value of %s is too long", number, path);
                    return -1;
                }
                memcpy(value, line.value.text, line.value.len);
                value[line.value.len] = '\0';
                found = true;
            }
        }
        p = newline ? newline + 1 : end;
    }
    if (!found) {
        snprintf(err, errlen, "no %s", path);
        return -1;
    }
    return 0;
}
