/*  pickle: see pickle.h.
 *
 *  A small stack machine, as pickle itself is: values are pushed, MARK
 *  remembers a stack depth, SETITEMS/APPENDS/TUPLE consume down to the
 *  mark.  The memo holds references, so a dict that is memoized and then
 *  filled is the complete dict when fetched again; a fetched container is
 *  a copy, though, because JSON values are reference counted trees: a
 *  shared one would let a recursive pickle build a cycle (never freed) and
 *  a chain of doubled references a value exponentially larger than its
 *  frame.  Only the containers are copied, and their cost (one unit per
 *  value, one per COPY_KEY_BYTES of dict key, since jansson copies keys)
 *  is counted against MAX_COPIED; strings and other scalars are shared, so
 *  a long string fetched a thousand times is held once.
 *
 *  Bytes that are UTF-8 become text, as the coordinator reads them; other
 *  bytes become {"base64": "..."}: lossless, 4/3 of their size, and still
 *  not a string, so they are never mistaken for a transcription.  (They
 *  were once a list with one JSON integer per byte, 20 to 26 times the
 *  frame in memory.)  Each stack entry
 *  carries its nesting depth, because TUPLE1 wraps the top in a new list in
 *  one byte, and every consumer of the value (jansson's encoder and
 *  destructor among them) recurses once per level.  Limits (stack depth,
 *  nesting, memo size, copies, integer width) keep a hostile frame from
 *  costing more than its length; a LONG1 wider than 8 bytes is refused
 *  rather than rounded. */
#include "pickle.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK 4096
#define MAX_MEMO 65536
#define MAX_COPIED 100000       /* cost of the containers copied out of the memo, per frame */
#define COPY_KEY_BYTES 64
#define MAX_NEST 1000           /* Python's own default recursion limit */
#define MARK_SENTINEL ((json_t *)&mark_sentinel)

static const int mark_sentinel = 0;

typedef struct {
    const unsigned char *p, *end;
    json_t *stack[MAX_STACK];
    int nest[MAX_STACK];        /* nesting depth of each entry: 0 for a scalar */
    int depth;
    json_t **memo;
    size_t memo_len, memo_cap;
    size_t copied;
    char *err;
    size_t errlen;
} pk_t;

static int fail(pk_t *k, const char *why)
{
    snprintf(k->err, k->errlen, "%s", why);
    return -1;
}

static int need(pk_t *k, size_t n)
{
    return (size_t)(k->end - k->p) >= n ? 0 : fail(k, "truncated pickle");
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int push(pk_t *k, json_t *v)
{
    if (!v)
        return fail(k, "out of memory");
    if (k->depth == MAX_STACK) {
        if (v != MARK_SENTINEL)
            json_decref(v);
        return fail(k, "pickle nests too deep");
    }
    k->nest[k->depth] = v != MARK_SENTINEL && (json_is_array(v) || json_is_object(v));
    k->stack[k->depth++] = v;
    return 0;
}

/* The deepest of the entries from..to-1 (popped entries keep their depth
 * until overwritten). */
static int nest_of(pk_t *k, int from, int to)
{
    int deepest = 0;
    for (int i = from; i < to; i++)
        if (k->nest[i] > deepest)
            deepest = k->nest[i];
    return deepest;
}

/* After values of depth `inner` went into the top container (rc 0). */
static int deepen(pk_t *k, int rc, int inner)
{
    if (rc < 0)
        return -1;
    int *top_nest = &k->nest[k->depth - 1];
    if (inner + 1 > *top_nest)
        *top_nest = inner + 1;
    return *top_nest > MAX_NEST ? fail(k, "pickle nests too deep") : 0;
}

static json_t *top(pk_t *k)
{
    return k->depth && k->stack[k->depth - 1] != MARK_SENTINEL ? k->stack[k->depth - 1] : NULL;
}

static int mark_at(pk_t *k)
{
    for (int i = k->depth - 1; i >= 0; i--)
        if (k->stack[i] == MARK_SENTINEL)
            return i;
    return -1;
}

static int text(pk_t *k, size_t n, int as_bytes)
{
    if (need(k, n) < 0)
        return -1;
    json_t *s = json_stringn((const char *)k->p, n);
    if (!s && as_bytes) {
        size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(len);
        if (!b64)
            return fail(k, "out of memory");
        sodium_bin2base64(b64, len, k->p, n, sodium_base64_VARIANT_ORIGINAL);
        s = json_pack("{s:s}", "base64", b64);
        free(b64);
        if (!s)
            return fail(k, "out of memory");
    }
    if (!s)
        return fail(k, "string is not valid UTF-8");
    k->p += n;
    return push(k, s);
}

static int memo_put(pk_t *k, size_t index)
{
    json_t *v = top(k);
    if (!v)
        return fail(k, "memoize with an empty stack");
    if (index >= MAX_MEMO)
        return fail(k, "memo index too large");
    if (index >= k->memo_cap) {
        size_t cap = k->memo_cap ? k->memo_cap : 16;
        while (cap <= index)
            cap *= 2;
        k->memo = realloc(k->memo, cap * sizeof *k->memo);
        memset(k->memo + k->memo_cap, 0, (cap - k->memo_cap) * sizeof *k->memo);
        k->memo_cap = cap;
    }
    json_decref(k->memo[index]);
    k->memo[index] = json_incref(v);
    if (index >= k->memo_len)
        k->memo_len = index + 1;
    return 0;
}

/* The cost of copying v's containers, counting no further than limit + 1. */
static size_t copy_cost(json_t *v, size_t limit)
{
    size_t n = 1;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && n <= limit; i++)
            n += copy_cost(json_array_get(v, i), limit - n);
    } else if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item) {
            if (n > limit)
                break;
            n += strlen(key) / COPY_KEY_BYTES;
            if (n <= limit)
                n += copy_cost(item, limit - n);
        }
    }
    return n;
}

/* A copy of v's containers that shares its scalars (a new reference). */
static json_t *copy_containers(json_t *v)
{
    if (json_is_array(v)) {
        json_t *copy = json_array();
        for (size_t i = 0; i < json_array_size(v); i++)
            json_array_append_new(copy, copy_containers(json_array_get(v, i)));
        return copy;
    }
    if (json_is_object(v)) {
        json_t *copy = json_object();
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item)
            json_object_set_new(copy, key, copy_containers(item));
        return copy;
    }
    return json_incref(v);
}

/* Nesting depth of v, which is never deeper than MAX_NEST + 1. */
static int nest_depth(json_t *v)
{
    int deepest = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = nest_depth(json_array_get(v, i));
            deepest = d > deepest ? d : deepest;
        }
    } else if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach(v, key, item) {
            int d = nest_depth(item);
            deepest = d > deepest ? d : deepest;
        }
    } else {
        return 0;
    }
    return deepest + 1;
}

static int memo_get(pk_t *k, size_t index)
{
    if (index >= k->memo_len || !k->memo[index])
        return fail(k, "memo index not set");
    json_t *v = k->memo[index];
    if (!json_is_array(v) && !json_is_object(v))
        return push(k, json_incref(v));
    size_t n = copy_cost(v, MAX_COPIED - k->copied);
    if (n > MAX_COPIED - k->copied)
        return fail(k, "memo references expand too far");
    k->copied += n;
    if (push(k, copy_containers(v)) < 0)
        return -1;
    k->nest[k->depth - 1] = nest_depth(v);
    return 0;
}

/* Pops down to the mark into a new array (the items in order). */
static json_t *pop_to_mark(pk_t *k)
{
    int m = mark_at(k);
    if (m < 0)
        return NULL;
    json_t *items = json_array();
    for (int i = m + 1; i < k->depth; i++)
        json_array_append_new(items, k->stack[i]);
    k->depth = m;
    return items;
}

static int set_items(pk_t *k, json_t *items)
{
    json_t *dict = top(k);
    if (!json_is_object(dict) || json_array_size(items) % 2) {
        json_decref(items);
        return fail(k, "SETITEMS without a dict");
    }
    for (size_t i = 0; i < json_array_size(items); i += 2) {
        const char *key = json_string_value(json_array_get(items, i));
        if (!key) {
            json_decref(items);
            return fail(k, "dict key is not a string");
        }
        json_object_set(dict, key, json_array_get(items, i + 1));
    }
    json_decref(items);
    return 0;
}

static int append_items(pk_t *k, json_t *items)
{
    json_t *list = top(k);
    if (!json_is_array(list)) {
        json_decref(items);
        return fail(k, "APPENDS without a list");
    }
    json_array_extend(list, items);
    json_decref(items);
    return 0;
}

/* Pops the top n values into a new array.  The mark check comes first:
 * the array steals each value, so refusing halfway would free values that
 * are still on the stack. */
static int tuple_n(pk_t *k, int n)
{
    if (k->depth < n)
        return fail(k, "stack underflow");
    for (int i = k->depth - n; i < k->depth; i++)
        if (k->stack[i] == MARK_SENTINEL)
            return fail(k, "tuple over a mark");
    int inner = nest_of(k, k->depth - n, k->depth);
    json_t *t = json_array();
    for (int i = k->depth - n; i < k->depth; i++)
        json_array_append_new(t, k->stack[i]);
    k->depth -= n;
    return deepen(k, push(k, t), inner);
}

static int long1(pk_t *k)
{
    if (need(k, 1) < 0)
        return -1;
    int n = *k->p++;
    if (n > 8)
        return fail(k, "integer wider than 64 bits");
    if (need(k, (size_t)n) < 0)
        return -1;
    uint64_t v = n ? le(k->p, n) : 0;
    if (n && n < 8 && (k->p[n - 1] & 0x80))
        v |= ~(uint64_t)0 << (8 * n);
    k->p += n;
    return push(k, json_integer((json_int_t)(int64_t)v));
}

static int binfloat(pk_t *k)
{
    if (need(k, 8) < 0)
        return -1;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = (bits << 8) | k->p[i];
    double d;
    memcpy(&d, &bits, sizeof d);
    k->p += 8;
    return push(k, json_real(d));
}

static int sized(pk_t *k, int width, uint64_t *n)
{
    if (need(k, (size_t)width) < 0)
        return -1;
    *n = le(k->p, width);
    k->p += width;
    return 0;
}

/* One opcode; 1 at STOP. */
static int step(pk_t *k)
{
    if (need(k, 1) < 0)
        return -1;
    unsigned char op = *k->p++;
    uint64_t n;
    switch (op) {
    case 0x80: /* PROTO */
        if (need(k, 1) < 0)
            return -1;
        if (*k->p < 2 || *k->p > 5)
            return fail(k, "unsupported pickle protocol");
        k->p++;
        return 0;
    case 0x95: /* FRAME */
        return sized(k, 8, &n);
    case '.': /* STOP */
        return 1;
    case '(': return push(k, MARK_SENTINEL);
    case '}': return push(k, json_object());
    case ']': return push(k, json_array());
    case ')': return push(k, json_array());
    case 'N': return push(k, json_null());
    case 0x88: return push(k, json_true());
    case 0x89: return push(k, json_false());
    case 'K': return sized(k, 1, &n) < 0 ? -1 : push(k, json_integer((json_int_t)n));
    case 'M': return sized(k, 2, &n) < 0 ? -1 : push(k, json_integer((json_int_t)n));
    case 'J': return sized(k, 4, &n) < 0 ? -1 : push(k, json_integer((int32_t)(uint32_t)n));
    case 0x8a: return long1(k);
    case 'G': return binfloat(k);
    case 0x8c: return sized(k, 1, &n) < 0 ? -1 : text(k, n, 0);  /* SHORT_BINUNICODE */
    case 'X': return sized(k, 4, &n) < 0 ? -1 : text(k, n, 0);   /* BINUNICODE */
    case 0x8d: return sized(k, 8, &n) < 0 ? -1 : text(k, n, 0);  /* BINUNICODE8 */
    case 'C': return sized(k, 1, &n) < 0 ? -1 : text(k, n, 1);   /* SHORT_BINBYTES */
    case 'B': return sized(k, 4, &n) < 0 ? -1 : text(k, n, 1);   /* BINBYTES */
    case 0x8e: return sized(k, 8, &n) < 0 ? -1 : text(k, n, 1);  /* BINBYTES8 */
    case 0x94: return memo_put(k, k->memo_len);                  /* MEMOIZE */
    case 'q': return sized(k, 1, &n) < 0 ? -1 : memo_put(k, n);  /* BINPUT */
    case 'r': return sized(k, 4, &n) < 0 ? -1 : memo_put(k, n);  /* LONG_BINPUT */
    case 'h': return sized(k, 1, &n) < 0 ? -1 : memo_get(k, n);  /* BINGET */
    case 'j': return sized(k, 4, &n) < 0 ? -1 : memo_get(k, n);  /* LONG_BINGET */
    case 's': /* SETITEM */
        if (k->depth < 3 || !top(k) || k->stack[k->depth - 2] == MARK_SENTINEL)
            return fail(k, "stack underflow");
        k->depth -= 2;
        return deepen(k, set_items(k, json_pack("[o,o]", k->stack[k->depth], k->stack[k->depth + 1])),
                      nest_of(k, k->depth, k->depth + 2));
    case 'u': { /* SETITEMS */
        int inner = nest_of(k, mark_at(k) + 1, k->depth);
        json_t *items = pop_to_mark(k);
        return items ? deepen(k, set_items(k, items), inner) : fail(k, "SETITEMS without a mark");
    }
    case 'a': /* APPEND */
        if (k->depth < 2 || !top(k))
            return fail(k, "stack underflow");
        k->depth--;
        return deepen(k, append_items(k, json_pack("[o]", k->stack[k->depth])),
                      k->nest[k->depth]);
    case 'e': { /* APPENDS */
        int inner = nest_of(k, mark_at(k) + 1, k->depth);
        json_t *items = pop_to_mark(k);
        return items ? deepen(k, append_items(k, items), inner) : fail(k, "APPENDS without a mark");
    }
    case 't': { /* TUPLE */
        int inner = nest_of(k, mark_at(k) + 1, k->depth);
        json_t *items = pop_to_mark(k);
        return items ? deepen(k, push(k, items), inner) : fail(k, "TUPLE without a mark");
    }
    case 0x85: return tuple_n(k, 1);
    case 0x86: return tuple_n(k, 2);
    case 0x87: return tuple_n(k, 3);
    case '0': /* POP */
        if (!top(k))
            return fail(k, "stack underflow");
        json_decref(k->stack[--k->depth]);
        return 0;
    default: {
        char why[64];
        snprintf(why, sizeof why, "pickle opcode 0x%02x is not plain data", op);
        return fail(k, why);
    }
    }
}

json_t *pickle_decode(const void *data, size_t len, char *err, size_t errlen)
{
    pk_t *k = calloc(1, sizeof *k);
    k->p = data;
    k->end = k->p + len;
    k->err = err;
    k->errlen = errlen;
    int rc;
    while ((rc = step(k)) == 0)
        ;
    json_t *result = NULL;
    if (rc == 1) {
        if (k->depth == 1 && k->stack[0] != MARK_SENTINEL)
            result = json_incref(k->stack[0]);
        else
            fail(k, "pickle does not end with one value");
    }
    for (int i = 0; i < k->depth; i++)
        if (k->stack[i] != MARK_SENTINEL)
            json_decref(k->stack[i]);
    for (size_t i = 0; i < k->memo_len; i++)
        json_decref(k->memo[i]);
    free(k->memo);
    free(k);
    return result;
}
