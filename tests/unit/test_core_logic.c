/*  test_core_logic: CoreOrchestrator's pure rules, without sockets: the
 *  coordinator's priority formula (CO-58, CO-59) and request validation
 *  (CO-57), language-analysis mapping, AgentRegistration validation with
 *  pydantic's lax coercion (CO-14, CO-16, CO-17), simulate_load limits and
 *  reasons (CO-38..CO-42) and heartbeat health words. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "core/coordinator.h"
#include "core/registry.h"
#include "core/twin.h"

static json_t *obj(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

static void test_co58_priority(void **state)
{
    (void)state;
    json_t *none = obj("{}"), *crit = obj("{\"urgency\":\"critical\"}");
    json_t *guest_low = obj("{\"user_type\":\"guest\",\"urgency\":\"low\"}"), *admin = obj("{\"user_type\":\"admin\"}");
    json_t *premium_high = obj("{\"user_type\":\"premium\",\"urgency\":\"high\"}");
    assert_int_equal(coordinator_priority("text_processing", NULL, none, 0, 100), 2);
    assert_int_equal(coordinator_priority("audio_processing", NULL, crit, 0, 100), 1);
    assert_int_equal(coordinator_priority("vision_processing", "u1", guest_low, 0, 100), 5);
    assert_int_equal(coordinator_priority("text_processing", NULL, admin, 0, 100), 2);
    assert_int_equal(coordinator_priority("text_processing", "", admin, 0, 100), 2);
    assert_int_equal(coordinator_priority("text_processing", "u", admin, 0, 100), 1);
    assert_int_equal(coordinator_priority("vision_processing", "u", premium_high, 0, 100), 1);
    assert_int_equal(coordinator_priority("background_task", "u", guest_low, 0, 100), 7);
    assert_int_equal(coordinator_priority("other", NULL, NULL, 0, 100), 3);
    json_decref(none);
    json_decref(crit);
    json_decref(guest_low);
    json_decref(admin);
    json_decref(premium_high);
}

static void test_co59_load_term(void **state)
{
    (void)state;
    assert_int_equal(coordinator_priority("text_processing", NULL, NULL, 80, 100), 2);
    assert_int_equal(coordinator_priority("text_processing", NULL, NULL, 81, 100), 3);
    assert_int_equal(coordinator_priority("text_processing", NULL, NULL, 8, 10), 2);
    assert_int_equal(coordinator_priority("text_processing", NULL, NULL, 9, 10), 3);
    json_t *m = obj("{\"user_type\":\"guest\",\"urgency\":\"low\"}");
    assert_int_equal(coordinator_priority("background_task", "u", m, 99, 100), 8);
    json_decref(m);
}

static void test_co57_validation(void **state)
{
    (void)state;
    char buf[256];
    json_t *ok = obj("{\"type\":\"text\",\"data\":\"hi\",\"user_id\":null,\"timestamp\":\"2025-07-16T10:00:00\"}");
    assert_null(coordinator_validate("text", ok, buf, sizeof buf));
    json_t *missing = obj("{\"type\":\"text\"}");
    const char *why = coordinator_validate("text", missing, buf, sizeof buf);
    assert_non_null(why);
    assert_non_null(strstr(why, "TextRequest"));
    assert_non_null(strstr(why, "data"));
    json_t *rate = obj("{\"audio_data\":\"x\",\"sample_rate\":\"x\"}");
    assert_non_null(coordinator_validate("audio", rate, buf, sizeof buf));
    json_t *img = obj("{\"image_data\":\"x\",\"format\":\"png\"}");
    assert_null(coordinator_validate("vision", img, buf, sizeof buf));
    json_decref(ok);
    json_decref(missing);
    json_decref(rate);
    json_decref(img);
}

static void test_language_mapping(void **state)
{
    (void)state;
    json_t *msg = obj("{\"type\":\"language_analysis\",\"transcription\":\"kumusta\",\"translated_text\":\"\","
                      "\"detected_language\":\"tl\"}");
    json_t *req = coordinator_from_language(msg);
    assert_string_equal(json_string_value(json_object_get(req, "data")), "kumusta");
    assert_true(json_is_true(json_object_get(json_object_get(req, "metadata"), "was_translated")));
    json_decref(req);
    json_t *other = obj("{\"type\":\"metrics\"}");
    assert_null(coordinator_from_language(other));
    json_decref(msg);
    json_decref(other);
}

static json_t *validate(const char *text, char *err, size_t len)
{
    json_t *in = obj(text);
    char id[64];
    json_t *rec = registry_validate(in, id, sizeof id, err, len);
    json_decref(in);
    return rec;
}

static void test_co16_registration_validation(void **state)
{
    (void)state;
    char err[1100];
    json_t *rec = validate("{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":\"1234\","
                           "\"dependencies\":[\"x\"],\"extra\":1}", err, sizeof err);
    assert_non_null(rec);
    assert_int_equal(json_integer_value(json_object_get(rec, "port")), 1234);
    assert_true(json_is_null(json_object_get(rec, "health_check_port")));
    assert_null(json_object_get(rec, "dependencies"));
    assert_int_equal(json_object_size(rec), 6);     /* + last_registered when stored: CO-17 */
    json_decref(rec);
    rec = validate("{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":7100.0,\"health_check_port\":true}",
                   err, sizeof err);
    assert_int_equal(json_integer_value(json_object_get(rec, "port")), 7100);
    assert_int_equal(json_integer_value(json_object_get(rec, "health_check_port")), 1);
    json_decref(rec);
    static const char *bad[] = {
        "{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":12.5}",
        "{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":\"abc\"}",
        "{\"agent_id\":5,\"agent_type\":\"t\",\"host\":\"h\",\"port\":1}",
        "{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":\"12a\"}",
        "{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":\"\"}",
        "{\"agent_id\":\"\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":1}",
        "{\"agent_id\":\"A\",\"agent_type\":\"t\",\"host\":\"h\",\"port\":1,\"metadata\":null}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(validate(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "validation error"));
    }
}

static void test_co14_all_problems_reported(void **state)
{
    (void)state;
    char err[1100];
    assert_null(validate("{}", err, sizeof err));
    assert_non_null(strstr(err, "4 validation errors for AgentRegistration"));
    assert_non_null(strstr(err, "agent_id"));
    assert_non_null(strstr(err, "port\n  Field required"));
}

static json_t *sim(const char *lt, double value)
{
    twin_sample_t s = { 25.0, 8000.0, 16000.0, 50.0 };
    json_t *state = json_object();
    json_t *r = twin_simulate(&s, state, lt, value, 24000, 32000);
    json_decref(state);
    return r;
}

static void test_co38_co42_simulate(void **state)
{
    (void)state;
    json_t *r = sim("vram", 15000);
    assert_string_equal(json_string_value(json_object_get(r, "reason")),
                        "Projected VRAM (23000.00MB) exceeds 95% of capacity.");
    json_decref(r);
    r = sim("vram", 14800);
    assert_string_equal(json_string_value(json_object_get(r, "recommendation")), "proceed");
    assert_null(json_object_get(r, "reason"));
    json_decref(r);
    r = sim("cpu", 70);
    assert_string_equal(json_string_value(json_object_get(r, "reason")), "Projected CPU (95.00%) exceeds 90%.");
    json_decref(r);
    r = sim("cpu", -50);
    assert_true(json_real_value(json_object_get(r, "projected_cpu_percent")) == -25.0);
    json_decref(r);
    r = sim("ram", 12800);
    assert_string_equal(json_string_value(json_object_get(r, "recommendation")), "proceed");
    json_decref(r);
    r = sim("ram", 12801);
    assert_string_equal(json_string_value(json_object_get(r, "reason")),
                        "Projected RAM (28801.00MB) exceeds 90% of capacity.");
    json_decref(r);
    r = sim("disk", 1);
    assert_string_equal(json_string_value(json_object_get(r, "error")), "Unknown load type: disk");
    assert_string_equal(json_string_value(json_object_get(r, "status")), "error");
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_co58_priority),
        cmocka_unit_test(test_co59_load_term),
        cmocka_unit_test(test_co57_validation),
        cmocka_unit_test(test_language_mapping),
        cmocka_unit_test(test_co16_registration_validation),
        cmocka_unit_test(test_co14_all_problems_reported),
        cmocka_unit_test(test_co38_co42_simulate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
