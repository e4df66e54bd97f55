/*  httpparse: see httpparse.h.  A head is parsed where it lies: the
 *  request line and each header are cut out with NULs, the lines of a
 *  folded header are joined with spaces, and decoding only ever shortens a
 *  text, so nothing is copied; only the query's arguments get an array.
 *  The chunked reader keeps no bytes of its own, only a state, so a body
 *  may arrive split anywhere. */
#include "httpparse.h"
#include "hexdigit.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A chunk-size line (with its extensions) is at most this long. */
#define CHUNK_LINE_MAX 1024

enum {
    CHUNK_SIZE, CHUNK_SIZE_MORE, CHUNK_EXTENSION, CHUNK_SIZE_LF,
    CHUNK_DATA, CHUNK_DATA_CR, CHUNK_DATA_LF,
    CHUNK_TRAILER, CHUNK_TRAILER_LINE, CHUNK_TRAILER_LF, CHUNK_DONE
};

/* Whether a Transfer-Encoding list's last coding is chunked.  When it is
 * not, the body's length cannot be known and the request is malformed
 * (400, RFC 9112 6.3); when it is, with another coding before it, the
 * framing is clear but Keel decodes no other coding (501, RFC 9112 6.1). */
static bool ends_in_chunked(const char *codings)
{
    const char *last = strrchr(codings, ',');
    last = last ? last + 1 + strspn(last + 1, " \t") : codings;
    return strcasecmp(last, "chunked") == 0;
}

/* A method's or a header name's characters (RFC 9110's tchar). */
static bool is_token_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *text)
{
    if (!*text)
        return false;
    for (; *text; text++)
        if (!is_token_char(*text))
            return false;
    return true;
}

size_t http_unescape(char *text, bool plus)
{
    char *out = text;
    for (const char *in = text; *in; in++) {
        int hi, lo;
        if (*in == '%' && (hi = hexdigit_value(in[1])) >= 0 && (lo = hexdigit_value(in[2])) >= 0) {
            *out++ = (char)(hi << 4 | lo);
            in += 2;
        } else {
            *out++ = plus && *in == '+' ? ' ' : *in;
        }
    }
    *out = '\0';
    return (size_t)(out - text);
}

size_t http_head_length(const char *data, size_t len, size_t *scanned)
{
    size_t at = *scanned;
    if (at == 0)
        while (at < len && (data[at] == '\r' || data[at] == '\n'))
            at++;
    while (at < len) {
        const char *nl = memchr(data + at, '\n', len - at);
        if (!nl)
            break;
        at = (size_t)(nl - data) + 1;
        if (at < len && data[at] == '\n')
            return at + 1;
        if (at + 1 < len && data[at] == '\r' && data[at + 1] == '\n')
            return at + 2;
        if (at + 1 >= len) {
            at--;                   /* what follows this newline is still to come */
            break;
        }
    }
    *scanned = at;
    return 0;
}

/* ---- the request line and the query ---------------------------------------- */

/* "HTTP/1.0" or "HTTP/1.1" (a later 1.x is spoken to as 1.1): 0, 400 or 505. */
static int parse_version(const char *text, int *minor)
{
    if (strncmp(text, "HTTP/", 5) != 0 || text[5] < '0' || text[5] > '9'
        || text[6] != '.' || text[7] < '0' || text[7] > '9' || text[8] != '\0')
        return 400;
    if (text[5] != '1')
        return 505;
    *minor = text[7] == '0' ? 0 : 1;
    return 0;
}

static void parse_query(char *query, http_head_t *head)
{
    size_t pieces = 1;
    for (const char *c = query; *c; c++)
        pieces += *c == '&';
    head->args = calloc(pieces, sizeof *head->args);
    for (char *piece = query, *next; piece; piece = next) {
        next = strchr(piece, '&');
        if (next)
            *next++ = '\0';
        if (!*piece)
            continue;
        char *eq = strchr(piece, '=');
        if (eq) {
            *eq = '\0';
            http_unescape(eq + 1, true);
        }
        http_unescape(piece, true);
        head->args[head->nargs++] = (http_arg_t){ piece, eq ? eq + 1 : NULL };
    }
}

/* "METHOD target HTTP/1.x", one space apart; the line is NUL-terminated. */
static int parse_request_line(char *line, http_head_t *head)
{
    char *target = strchr(line, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!version || strchr(version + 1, ' '))
        return 400;
    *target++ = '\0';
    *version++ = '\0';
    if (!is_token(line) || !*target)
        return 400;
    for (const unsigned char *c = (const unsigned char *)target; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return 400;
    int status = parse_version(version, &head->minor);
    if (status)
        return status;
    head->method = line;
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    /* "%00" would cut the path short of what the client asked for. */
    if (http_unescape(target, false) != strlen(target))
        return 400;
    head->path = target;
    if (query)
        parse_query(query, head);
    return 0;
}

/* ---- headers -------------------------------------------------------------------- */

typedef struct {
    bool close, keep_alive;         /* Connection's tokens */
    bool expect_continue;
} connection_words_t;

static bool parse_length(const char *text, uint64_t *length)
{
    uint64_t n = 0;
    if (!*text)
        return false;
    for (; *text; text++) {
        if (*text < '0' || *text > '9' || n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(*text - '0');
    }
    *length = n;
    return true;
}

static void parse_connection(char *value, connection_words_t *words)
{
    for (char *token = value, *next; token; token = next) {
        next = strchr(token, ',');
        if (next)
            *next++ = '\0';
        token += strspn(token, " \t");
        size_t n = strcspn(token, " \t");
        if (n == 5 && strncasecmp(token, "close", 5) == 0)
            words->close = true;
        if (n == 10 && strncasecmp(token, "keep-alive", 10) == 0)
            words->keep_alive = true;
    }
}

/* One header, "name:value" NUL-terminated, folded lines already joined. */
static int parse_header(char *line, http_head_t *head, connection_words_t *words)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return 400;
    *colon = '\0';
    if (!is_token(line))
        return 400;
    char *value = colon + 1 + strspn(colon + 1, " \t");
    size_t n = strlen(value);
    while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        value[--n] = '\0';
    if (strcasecmp(line, "Host") == 0) {
        if (head->host)
            return 400;
        head->host = value;
    } else if (strcasecmp(line, "Authorization") == 0) {
        if (!head->authorization)
            head->authorization = value;
    } else if (strcasecmp(line, "Content-Length") == 0) {
        uint64_t length;
        if (!parse_length(value, &length) || (head->has_length && length != head->length))
            return 400;
        head->has_length = true;
        head->length = length;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        if (strcasecmp(value, "chunked") != 0)
            return head->chunked || !ends_in_chunked(value) ? 400 : 501;
        if (head->chunked)
            return 400;
        head->chunked = true;
    } else if (strcasecmp(line, "Connection") == 0) {
        parse_connection(value, words);
    } else if (strcasecmp(line, "Expect") == 0) {
        words->expect_continue = strcasecmp(value, "100-continue") == 0;
    }
    return 0;
}

/* The header that starts at `at` (not a blank line): its text, with the
 * lines folded into it joined by spaces, NUL-terminated.  Returns where
 * the next one starts, or NULL when a carriage return stands alone. */
static char *cut_header(char *at, char *end)
{
    char *stop = memchr(at, '\n', (size_t)(end - at));
    while (stop && stop + 1 < end && (stop[1] == ' ' || stop[1] == '\t'))
        stop = memchr(stop + 1, '\n', (size_t)(end - stop - 1));
    if (!stop)
        return NULL;
    for (char *c = at; c < stop; c++) {
        if (*c == '\r' && c[1] != '\n')
            return NULL;
        if (*c == '\r' || *c == '\n')
            *c = ' ';
    }
    *stop = '\0';
    return stop + 1;
}

int http_head_parse(char *text, size_t len, http_head_t *head)
{
    memset(head, 0, sizeof *head);
    text[len] = '\0';
    char *at = text, *end = text + len;
    while (at < end && (*at == '\r' || *at == '\n'))
        at++;
    if (strlen(at) != (size_t)(end - at))
        return 400;                 /* a NUL */
    char *nl = memchr(at, '\n', (size_t)(end - at));
    if (!nl)
        return 400;
    if (nl > at && nl[-1] == '\r')
        nl[-1] = '\0';
    *nl = '\0';
    if (strchr(at, '\r'))
        return 400;
    int status = parse_request_line(at, head);
    connection_words_t words = { false, false, false };
    for (at = nl + 1; !status && at < end && *at != '\n' && !(*at == '\r' && at[1] == '\n');) {
        char *line = at;
        if (*line == ' ' || *line == '\t' || !(at = cut_header(line, end)))
            return 400;             /* folded onto the request line, or a lone CR */
        status = parse_header(line, head, &words);
    }
    if (status)
        return status;
    /* Chunked framing overrides a length (RFC 9112 6.3); a sender of both
     * may be smuggling, so nothing more is read from it. */
    bool ambiguous = head->chunked && head->has_length;
    if (ambiguous) {
        head->has_length = false;
        head->length = 0;
    }
    head->close = (head->minor == 0 ? !words.keep_alive : words.close) || ambiguous;
    head->expect_continue = words.expect_continue && head->minor >= 1;
    return 0;
}

void http_head_clear(http_head_t *head)
{
    free(head->args);
    memset(head, 0, sizeof *head);
}

const char *http_head_arg(const http_head_t *head, const char *key)
{
    /* Names compare regardless of case, as libmicrohttpd compared them. */
    for (size_t i = 0; i < head->nargs; i++)
        if (strcasecmp(head->args[i].key, key) == 0)
            return head->args[i].value;
    return NULL;
}

/* ---- chunked bodies --------------------------------------------------------------- */

static void end_size_line(http_chunks_t *c)
{
    c->line = 0;
    c->state = c->left ? CHUNK_DATA : CHUNK_TRAILER;
}

long http_chunks_read(http_chunks_t *c, const char *in, size_t len, const char **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    size_t at = 0;
    for (; at < len && c->state != CHUNK_DONE; at++) {
        char ch = in[at];
        int digit;
        switch (c->state) {
        case CHUNK_DATA: {
            size_t take = len - at < c->left ? len - at : (size_t)c->left;
            *data = in + at;
            *n = take;
            c->left -= take;
            if (c->left == 0)
                c->state = CHUNK_DATA_CR;
            return (long)(at + take);
        }
        case CHUNK_SIZE:
        case CHUNK_SIZE_MORE:
            if ((digit = hexdigit_value(ch)) >= 0) {
                if (c->left >> 56)
                    return -1;      /* more than any body Keel takes, by far */
                c->left = c->left << 4 | (uint64_t)digit;
                c->state = CHUNK_SIZE_MORE;
            } else if (c->state == CHUNK_SIZE) {
                return -1;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CHUNK_EXTENSION;
            } else if (ch == '\r') {
                c->state = CHUNK_SIZE_LF;
            } else if (ch == '\n') {
                end_size_line(c);
                continue;
            } else {
                return -1;
            }
            if (++c->line > CHUNK_LINE_MAX)
                return -1;
            break;
        case CHUNK_EXTENSION:
            if (ch == '\n') {
                end_size_line(c);
                continue;
            }
            if (ch == '\r')
                c->state = CHUNK_SIZE_LF;
            if (++c->line > CHUNK_LINE_MAX)
                return -1;
            break;
        case CHUNK_SIZE_LF:
            if (ch != '\n')
                return -1;
            end_size_line(c);
            break;
        case CHUNK_DATA_CR:
            if (ch != '\r' && ch != '\n')
                return -1;
            c->state = ch == '\r' ? CHUNK_DATA_LF : CHUNK_SIZE;
            break;
        case CHUNK_DATA_LF:
            if (ch != '\n')
                return -1;
            c->state = CHUNK_SIZE;
            break;
        case CHUNK_TRAILER:
            c->state = ch == '\n' ? CHUNK_DONE : ch == '\r' ? CHUNK_TRAILER_LF : CHUNK_TRAILER_LINE;
            break;
        case CHUNK_TRAILER_LINE:
            if (ch == '\n')
                c->state = CHUNK_TRAILER;
            if (++c->trailer > HTTP_HEAD_MAX)
                return -1;
            break;
        case CHUNK_TRAILER_LF:
            if (ch != '\n')
                return -1;
            c->state = CHUNK_DONE;
            break;
        }
    }
    return (long)at;
}

bool http_chunks_done(const http_chunks_t *c)
{
    return c->state == CHUNK_DONE;
}
