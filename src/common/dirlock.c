/*  dirlock: see dirlock.h. */
#include "dirlock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dirlock_t {
    int fd;
};

static void lock_path(const char *dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/keeld.lock", dir);
}

/* The whole file, write-locked. */
static struct flock whole_file(void)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return fl;
}

static long pid_in(int fd)
{
    char text[32] = "";
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    long pid = n > 0 ? strtol(text, NULL, 10) : 0;
    return pid > 0 ? pid : -1;
}

dirlock_t *dirlock_take(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct flock fl = whole_file();
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        if (errno == EAGAIN || errno == EACCES) {
            long pid = pid_in(fd);
            if (pid > 0)
                snprintf(err, errlen, "%s is in use by process %ld", dir, pid);
            else
                snprintf(err, errlen, "%s is in use by another process", dir);
        } else {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        }
        close(fd);
        return NULL;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    dirlock_t *self = calloc(1, sizeof *self);
    self->fd = fd;
    return self;
}

void dirlock_release(dirlock_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dirlock_t *self = *self_p;
    /* Cleared before the lock goes, so a pid read later is never stale. */
    if (ftruncate(self->fd, 0) < 0)
        log_warn("dirlock", "cannot clear the pid in a lock file: %s", strerror(errno));
    close(self->fd);
    free(self);
    *self_p = NULL;
}

long dirlock_holder(const char *dir)
{
    char path[PATH_MAX];
    lock_path(dir, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* F_OFD_GETLK asks about a write lock without taking any: a read-only
     * descriptor may ask. */
    struct flock fl = whole_file();
    long pid = 0;
    if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
        pid = pid_in(fd);
    close(fd);
    return pid;
}
