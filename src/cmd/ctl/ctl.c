/*  ctl: see ctl.h. */
#include "ctl.h"
#include "token.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_endpoint(ctl_t *ctl, int base_port, char *buf, size_t len)
{
    snprintf(buf, len, "tcp://%s:%d", ctl->host, config_port(ctl->config, base_port));
}

json_t *ctl_call(ctl_t *ctl, int base_port, json_t *request)
{
    char endpoint[256], err[256];
    ctl_endpoint(ctl, base_port, endpoint, sizeof endpoint);
    json_t *reply = wire_call(endpoint, request, ctl->timeout_ms, 0, err, sizeof err);
    if (!reply)
        fprintf(stderr, "keelctl: %s\n", err);
    return reply;
}

char *ctl_admin_token(ctl_t *ctl)
{
    const char *given = getenv("KEEL_TOKEN");
    if (given && *given)
        return strdup(given);
    char path[4096];
    FILE *keys = fopen(token_keys_path(ctl->config, path, sizeof path), "r");
    if (!keys)
        return NULL;
    fclose(keys);
    json_t *scopes = json_pack("[s]", "admin");
    char *jwt = token_issue(ctl->config, "keelctl", scopes, 60);
    json_decref(scopes);
    return jwt;
}

void ctl_table(const char *const *header, size_t ncols, json_t *rows)
{
    size_t width[16] = { 0 };
    for (size_t c = 0; c < ncols && c < 16; c++)
        width[c] = strlen(header[c]);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
        for (size_t c = 0; c < ncols && c < 16; c++) {
            size_t w = strlen(json_string_value(json_array_get(row, c)) ?: "");
            if (w > width[c])
                width[c] = w;
        }
    for (size_t c = 0; c < ncols; c++)
        printf("%-*s%s", (int)width[c], header[c], c + 1 < ncols ? "  " : "\n");
    json_array_foreach(rows, i, row)
        for (size_t c = 0; c < ncols; c++)
            printf("%-*s%s", (int)width[c], json_string_value(json_array_get(row, c)) ?: "",
                   c + 1 < ncols ? "  " : "\n");
}

void ctl_print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_ENCODE_ANY);
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
