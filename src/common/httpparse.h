/*  httpparse: the request side of HTTP/1.0 and 1.1 as httpd.c reads it:
 *  where a request's head ends, its request line and the few headers the
 *  server acts on, percent-decoding, query arguments and chunked bodies.
 *  Functions over buffers only, no sockets and no state of their own, so
 *  the fuzzer (fuzz/fuzz_http.c) drives exactly what the server runs.
 *
 *  Whatever is ambiguous is refused (400), never guessed at: two lengths
 *  that disagree, a length beside chunked framing that does not replace
 *  it, a second Host, a carriage return alone, a NUL.  A lenient reading
 *  is how a proxy in front and the server behind it come to see two
 *  different requests in the same bytes. */
#ifndef KEEL_HTTPPARSE_H
#define KEEL_HTTPPARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A head (request line, headers, blank line) is at most this long: what
 * libmicrohttpd's default memory pool held for one. */
#define HTTP_HEAD_MAX (32u << 10)

typedef struct {
    const char *key;
    const char *value;              /* NULL for "?key" without '=' */
} http_arg_t;

/* Every pointer points into the text given to http_head_parse, but args,
 * which is the head's own (http_head_clear frees it). */
typedef struct {
    const char *method;
    const char *path;               /* percent-decoded, without the query */
    int minor;                      /* HTTP/1.<minor>: 0 or 1 */
    const char *host;               /* NULL when absent */
    const char *authorization;      /* the first one; NULL when absent */
    bool has_length;                /* Content-Length, unless chunked replaces it */
    uint64_t length;
    bool chunked;                   /* Transfer-Encoding: chunked */
    bool close;                     /* the connection ends after this request */
    bool expect_continue;           /* Expect: 100-continue, from HTTP/1.1 */
    http_arg_t *args;               /* the query's arguments, decoded ('+' is a space) */
    size_t nargs;
} http_head_t;

/* The length of the head at the start of data (empty lines before the
 * request line included), or 0 while its blank line has not arrived.
 * *scanned is how far earlier calls on the same data got (0 at first), so
 * a head that arrives a byte at a time is scanned once, not once a byte. */
size_t http_head_length(const char *data, size_t len, size_t *scanned);
/* Parses a head of `len` bytes (http_head_length) in place: text[len]
 * must be writable and is set to NUL; text must outlive `head`.  Returns
 * 0, or the status the request is refused with: 400 (malformed, a final
 * transfer coding other than chunked among them), 501 (another coding
 * before a final chunked), 505 (not HTTP/1.x). */
int http_head_parse(char *text, size_t len, http_head_t *head);
void http_head_clear(http_head_t *head);
/* The value of the first query argument named `key`, or NULL. */
const char *http_head_arg(const http_head_t *head, const char *key);

/* Decodes "%XX" in place, and '+' into a space when `plus` (as a query is
 * written); an escape that is not two hex digits stays as it is.  Returns
 * the new length; text is NUL-terminated there. */
size_t http_unescape(char *text, bool plus);

/* Where a chunked body is up to, between the pieces it arrives in;
 * zeroed to start. */
typedef struct {
    int state;
    uint64_t left;                  /* data bytes left in the chunk */
    size_t line;                    /* bytes of the size or trailer line so far */
    size_t trailer;                 /* bytes of trailer so far */
} http_chunks_t;

/* Reads a chunked body from `in` as far as the end of its next piece of
 * data, or of the body: returns the bytes taken (at least one while len
 * is not 0 and the body not done), or -1 when it is malformed.  *data and
 * *n are the piece of the body among them (*n is 0 when there is none). */
long http_chunks_read(http_chunks_t *c, const char *in, size_t len, const char **data, size_t *n);
bool http_chunks_done(const http_chunks_t *c);
#endif
