/*  fsutil: the few file-system chores services share. */
#ifndef KEEL_FSUTIL_H
#define KEEL_FSUTIL_H
#include <stddef.h>

/* mkdir -p with mode 0750; 0 or -1. */
int fs_mkdirs(const char *path);
/* Reads a whole file into a NUL-terminated buffer the caller frees; NULL on error. */
char *fs_read_all(const char *path, size_t *len_out);
/* Writes a file atomically (temp file, fsync, rename) with `mode`; 0 or -1. */
int fs_write_atomic(const char *path, const void *data, size_t len, int mode);
#endif
