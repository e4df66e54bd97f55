/*  test_sdnotify: the datagrams systemd would receive, on a socket the test
 *  binds itself (a path, and the abstract namespace), the watchdog period
 *  read from WATCHDOG_USEC only when WATCHDOG_PID is this process, and the
 *  variables removed so that children never inherit them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

/* A datagram socket bound to `name` (a path, or "@..." abstract). */
static int bind_socket(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    memcpy(addr.sun_path, name, len);
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    assert_int_equal(bind(fd, (struct sockaddr *)&addr,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void expect(int fd, const char *text)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, text);
}

static void test_path_socket_and_watchdog(void **state)
{
    (void)state;
    char dir[] = "/tmp/keel-test-notify-XXXXXX", path[96], pid[32];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = bind_socket(path);
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    sdnotify_t *n = sdnotify_new();
    assert_null(getenv("NOTIFY_SOCKET"));
    assert_null(getenv("WATCHDOG_USEC"));
    assert_null(getenv("WATCHDOG_PID"));
    assert_true(sdnotify_watchdog_s(n) == 3.0);
    assert_int_equal(sdnotify_send(n, "READY=1\nSTATUS=Running"), 0);
    assert_int_equal(sdnotify_send(n, "WATCHDOG=1"), 0);
    expect(fd, "READY=1\nSTATUS=Running");
    expect(fd, "WATCHDOG=1");
    sdnotify_destroy(&n);
    assert_null(n);
    close(fd);
    unlink(path);
    rmdir(dir);
}

static void test_abstract_socket_and_foreign_watchdog(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@keel-test-notify-%d", (int)getpid());
    int fd = bind_socket(name);
    setenv("NOTIFY_SOCKET", name, 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    setenv("WATCHDOG_PID", "1", 1);         /* meant for another process */
    sdnotify_t *n = sdnotify_new();
    assert_true(sdnotify_watchdog_s(n) == 0);
    assert_int_equal(sdnotify_send(n, "STOPPING=1"), 0);
    expect(fd, "STOPPING=1");
    sdnotify_destroy(&n);
    close(fd);
}

static void test_outside_systemd_nothing_is_sent(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    setenv("WATCHDOG_USEC", "3000000", 1);
    sdnotify_t *n = sdnotify_new();
    assert_non_null(n);
    assert_int_equal(sdnotify_send(n, "READY=1"), -1);
    assert_true(sdnotify_watchdog_s(n) == 0);
    sdnotify_destroy(&n);
    setenv("NOTIFY_SOCKET", "relative/path", 1);   /* not a socket address systemd gives */
    n = sdnotify_new();
    assert_int_equal(sdnotify_send(n, "READY=1"), -1);
    sdnotify_destroy(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket_and_watchdog),
        cmocka_unit_test(test_abstract_socket_and_foreign_watchdog),
        cmocka_unit_test(test_outside_systemd_nothing_is_sent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
