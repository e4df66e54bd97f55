/*  prom: see prom.h. */
#include "prom.h"
#include "gather.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new string: `in` with everything but unreserved characters escaped. */
static char *url_encode(const char *in)
{
    char *out = malloc(3 * strlen(in) + 1), *o = out;
    for (; *in; in++) {
        if (isalnum((unsigned char)*in) || strchr("-_.~", *in))
            *o++ = *in;
        else
            o += sprintf(o, "%%%02X", (unsigned char)*in);
    }
    *o = '\0';
    return out;
}

/* The value of the first result of a query's reply; -1 when there is none. */
static int first_value(const gather_call_t *call, double *out)
{
    if (call->http_status != 200)
        return -1;
    json_t *doc = gather_reply_json(call);
    json_t *result = json_object_get(json_object_get(doc, "data"), "result");
    json_t *value = json_array_get(json_object_get(json_array_get(result, 0), "value"), 1);
    const char *text = json_string_value(value);
    char *end = NULL;
    double v = text ? strtod(text, &end) : 0;
    int rc = text && end != text ? 0 : -1;
    if (rc == 0)
        *out = v;
    json_decref(doc);
    return rc;
}

size_t prom_query(const char *base_url, const char *const *queries, double *values, size_t n,
                  double timeout_s)
{
    if (strncmp(base_url, "http://", 7) != 0)
        return 0;
    int base_len = (int)strlen(base_url);
    if (base_url[base_len - 1] == '/')
        base_len--;
    gather_call_t *calls = calloc(n ? n : 1, sizeof *calls);
    char **urls = calloc(n ? n : 1, sizeof *urls);
    for (size_t i = 0; i < n; i++) {
        char *encoded = url_encode(queries[i]);
        if (asprintf(&urls[i], "%.*s/api/v1/query?query=%s", base_len, base_url, encoded) < 0)
            urls[i] = NULL;
        free(encoded);
        calls[i] = (gather_call_t){ .url = urls[i] };
    }
    gather_run(calls, n, (int)(timeout_s * 1000));
    size_t answered = 0;
    for (size_t i = 0; i < n; i++) {
        answered += first_value(&calls[i], &values[i]) == 0;
        free(urls[i]);
    }
    gather_clear(calls, n);
    free(calls);
    free(urls);
    return answered;
}
