/*  test_gpu: gpu.c against tests/fake/fake_nvml.c, chosen through
 *  KEEL_NVML_LIB.  The fake's path comes from KEEL_FAKE_NVML (set by
 *  tests/run-unit.sh) and defaults to the one `make` builds, relative to
 *  the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024ULL * 1024ULL)
#define assert_near(a, b) do { \
        double a_ = (a), b_ = (b); \
        if (!(a_ - b_ < 1e-9 && b_ - a_ < 1e-9)) \
            fail_msg("%.12f != %.12f", a_, b_); \
    } while (0)
#define TWO_GPUS "NVIDIA GeForce RTX 4090:24564:20000:35,NVIDIA GeForce RTX 3060:12288:1000:5"

typedef struct {
    char dir[64];
    char state_file[96];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/keel-gpu-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->state_file, sizeof fx->state_file, "%s/vram", fx->dir);
    const char *fake = getenv("KEEL_FAKE_NVML");
    setenv("KEEL_NVML_LIB", fake && *fake ? fake : "build/tests/libfake-nvml.so", 1);
    setenv("FAKE_NVML_DEVICES", TWO_GPUS, 1);
    unsetenv("FAKE_NVML_FAIL_INIT");
    unsetenv("FAKE_NVML_UNSUPPORTED");
    unsetenv("FAKE_NVML_STATE_FILE");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    unlink(fx->state_file);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_state(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_two_devices(void **state)
{
    (void) state;
    gpu_t *gpu = gpu_new();
    assert_non_null(gpu);
    assert_true(gpu_available(gpu));
    assert_int_equal(gpu_count(gpu), 2);
    assert_string_equal(gpu_error(gpu), "");

    gpu_device_t d;
    assert_int_equal(gpu_device(gpu, 0, &d), 0);
    assert_int_equal(d.index, 0);
    assert_string_equal(d.name, "NVIDIA GeForce RTX 4090");
    assert_string_equal(d.uuid, "GPU-00000000-0000-0000-0000-000000000000");
    assert_true(d.mem_total_bytes == 24564 * MIB);
    assert_true(d.mem_used_bytes == 20000 * MIB);
    assert_true(d.mem_free_bytes == 4564 * MIB);
    assert_near(d.mem_percent, 100.0 * 20000 / 24564);
    assert_int_equal(d.util_gpu_percent, 35);
    assert_int_equal(d.util_mem_percent, 17);
    assert_int_equal(d.temperature_c, 40);

    assert_int_equal(gpu_device(gpu, 1, &d), 0);
    assert_int_equal(d.index, 1);
    assert_string_equal(d.name, "NVIDIA GeForce RTX 3060");
    assert_true(d.mem_total_bytes == 12288 * MIB);
    assert_true(d.mem_used_bytes == 1000 * MIB);
    assert_true(d.mem_free_bytes == 11288 * MIB);
    assert_near(d.mem_percent, 100.0 * 1000 / 12288);
    assert_int_equal(d.util_gpu_percent, 5);
    assert_int_equal(d.temperature_c, 41);

    gpu_destroy(&gpu);
    assert_null(gpu);
}

static void test_index_out_of_range(void **state)
{
    (void) state;
    gpu_t *gpu = gpu_new();
    assert_true(gpu_available(gpu));
    gpu_device_t d;
    assert_int_equal(gpu_device(gpu, 2, &d), -1);
    assert_int_equal(gpu_device(gpu, -1, &d), -1);
    assert_int_equal(gpu_device(gpu, 1000, &d), -1);
    gpu_destroy(&gpu);
}

static void test_missing_library(void **state)
{
    fixture_t *fx = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/libnvidia-ml.so.1", fx->dir);
    setenv("KEEL_NVML_LIB", path, 1);
    gpu_t *gpu = gpu_new();
    assert_non_null(gpu);
    assert_false(gpu_available(gpu));
    assert_int_equal(gpu_count(gpu), 0);
    assert_non_null(strstr(gpu_error(gpu), path));
    assert_non_null(strstr(gpu_error(gpu), "not found"));
    gpu_device_t d;
    assert_int_equal(gpu_device(gpu, 0, &d), -1);
    gpu_destroy(&gpu);
}

static void test_library_without_nvml(void **state)
{
    (void) state;
    setenv("KEEL_NVML_LIB", "libm.so.6", 1);
    gpu_t *gpu = gpu_new();
    assert_false(gpu_available(gpu));
    assert_int_equal(gpu_count(gpu), 0);
    assert_string_equal(gpu_error(gpu), "NVML symbol nvmlInit_v2 not found");
    gpu_destroy(&gpu);
}

static void test_init_failure(void **state)
{
    (void) state;
    setenv("FAKE_NVML_FAIL_INIT", "1", 1);
    gpu_t *gpu = gpu_new();
    assert_false(gpu_available(gpu));
    assert_int_equal(gpu_count(gpu), 0);
    assert_string_equal(gpu_error(gpu), "nvmlInit_v2 failed: Driver Not Loaded");
    gpu_device_t d;
    assert_int_equal(gpu_device(gpu, 0, &d), -1);
    gpu_destroy(&gpu);
}

static void test_no_devices(void **state)
{
    (void) state;
    setenv("FAKE_NVML_DEVICES", "", 1);
    gpu_t *gpu = gpu_new();
    assert_false(gpu_available(gpu));
    assert_int_equal(gpu_count(gpu), 0);
    assert_string_equal(gpu_error(gpu), "no NVIDIA GPU found");
    gpu_destroy(&gpu);
}

static void test_state_file_changes_are_seen(void **state)
{
    fixture_t *fx = *state;
    setenv("FAKE_NVML_STATE_FILE", fx->state_file, 1);
    write_state(fx->state_file, "1000\n2000\n");
    gpu_t *gpu = gpu_new();
    gpu_device_t d0, d1;
    assert_int_equal(gpu_device(gpu, 0, &d0), 0);
    assert_int_equal(gpu_device(gpu, 1, &d1), 0);
    assert_true(d0.mem_used_bytes == 1000 * MIB);
    assert_true(d1.mem_used_bytes == 2000 * MIB);
    assert_true(d1.mem_free_bytes == 10288 * MIB);

    write_state(fx->state_file, "24000\n100\n");
    assert_int_equal(gpu_device(gpu, 0, &d0), 0);
    assert_int_equal(gpu_device(gpu, 1, &d1), 0);
    assert_true(d0.mem_used_bytes == 24000 * MIB);
    assert_near(d0.mem_percent, 100.0 * 24000 / 24564);
    assert_true(d1.mem_used_bytes == 100 * MIB);

    assert_int_equal(unlink(fx->state_file), 0);
    assert_int_equal(gpu_device(gpu, 0, &d0), 0);
    assert_true(d0.mem_used_bytes == 20000 * MIB);
    gpu_destroy(&gpu);
}

static void test_unsupported_optional_figures(void **state)
{
    (void) state;
    setenv("FAKE_NVML_UNSUPPORTED", "1", 1);
    gpu_t *gpu = gpu_new();
    assert_true(gpu_available(gpu));
    gpu_device_t d;
    assert_int_equal(gpu_device(gpu, 1, &d), 0);
    assert_string_equal(d.name, "NVIDIA GeForce RTX 3060");
    assert_string_equal(d.uuid, "");
    assert_int_equal(d.util_gpu_percent, -1);
    assert_int_equal(d.util_mem_percent, -1);
    assert_int_equal(d.temperature_c, -1);
    assert_true(d.mem_used_bytes == 1000 * MIB);
    gpu_destroy(&gpu);
}

/* Whatever this machine has: the answers must agree with each other. */
static void test_system_library_is_consistent(void **state)
{
    (void) state;
    unsetenv("KEEL_NVML_LIB");
    gpu_t *gpu = gpu_new();
    assert_non_null(gpu);
    if (gpu_available(gpu)) {
        assert_true(gpu_count(gpu) > 0);
        assert_string_equal(gpu_error(gpu), "");
        gpu_device_t d;
        assert_int_equal(gpu_device(gpu, 0, &d), 0);
        assert_true(d.mem_total_bytes > 0);
        assert_true(d.mem_used_bytes <= d.mem_total_bytes);
    } else {
        assert_int_equal(gpu_count(gpu), 0);
        assert_true(strlen(gpu_error(gpu)) > 0);
    }
    gpu_destroy(&gpu);
    gpu_destroy(&gpu);
    gpu_destroy(NULL);
    assert_null(gpu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_library, setup, teardown),
        cmocka_unit_test_setup_teardown(test_library_without_nvml, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_file_changes_are_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_optional_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_library_is_consistent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
