/*  test_errorbus_normalise: every framing (EB-2..EB-5) and every payload
 *  dialect of spec A1.3 through the ErrorBus normaliser (EB-7..EB-10,
 *  EB-12), every severity vocabulary (EB-48), and the Sentry-style
 *  stripping behind fingerprints.  The ingress reads the common payloads
 *  without building a jansson tree (jsonscan); every payload here, and
 *  thousands of mutations of a few, must give the event the tree gives. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errorbus/normalise.h"

static const double NOW = 1752660000.0;

static event_t *parse(const char *text)
{
    char reason[256] = "";
    event_t *e = normalise_text(text, strlen(text), FRAMING_F1, NOW, reason, sizeof reason);
    if (!e)
        fprintf(stderr, "refused: %s\n", reason);
    assert_non_null(e);
    return e;
}

static json_t *context_of(event_t *e)
{
    json_t *ctx = json_loads(e->context, 0, NULL);
    assert_non_null(ctx);
    return ctx;
}

/* EB-2, EB-3, EB-4, EB-5: the three framings and the refusals. */
static void test_eb2_eb3_eb4_framings(void **state)
{
    (void)state;
    const char *body;
    size_t len;
    framing_t framing;
    char reason[128];
    const char *f1 = "ERROR:{\"a\":1}";
    const void *one[] = { f1 };
    size_t one_len[] = { strlen(f1) };
    assert_int_equal(normalise_frames(one, one_len, 1, &body, &len, &framing, reason, sizeof reason), 0);
    assert_int_equal(framing, FRAMING_F1);
    assert_int_equal(len, 7);
    assert_memory_equal(body, "{\"a\":1}", 7);

    const void *f2[] = { "ERROR:", "{}" };
    size_t f2_len[] = { 6, 2 };
    assert_int_equal(normalise_frames(f2, f2_len, 2, &body, &len, &framing, reason, sizeof reason), 0);
    assert_int_equal(framing, FRAMING_F2);
    assert_int_equal(len, 2);

    const void *f3[] = { "ERROR", "{}" };
    size_t f3_len[] = { 5, 2 };
    assert_int_equal(normalise_frames(f3, f3_len, 2, &body, &len, &framing, reason, sizeof reason), 0);
    assert_int_equal(framing, FRAMING_F3);

    const void *bad1[] = { "ERRORS{}" };
    size_t bad1_len[] = { 8 };
    assert_int_equal(normalise_frames(bad1, bad1_len, 1, &body, &len, &framing, reason, sizeof reason), -1);
    assert_non_null(strstr(reason, "prefix"));
    const void *bad2[] = { "ERRORX", "{}" };
    assert_int_equal(normalise_frames(bad2, f2_len, 2, &body, &len, &framing, reason, sizeof reason), -1);
    const void *bad3[] = { "ERROR:", "{}", "{}" };
    size_t bad3_len[] = { 6, 2, 2 };
    assert_int_equal(normalise_frames(bad3, bad3_len, 3, &body, &len, &framing, reason, sizeof reason), -1);
}

/* EB-6: bodies that are not JSON or not objects are refused with a reason. */
static void test_eb6_bad_bodies(void **state)
{
    (void)state;
    const char *bad[] = { "", "not json", "[1,2]", "\"text\"", "42", "{\"a\":" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char reason[256] = "";
        event_t *e = normalise_text(bad[i], strlen(bad[i]), FRAMING_F1, NOW, reason, sizeof reason);
        assert_null(e);
        assert_true(strlen(reason) > 0);
    }
}

/* Template / SHM / memory agents: epoch timestamp, agent, uppercase
 * severity, details with a stack trace (EB-7, EB-10, EB-12). */
static void test_eb12_template_dialect(void **state)
{
    (void)state;
    event_t *e = parse("{\"timestamp\": 1752650000.25, \"agent\": \"SystemHealthManager\","
                       " \"error_type\": \"memory_orchestrator_timeout\","
                       " \"message\": \"Health check request timed out\", \"severity\": \"ERROR\","
                       " \"details\": {\"stack_trace\": \"Traceback...\"}}");
    assert_string_equal(e->agent, "SystemHealthManager");
    assert_string_equal(e->error_type, "memory_orchestrator_timeout");
    assert_string_equal(e->severity, "ERROR");
    assert_string_equal(e->level, "error");
    assert_true(e->timestamp == 1752650000.25);
    json_t *ctx = context_of(e);
    assert_string_equal(json_string_value(json_object_get(ctx, "stack_trace")), "Traceback...");
    json_decref(ctx);
    assert_non_null(strstr(e->raw, "memory_orchestrator_timeout"));
    assert_int_equal(strncmp(e->error_id, "err-", 4), 0);
    assert_int_equal(strlen(e->error_id), 40);
    event_destroy(&e);
    assert_null(e);
}

/* learning_* / goal_manager: ISO local timestamp, lowercase severity (EB-10). */
static void test_eb10_iso_local_lowercase(void **state)
{
    (void)state;
    event_t *e = parse("{\"timestamp\": \"2025-07-16T10:00:00.500000\", \"agent\": \"GoalManager\","
                       " \"error_type\": \"goal_error\", \"message\": \"m\", \"severity\": \"warning\","
                       " \"goal_id\": 7}");
    double expect;
    assert_int_equal(clock_parse_iso("2025-07-16T10:00:00.500000", &expect), 0);
    assert_true(e->timestamp == expect);
    assert_string_equal(e->level, "warning");
    assert_string_equal(e->severity, "warning");
    event_destroy(&e);
}

/* emotion_synthesis etc.: source instead of agent, context, no error_type (EB-7, EB-8, EB-12). */
static void test_eb7_source_and_context(void **state)
{
    (void)state;
    event_t *e = parse("{\"source\": \"EmotionSynthesisAgent\", \"timestamp\": \"2025-07-16T08:00:00Z\","
                       " \"severity\": \"WARNING\", \"message\": \"x\", \"context\": {\"k\": 1}}");
    assert_string_equal(e->agent, "EmotionSynthesisAgent");
    assert_string_equal(e->error_type, "unknown");
    assert_true(e->timestamp == 1752652800.0);
    json_t *ctx = context_of(e);
    assert_int_equal(json_integer_value(json_object_get(ctx, "k")), 1);
    json_decref(ctx);
    event_destroy(&e);
}

/* stt/tts: no timestamp becomes the receive time; details merged with context (EB-10, EB-12). */
static void test_eb10_no_timestamp_merges_context(void **state)
{
    (void)state;
    event_t *e = parse("{\"agent\": \"STTService\", \"error_type\": \"stt\", \"severity\": \"error\","
                       " \"message\": \"m\", \"details\": {\"a\": 1}, \"context\": {\"b\": 2}}");
    assert_true(e->timestamp == NOW);
    json_t *ctx = context_of(e);
    assert_int_equal(json_integer_value(json_object_get(ctx, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(ctx, "b")), 2);
    json_decref(ctx);
    event_destroy(&e);
}

/* F2 template: no agent, no timestamp; request_coordinator's literal
 * "ErrorSeverity.ERROR" (EB-7, EB-9, EB-48). */
static void test_eb48_errorseverity_literal(void **state)
{
    (void)state;
    event_t *e = parse("{\"error_type\": \"dispatch_failed\", \"message\": \"boom\","
                       " \"severity\": \"ErrorSeverity.ERROR\"}");
    assert_string_equal(e->agent, "unknown");
    assert_string_equal(e->severity, "ErrorSeverity.ERROR");
    assert_string_equal(e->level, "error");
    event_destroy(&e);
}

/* F3 senders (Auth, Trust): `type` instead of error_type (EB-8). */
static void test_eb8_type_key(void **state)
{
    (void)state;
    event_t *e = parse("{\"timestamp\": \"2025-07-16T10:00:00\", \"agent\": \"AuthenticationAgent\","
                       " \"type\": \"LOGIN_ERROR\", \"message\": \"bad\", \"severity\": \"ERROR\"}");
    assert_string_equal(e->error_type, "LOGIN_ERROR");
    event_destroy(&e);
}

/* ErrorPublisher: everything under error_data, no top-level message (EB-7, EB-8). */
static void test_eb7_error_publisher(void **state)
{
    (void)state;
    event_t *e = parse("{\"message_type\": \"error_report\", \"timestamp\": \"2025-07-16T10:00:00Z\","
                       " \"error_data\": {\"error_id\": \"abc-1\", \"error_type\": \"vram\","
                       " \"severity\": \"high\", \"details\": {\"description\": \"out of vram\","
                       " \"gpu\": 0}}, \"source\": \"ModelManager\"}");
    assert_string_equal(e->agent, "ModelManager");
    assert_string_equal(e->error_type, "vram");
    assert_string_equal(e->message, "out of vram");
    assert_string_equal(e->severity, "high");
    assert_string_equal(e->level, "error");
    assert_string_equal(e->error_id, "abc-1");
    json_t *ctx = context_of(e);
    assert_int_equal(json_integer_value(json_object_get(ctx, "gpu")), 0);
    json_decref(ctx);
    event_destroy(&e);

    e = parse("{\"error_data\": {\"source\": \"Nested\", \"error_type\": \"t\"}}");
    assert_string_equal(e->agent, "Nested");
    assert_string_equal(e->severity, "ERROR");
    assert_string_equal(e->message, "");
    event_destroy(&e);
}

/* The documented format: reason and low/medium/high vocabulary. */
static void test_eb9_documented_format(void **state)
{
    (void)state;
    event_t *e = parse("{\"action\": \"report_error\", \"source\": \"X\", \"error_type\": \"t\","
                       " \"severity\": \"medium\", \"reason\": \"why\", \"details\": {}}");
    assert_string_equal(e->message, "why");
    assert_string_equal(e->level, "warning");
    event_destroy(&e);
}

/* ErrorReport model: agent_id, error_id, stack_trace kept in raw (EB-7). */
static void test_eb7_error_report_model(void **state)
{
    (void)state;
    event_t *e = parse("{\"error_id\": \"e-42\", \"agent_id\": \"ModelOrchestrator\","
                       " \"severity\": \"critical\", \"error_type\": \"crash\", \"message\": \"m\","
                       " \"timestamp\": \"2025-07-16T10:00:00\", \"context\": {},"
                       " \"stack_trace\": \"st\", \"recovery_attempted\": false}");
    assert_string_equal(e->agent, "ModelOrchestrator");
    assert_string_equal(e->error_id, "e-42");
    assert_string_equal(e->level, "critical");
    assert_non_null(strstr(e->raw, "stack_trace"));
    event_destroy(&e);
}

/* Fields of the wrong type are kept as JSON text, never a reason to lose the event. */
static void test_eb9_wrong_types_kept(void **state)
{
    (void)state;
    event_t *e = parse("{\"agent\": 12, \"error_type\": null, \"message\": {\"a\": 1},"
                       " \"severity\": 3, \"timestamp\": \"yesterday\", \"details\": \"text\"}");
    assert_string_equal(e->agent, "12");
    assert_string_equal(e->error_type, "unknown");
    assert_string_equal(e->message, "{\"a\":1}");
    assert_string_equal(e->severity, "3");
    assert_string_equal(e->level, "error");
    assert_true(e->timestamp == NOW);
    json_t *ctx = context_of(e);
    assert_string_equal(json_string_value(json_object_get(ctx, "details")), "text");
    json_decref(ctx);
    event_destroy(&e);
}

/* EB-48: every vocabulary of A1.3 maps to the canonical set. */
static void test_eb48_severity_vocabularies(void **state)
{
    (void)state;
    static const char *cases[][2] = {
        { "DEBUG", "debug" }, { "INFO", "info" }, { "WARNING", "warning" },
        { "ERROR", "error" }, { "CRITICAL", "critical" },
        { "info", "info" }, { "warning", "warning" }, { "error", "error" },
        { "critical", "critical" }, { "low", "info" }, { "medium", "warning" },
        { "high", "error" }, { "ErrorSeverity.ERROR", "error" },
        { "ErrorSeverity.WARNING", "warning" }, { "ErrorSeverity.CRITICAL", "critical" },
        { "ErrorSeverity.INFO", "info" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_string_equal(normalise_level(cases[i][0]), cases[i][1]);
    assert_null(normalise_level("bogus"));
    assert_null(normalise_level(NULL));
}

static void check_strip(const char *in, const char *want)
{
    char *got = normalise_strip(in);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "strip(%s) = %s, want %s\n", in, got, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_strip_and_fingerprint(void **state)
{
    (void)state;
    check_strip("retry 3 of 5 failed after 2500ms", "retry <n> of <n> failed after <n>ms");
    check_strip("agent7 down", "agent7 down");
    check_strip("bad pointer 0x7ffde4a1", "bad pointer <hex>");
    check_strip("request 3f2504e0-4f89-41d3-9a0c-0305e82c3301 lost", "request <id> lost");
    check_strip("cannot reach tcp://192.168.100.17:7150 now", "cannot reach <url> now");
    check_strip("peer 10.0.0.5:7120 refused", "peer <n> refused");
    check_strip("open /var/lib/keel/x.db: denied", "open <path> denied");
    check_strip("file 'C:\\models\\a.bin' missing", "file '<path>' missing");
    check_strip("  spaced   out  ", "spaced out");
    check_strip("", "");

    char reason[64];
    const char *a = "{\"agent\":\"A\",\"error_type\":\"t\",\"message\":\"timeout after 5s on port 7001\"}";
    const char *b = "{\"agent\":\"A\",\"error_type\":\"t\",\"message\":\"timeout after 9s on port 7002\"}";
    const char *c = "{\"agent\":\"B\",\"error_type\":\"t\",\"message\":\"timeout after 1s on port 7003\"}";
    event_t *ea = normalise_text(a, strlen(a), FRAMING_F1, NOW, reason, sizeof reason);
    event_t *eb = normalise_text(b, strlen(b), FRAMING_F1, NOW, reason, sizeof reason);
    event_t *ec = normalise_text(c, strlen(c), FRAMING_F1, NOW, reason, sizeof reason);
    assert_string_equal(ea->fingerprint, eb->fingerprint);
    assert_string_not_equal(ea->fingerprint, ec->fingerprint);
    assert_string_equal(ea->signature, ec->signature);
    assert_int_equal(strlen(ea->fingerprint), 16);

    size_t len;
    char *text = event_to_text(ea, &len);
    json_t *obj = json_loads(text, 0, NULL);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "agent")), "A");
    assert_int_equal(json_integer_value(json_object_get(obj, "grouping_version")),
                     NORMALISE_GROUPING_VERSION);
    assert_true(json_is_object(json_object_get(obj, "context")));
    assert_true(json_is_object(json_object_get(obj, "raw")));
    assert_int_equal(len, strlen(text));
    json_decref(obj);
    free(text);
    event_destroy(&ea);
    event_destroy(&eb);
    event_destroy(&ec);
}

static void test_payload_not_object(void **state)
{
    (void)state;
    char reason[64];
    json_t *arr = json_array();
    assert_null(normalise_payload(arr, FRAMING_REQUEST, NOW, "low", reason, sizeof reason));
    json_decref(arr);
    json_t *obj = json_pack("{s:s}", "message", "m");
    event_t *e = normalise_payload(obj, FRAMING_REQUEST, NOW, "low", reason, sizeof reason);
    assert_string_equal(e->severity, "low");
    assert_string_equal(e->level, "info");
    event_destroy(&e);
    json_decref(obj);
}

/* Found by fuzz/fuzz_normalise: a lone "/" before a quote is a one-byte
 * path that becomes the six bytes "<path>", which overflowed the 3n buffer
 * normalise_strip used to allocate. */
static void test_strip_lone_slashes(void **state)
{
    (void)state;
    /* The first "/" starts the message, not a path: a path follows no "/". */
    char message[2 * 200 + 1], expected[2 + 7 * 199 + 1] = "/'";
    for (int i = 0; i < 200; i++)
        memcpy(message + 2 * i, "/'", 2);
    for (int i = 0; i < 199; i++)
        memcpy(expected + 2 + 7 * i, "<path>'", 7);
    message[2 * 200] = '\0';
    expected[2 + 7 * 199] = '\0';
    check_strip(message, expected);
}

/* The event normalise_text makes beside the one jansson's tree makes. */
static void assert_same_as_tree(const char *text, size_t len)
{
    char reason[256];
    json_t *payload = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    event_t *mine = normalise_text(text, len, FRAMING_F1, NOW, reason, sizeof reason);
    event_t *tree = payload ? normalise_payload(payload, FRAMING_F1, NOW, "ERROR", reason,
                                                sizeof reason) : NULL;
    assert_true(!mine == !tree);
    if (mine) {
        assert_string_equal(mine->agent, tree->agent);
        assert_string_equal(mine->error_type, tree->error_type);
        assert_string_equal(mine->message, tree->message);
        assert_string_equal(mine->severity, tree->severity);
        assert_string_equal(mine->level, tree->level);
        assert_true(mine->timestamp == tree->timestamp);
        assert_true(!signbit(mine->timestamp) == !signbit(tree->timestamp));
        assert_string_equal(mine->pattern, tree->pattern);
        assert_string_equal(mine->fingerprint, tree->fingerprint);
        assert_string_equal(mine->signature, tree->signature);
        json_t *a = json_loads(mine->context, 0, NULL), *b = json_loads(tree->context, 0, NULL);
        assert_true(a && b && json_equal(a, b));
        json_decref(a);
        json_decref(b);
        assert_int_equal(strlen(mine->raw), len);
        assert_memory_equal(mine->raw, text, len);
        json_t *id = json_object_get(payload, "error_id");
        if (json_is_string(id) && *json_string_value(id) && !json_object_get(payload, "error_data"))
            assert_string_equal(mine->error_id, json_string_value(id));
    }
    event_destroy(&mine);
    event_destroy(&tree);
    json_decref(payload);
}

static const char *const dialects[] = {
    "{\"timestamp\": 1752650000.25, \"agent\": \"SystemHealthManager\", \"error_type\": \"t\","
    " \"message\": \"Health check 3 timed out after 5.5s at 0xdeadbeef\", \"severity\": \"ERROR\","
    " \"details\": {\"stack_trace\": \"Traceback...\", \"n\": [1, 2.50, -0, 1e5, null]}}",
    "{\"timestamp\": \"2025-07-16T10:00:00.500000\", \"agent\": \"GoalManager\","
    " \"severity\": \"warning\", \"goal_id\": 7}",
    "{\"source\": \"emotion\", \"severity\": \"WARNING\", \"message\": \"x\", \"context\": {\"k\": 1}}",
    "{\"agent\": \"a\", \"details\": {\"a\": 1}, \"context\": {\"b\": 2}}",
    "{\"agent_id\": \"shm\", \"type\": \"crash\", \"reason\": \"why\", \"severity\": \"high\"}",
    "{\"error_data\": {\"source\": \"m\", \"error_type\": \"e\", \"severity\": \"critical\","
    " \"details\": {\"description\": \"out of vram\"}, \"error_id\": \"abc\"}}",
    "{\"agent\": 5, \"error_type\": [1], \"message\": {\"m\": 1}, \"severity\": 3,"
    " \"timestamp\": \"yesterday\", \"details\": \"text\"}",
    "{\"agent\": null, \"source\": \"second\", \"error_type\": null, \"message\": null,"
    " \"severity\": null, \"timestamp\": null, \"details\": null}",
    "{\"agent\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\/ \\t\", \"message\": \"tab\\there\","
    " \"severity\": \"ErrorSeverity.WARNING\", \"error_id\": \"id-\\u0031\"}",
    "{\"agent\": \"first\", \"agent\": \"last\", \"\\u0061gent\": \"escaped\"}",
    "{\"timestamp\": -0, \"error_id\": \"\"}",
    "{\"timestamp\": 1752650000, \"error_id\": 12}",
    "{\"timestamp\": 1.7e9, \"details\": {}}",
    "{\"timestamp\": \"1752650000.5\", \"details\": { \"deep\" : [ [ { } ] ] } }",
    "{\"message\": \"see /var/log/x.log and https://h/p?q=1 id 123e4567-e89b-12d3-a456-426614174000\"}",
    "{\"big\": 12345678901234567890}",
    "{\"message\": \"\xff\"}",
    "{}",
};

static void test_scanned_payloads_match_the_tree(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dialects / sizeof dialects[0]; i++)
        assert_same_as_tree(dialects[i], strlen(dialects[i]));
    /* mutations of each, the same on every run (xorshift, fixed seed) */
    static const char alphabet[] = "{}[]:,\"\\u0e.-1 \n\x01\xc3\xa9" "a";
    uint32_t seed = 0x45425553;
    char text[512];
    for (size_t d = 0; d < sizeof dialects / sizeof dialects[0]; d++) {
        for (int m = 0; m < 400; m++) {
            size_t len = strlen(dialects[d]);
            memcpy(text, dialects[d], len);
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            size_t at = len ? seed % len : 0;
            char c = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            if ((seed >> 8) & 1) {
                text[at] = c;
            } else if (len + 1 < sizeof text) {
                memmove(text + at + 1, text + at, len - at);
                text[at] = c;
                len++;
            }
            assert_same_as_tree(text, len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eb2_eb3_eb4_framings),
        cmocka_unit_test(test_eb6_bad_bodies),
        cmocka_unit_test(test_eb12_template_dialect),
        cmocka_unit_test(test_eb10_iso_local_lowercase),
        cmocka_unit_test(test_eb7_source_and_context),
        cmocka_unit_test(test_eb10_no_timestamp_merges_context),
        cmocka_unit_test(test_eb48_errorseverity_literal),
        cmocka_unit_test(test_eb8_type_key),
        cmocka_unit_test(test_eb7_error_publisher),
        cmocka_unit_test(test_eb9_documented_format),
        cmocka_unit_test(test_eb7_error_report_model),
        cmocka_unit_test(test_eb9_wrong_types_kept),
        cmocka_unit_test(test_eb48_severity_vocabularies),
        cmocka_unit_test(test_strip_and_fingerprint),
        cmocka_unit_test(test_strip_lone_slashes),
        cmocka_unit_test(test_payload_not_object),
        cmocka_unit_test(test_scanned_payloads_match_the_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
