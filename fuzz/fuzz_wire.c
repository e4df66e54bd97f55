/*  fuzz_wire: the runtime's request dispatcher, which every service puts in
 *  front of its handlers.  Two servers with routes of every dialect (action,
 *  legacy command, coordinator type, request_type, raw) and of every
 *  privilege take each input: one with a raw handler, the default size
 *  limit and a privilege whose administrator's token is "root", one
 *  without a raw handler or a privilege and a small limit, so the "Invalid
 *  JSON", "Request too large" and "Forbidden" paths are all reached.  The handlers echo what they were given, so the reply
 *  encoder sees every value the parser can produce.  The reply must always
 *  be a JSON object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "service_harness.h"
#include "wire.h"

static json_t *echo_body(void *ctx, wire_request_t *req)
{
    (void)ctx;
    return json_pack("{s:s, s:O}", "name", req->name, "payload", req->payload);
}

static json_t *echo_raw(void *ctx, wire_request_t *req)
{
    (void)ctx;
    json_t *text = json_stringn_nocheck(req->raw, req->raw_len);
    return json_pack("{s:o}", "raw", text ? text : json_null());
}

static json_t *refuse(void *ctx, wire_request_t *req)
{
    (void)ctx;
    (void)req;
    return NULL;
}

static bool is_admin(void *ctx, const char *token)
{
    (void)ctx;
    return strcmp(token, "root") == 0;
}

static const wire_route_t routes[] = {
    { WIRE_ACTION, "echo", echo_body, NULL, ROUTE_PUBLIC },
    { WIRE_ACTION, "register_agent", echo_body, NULL, ROUTE_AGENT },
    { WIRE_ACTION, "stop_agent", echo_body, NULL, ROUTE_ADMIN },
    { WIRE_ACTION, "fail", refuse, NULL, ROUTE_PUBLIC },
    { WIRE_COMMAND, "ECHO", echo_body, NULL, ROUTE_PUBLIC },
    { WIRE_COMMAND, "GET_STATUS", echo_body, NULL, ROUTE_ADMIN },
    { WIRE_TYPE, NULL, echo_body, NULL, ROUTE_AGENT },
    { WIRE_REQUEST_TYPE, "register", echo_body, NULL, ROUTE_ADMIN },
    { 0 },
};

static const wire_route_t raw_routes[] = {
    { WIRE_RAW, NULL, echo_raw, NULL, ROUTE_PUBLIC },
    { 0 },
};

static wire_server_t *with_raw, *strict;
static metrics_t *metrics;
static privilege_t *privilege;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!with_raw) {
        metrics = metrics_new();
        privilege = privilege_new();
        privilege_set_admin_check(privilege, is_admin, NULL);
        with_raw = wire_server_new("fuzz", metrics);
        wire_server_attach(with_raw, routes, NULL);
        wire_server_attach(with_raw, raw_routes, NULL);
        wire_server_set_privilege(with_raw, privilege);
        strict = wire_server_new("fuzz_strict", NULL);
        wire_server_attach(strict, routes, NULL);
        wire_server_set_max_request(strict, 256);
    }
    harness_check_reply(wire_server_handle(with_raw, (const char *)data, size));
    harness_check_reply(wire_server_handle(strict, (const char *)data, size));
    return 0;
}
