/*  test_zcurve: CURVE certificate files as Keel writes and reads them.  A
 *  pair Keel writes reads back (public and secret keys, metadata) with
 *  every file mode 0600; a pair czmq wrote still reads; a pair pyzmq's zmq.auth.create_certificates
 *  writes is read by Keel with the keys zmq.auth.load_certificate sees, and
 *  a Keel pair is read by zmq.auth.load_certificate with Keel's keys (the
 *  pyzmq tests run the python3 that has pyzmq, and skip, saying so, when
 *  none has); malformed files (no key, bad Z85, a wrong length, truncated,
 *  a secret key of another pair, not ZPL) are refused with a clear reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "fsutil.h"
#include "testutil.h"
#include "zcurve.h"
#include "zpl.h"

typedef struct {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/keel-zcurve-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static char *path_in(const fixture_t *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->dir, name);
    return buf;
}

/* The Z85 text of a key, for comparing with what pyzmq prints. */
static char *z85_of(const unsigned char *key, char *buf)
{
    assert_non_null(zmq_z85_encode(buf, key, 32));
    return buf;
}

static void assert_mode(const char *path, unsigned mode)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, mode);
}

static void assert_meta(const char *path, const char *key, const char *expect)
{
    char *text = fs_read_all(path, NULL), value[128], err[256];
    assert_non_null(text);
    assert_int_equal(zpl_find(text, key, value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, expect);
    free(text);
}

static void test_keel_pair_reads_back(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    assert_int_equal(zcurve_generate(f->dir, false, err, sizeof err), 0);
    unsigned char pub[32], sec[32], public_only[32], allowed[32], client[32], client_sec[32];
    assert_int_equal(zcurve_read_cert(path_in(f, "server.key_secret", path, sizeof path), pub, sec, err,
                                      sizeof err), 0);
    assert_int_equal(zcurve_read_cert(path_in(f, "server.key", path, sizeof path), public_only, NULL, err,
                                      sizeof err), 0);
    assert_memory_equal(pub, public_only, 32);
    /* the public file holds no secret */
    assert_int_equal(zcurve_read_cert(path, public_only, sec, err, sizeof err), -1);
    assert_string_equal(err, "no curve/secret-key");
    assert_meta(path_in(f, "server.key_secret", path, sizeof path), "metadata/name", "server");
    assert_meta(path, "metadata/created-by", "keelctl certs generate");
    assert_meta(path_in(f, "server.key", path, sizeof path), "metadata/name", "server");

    assert_int_equal(zcurve_read_cert(path_in(f, "client.key_secret", path, sizeof path), client, client_sec,
                                      err, sizeof err), 0);
    assert_int_equal(zcurve_read_cert(path_in(f, "authorized_clients/client.key", path, sizeof path), allowed,
                                      NULL, err, sizeof err), 0);
    assert_memory_equal(client, allowed, 32);
    assert_memory_not_equal(client, pub, 32);

    const char *files[] = { "server.key", "server.key_secret", "client.key", "client.key_secret",
                            "authorized_clients/client.key", NULL };
    for (int i = 0; files[i]; i++)
        assert_mode(path_in(f, files[i], path, sizeof path), 0600);
    assert_mode(f->dir, 0700);
    assert_mode(path_in(f, "authorized_clients", path, sizeof path), 0700);
    assert_int_equal(access(path_in(f, "authorized_clients/client.key_secret", path, sizeof path), F_OK), -1);

    /* existing keys are kept without force, replaced with it */
    assert_int_equal(zcurve_generate(f->dir, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "--force"));
    assert_int_equal(zcurve_generate(f->dir, true, err, sizeof err), 0);
    assert_int_equal(zcurve_read_cert(path_in(f, "server.key_secret", path, sizeof path), public_only, sec,
                                      err, sizeof err), 0);
    assert_memory_not_equal(pub, public_only, 32);
}

static void test_extra_client(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128];
    unsigned char pub[32], sec[32], allowed[32];
    assert_int_equal(zcurve_generate_client(f->dir, "gpu-7", err, sizeof err), 0);
    assert_int_equal(zcurve_read_cert(path_in(f, "gpu-7.key_secret", path, sizeof path), pub, sec, err,
                                      sizeof err), 0);
    assert_mode(path, 0600);
    assert_meta(path, "metadata/name", "gpu-7");
    assert_int_equal(zcurve_read_cert(path_in(f, "authorized_clients/gpu-7.key", path, sizeof path), allowed,
                                      NULL, err, sizeof err), 0);
    assert_memory_equal(pub, allowed, 32);
    const char *refused[] = { "", "a/b", ".hidden", "say\"hi", "two\nlines", NULL };
    for (int i = 0; refused[i]; i++) {
        assert_int_equal(zcurve_generate_client(f->dir, refused[i], err, sizeof err), -1);
        assert_string_equal(err, "a client name must be a plain file name");
    }
}

/* A secret certificate czmq 4.2.1's zcert_save wrote (Keel's writer until
 * it wrote its own): the certificates of earlier installations still load. */
static void test_czmq_pair_read_by_keel(void **state)
{
    fixture_t *f = *state;
    const char *text =
        "#   ****  Generated on 2026-12-07 17:42:56 by CZMQ  ****\n"
        "#   ZeroMQ CURVE **Secret** Certificate\n"
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
        "\n"
        "metadata\n"
        "    name = \"server\"\n"
        "    created-by = \"keelctl certs generate\"\n"
        "curve\n"
        "    public-key = \"GIhc]sk)O<Za@oxr5vo2C-SE#ew%23w/.zO8yv)2\"\n"
        "    secret-key = \"L/TLNm3AkdhNhA-z@gPEez6NVW4=-^9+aMgDLX=3\"\n";
    char path[128], err[256], pub_z85[41], sec_z85[41];
    unsigned char pub[32], sec[32];
    assert_int_equal(fs_write_atomic(path_in(f, "czmq.key_secret", path, sizeof path), text, strlen(text), 0600),
                     0);
    assert_int_equal(zcurve_read_cert(path, pub, sec, err, sizeof err), 0);
    assert_string_equal(z85_of(pub, pub_z85), "GIhc]sk)O<Za@oxr5vo2C-SE#ew%23w/.zO8yv)2");
    assert_string_equal(z85_of(sec, sec_z85), "L/TLNm3AkdhNhA-z@gPEez6NVW4=-^9+aMgDLX=3");
    assert_meta(path, "metadata/created-by", "keelctl certs generate");
}

/* The python3 that has pyzmq, or NULL. */
static const char *pyzmq_python(void)
{
    const char *candidates[] = { "python3", "/usr/bin/python3", NULL };
    for (int i = 0; candidates[i]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "%s -c 'import zmq.auth' 2>/dev/null", candidates[i]);
        if (system(cmd) == 0)
            return candidates[i];
    }
    return NULL;
}

/* Runs `script` with the directory as sys.argv[1]; its first line of
 * output, in `out`. */
static void run_python(const char *python, const char *script, const char *dir, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -c '%s' '%s'", python, script, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, (int)len, p));
    assert_int_equal(pclose(p), 0);
    out[strcspn(out, "\n")] = '\0';
}

static void test_pyzmq_pair_read_by_keel(void **state)
{
    fixture_t *f = *state;
    const char *python = pyzmq_python();
    if (!python) {
        print_message("skipped: no python3 here imports zmq.auth (pyzmq)\n");
        skip();
    }
    char seen[256], err[256], path[128], pub_z85[41], sec_z85[41], public_only_z85[41], expect[256];
    run_python(python,
               "import sys, zmq.auth as a\n"
               "a.create_certificates(sys.argv[1], \"agent\", metadata={\"owner\": \"ops team\"})\n"
               "p, s = a.load_certificate(sys.argv[1] + \"/agent.key_secret\")\n"
               "q, _ = a.load_certificate(sys.argv[1] + \"/agent.key\")\n"
               "print(p.decode(), s.decode(), q.decode())",
               f->dir, seen, sizeof seen);
    unsigned char pub[32], sec[32], public_only[32];
    assert_int_equal(zcurve_read_cert(path_in(f, "agent.key_secret", path, sizeof path), pub, sec, err,
                                      sizeof err), 0);
    assert_meta(path, "metadata/owner", "ops team");
    assert_int_equal(zcurve_read_cert(path_in(f, "agent.key", path, sizeof path), public_only, NULL, err,
                                      sizeof err), 0);
    snprintf(expect, sizeof expect, "%s %s %s", z85_of(pub, pub_z85), z85_of(sec, sec_z85),
             z85_of(public_only, public_only_z85));
    assert_string_equal(seen, expect);
}

static void test_keel_pair_read_by_pyzmq(void **state)
{
    fixture_t *f = *state;
    const char *python = pyzmq_python();
    if (!python) {
        print_message("skipped: no python3 here imports zmq.auth (pyzmq)\n");
        skip();
    }
    char err[256], path[128], seen[256], expect[256], pub_z85[41], sec_z85[41];
    assert_int_equal(zcurve_generate(f->dir, false, err, sizeof err), 0);
    run_python(python,
               "import sys, zmq.auth as a\n"
               "p, s = a.load_certificate(sys.argv[1] + \"/server.key_secret\")\n"
               "q, n = a.load_certificate(sys.argv[1] + \"/server.key\")\n"
               "print(p.decode(), s.decode(), q.decode(), n)",
               f->dir, seen, sizeof seen);
    unsigned char pub[32], sec[32];
    assert_int_equal(zcurve_read_cert(path_in(f, "server.key_secret", path, sizeof path), pub, sec, err,
                                      sizeof err), 0);
    z85_of(pub, pub_z85);
    snprintf(expect, sizeof expect, "%s %s %s None", pub_z85, z85_of(sec, sec_z85), pub_z85);
    assert_string_equal(seen, expect);
}

/* Writes `text` as the file `name` and reads it as a secret certificate:
 * the reason it is refused, which must hold `reason`. */
static void assert_refused(fixture_t *f, const char *name, const char *text, size_t len, const char *reason)
{
    char path[128], err[256] = "";
    unsigned char pub[32], sec[32];
    assert_int_equal(fs_write_atomic(path_in(f, name, path, sizeof path), text, len, 0600), 0);
    assert_int_equal(zcurve_read_cert(path, pub, sec, err, sizeof err), -1);
    if (!strstr(err, reason))
        fail_msg("%s: \"%s\" does not say \"%s\"", name, err, reason);
}

#define REFUSED(name, literal, reason) assert_refused(f, name, literal, sizeof literal - 1, reason)

static void test_malformed_refused(void **state)
{
    fixture_t *f = *state;
    char err[256], path[128], good[1024];
    assert_int_equal(zcurve_generate(f->dir, false, err, sizeof err), 0);
    char *text = fs_read_all(path_in(f, "server.key_secret", path, sizeof path), NULL);
    assert_non_null(text);
    snprintf(good, sizeof good, "%s", text);
    free(text);
    char *pub = strstr(good, "public-key = \"") + 14, *sec = strstr(good, "secret-key = \"") + 14;
    char buf[1024];

    REFUSED("empty", "", "no curve/public-key");
    REFUSED("no-public", "curve\n    secret-key = \"x\"\n", "no curve/public-key");
    snprintf(buf, sizeof buf, "%.*s", (int)(strstr(good, "    secret-key") - good), good);
    assert_refused(f, "no-secret", buf, strlen(buf), "no curve/secret-key");

    snprintf(buf, sizeof buf, "%s", good);
    buf[pub - good + 3] = '~';                  /* not in Z85's alphabet */
    assert_refused(f, "bad-z85", buf, strlen(buf), "curve/public-key is not 40 Z85 characters");
    snprintf(buf, sizeof buf, "%.*s%s", (int)(sec - good) + 39, good, sec + 40);
    assert_refused(f, "short", buf, strlen(buf), "curve/secret-key is not 40 Z85 characters");
    snprintf(buf, sizeof buf, "%.*s12345%s", (int)(sec - good) + 40, good, sec + 40);
    assert_refused(f, "long", buf, strlen(buf), "curve/secret-key is not 40 Z85 characters");

    /* cut off halfway through the secret key: an unclosed quote */
    assert_refused(f, "truncated", good, (size_t)(sec - good) + 20, "a quoted value is not closed");
    assert_refused(f, "truncated-name", good, (size_t)(pub - good) - 20, "no curve/public-key");

    /* the secret key of the client pair under the server's public key */
    char *client = fs_read_all(path_in(f, "client.key_secret", path, sizeof path), NULL);
    assert_non_null(client);
    snprintf(buf, sizeof buf, "%.*s%.40s%s", (int)(sec - good), good,
             strstr(client, "secret-key = \"") + 14, sec + 40);
    free(client);
    assert_refused(f, "mismatched", buf, strlen(buf), "not the pair of its public-key");

    REFUSED("indent", "curve\n   public-key = \"x\"\n", "line 2: the indentation");
    REFUSED("tab", "curve\n\tpublic-key = \"x\"\n", "line 2: a name is expected");
    REFUSED("deep", "curve\n        public-key = \"x\"\n", "line 2: indented deeper");
    REFUSED("junk", "curve\n    public-key = \"x\" y\n", "line 2: unexpected text");
    REFUSED("nul", "curve\0\n", "NUL byte");
    REFUSED("binary", "\x01\x02\xff", "line 1: a name is expected");

    unsigned char key[32];
    assert_int_equal(zcurve_read_cert(path_in(f, "missing", path, sizeof path), key, NULL, err, sizeof err), -1);
    assert_string_equal(err, "No such file or directory");
}

static void test_zpl_forms(void **state)
{
    (void)state;
    const char *text =
        "#   a comment\n"
        "\n"
        "metadata\n"
        "    bare = two words   # and a comment\n"
        "    single = 'say \"hi\"'\n"
        "    empty =\n"
        "    section\n"
        "        deep = \"x\"\r\n"
        "curve   # a comment after a name\n"
        "    public-key = \"first\"\n"
        "    public-key = \"second\"\n";
    char value[32], err[128];
    assert_int_equal(zpl_find(text, "metadata/bare", value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, "two words");
    assert_int_equal(zpl_find(text, "metadata/empty", value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, "");
    assert_int_equal(zpl_find(text, "metadata/section/deep", value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, "x");
    assert_int_equal(zpl_find(text, "curve/public-key", value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, "first");
    assert_int_equal(zpl_find(text, "metadata/single", value, sizeof value, err, sizeof err), 0);
    assert_string_equal(value, "say \"hi\"");
    /* one bad line anywhere refuses the whole text */
    assert_int_equal(zpl_find("a = 'it''s'\nb = 1\n", "b", value, sizeof value, err, sizeof err), -1);
    assert_string_equal(err, "line 1: unexpected text after the name or its value");
    assert_int_equal(zpl_find("a = \"0123456789\"\n", "a", value, 8, err, sizeof err), -1);
    assert_string_equal(err, "line 1: the value of a is too long");
    assert_int_equal(zpl_find(text, "curve//x", value, sizeof value, err, sizeof err), -1);
    assert_string_equal(err, "curve//x is not a ZPL path");
    assert_int_equal(zpl_find(text, "metadata/deep", value, sizeof value, err, sizeof err), -1);
    assert_string_equal(err, "no metadata/deep");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keel_pair_reads_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_czmq_pair_read_by_keel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pyzmq_pair_read_by_keel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keel_pair_read_by_pyzmq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_refused, setup, teardown),
        cmocka_unit_test(test_zpl_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
