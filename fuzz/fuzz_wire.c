/*  fuzz_wire: the runtime's request dispatcher, which every service puts in
 *  front of its handlers.  Two servers with routes of every dialect (action,
 *  legacy command, coordinator type, raw) take each input: one with a raw
 *  handler and the default size limit, one without a raw handler and a
 *  small limit, so both the "Invalid JSON" and "Request too large" paths
 *  are reached.  The handlers echo what they were given, so the reply
 *  encoder sees every value the parser can produce.  The reply must always
 *  be a JSON object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

static void routes(wire_server_t *s)
{
    wire_server_on_action(s, "echo", echo_body, NULL);
    wire_server_on_action(s, "register_agent", echo_body, NULL);
    wire_server_on_action(s, "fail", refuse, NULL);
    wire_server_on_command(s, "ECHO", echo_body, NULL);
    wire_server_on_command(s, "GET_STATUS", echo_body, NULL);
    wire_server_on_type(s, echo_body, NULL);
}

static wire_server_t *with_raw, *strict;
static metrics_t *metrics;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!with_raw) {
        metrics = metrics_new();
        with_raw = wire_server_new("fuzz", metrics);
        routes(with_raw);
        wire_server_on_raw(with_raw, echo_raw, NULL);
        strict = wire_server_new("fuzz_strict", NULL);
        routes(strict);
        wire_server_set_max_request(strict, 256);
    }
    harness_check_reply(wire_server_handle(with_raw, (const char *)data, size));
    harness_check_reply(wire_server_handle(strict, (const char *)data, size));
    return 0;
}
