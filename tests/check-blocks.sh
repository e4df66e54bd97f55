#!/bin/sh
# Fails when src/ does itself what one building block of src/common/ is
# there to do, so that the block's guarantees cannot be forgotten.  Run by
# `make unit`.
#
#   pthread_create(          src/common/actor.c   every loop stops at once,
#                                                 beats its liveness stamp
#   zmq_socket(              src/common/zsocket.c CURVE and frame caps
#   fork( posix_spawn exec*( src/common/child.*   reaping, capture, backoff
#   an HTTP request or
#   status line in a string  src/common/          one client (gather.c)
root=${1:-.}
failed=0

# check NAME ALLOWED REGEX: ALLOWED is a path prefix under src/.
check() {
    found=$(grep -rnE --include='*.c' --include='*.h' "$3" "$root/src" \
            | grep -v "^$root/$2")
    if [ -n "$found" ]; then
        echo "FAILED: $1 outside $2:"
        echo "$found"
        failed=1
    fi
}

check "pthread_create(" src/common/actor.c '\bpthread_create[[:space:]]*\('
check "zmq_socket(" src/common/zsocket.c '\bzmq_socket[[:space:]]*\('
check "a child process" src/common/child. \
    '\b(v?fork|posix_spawnp?|exec(l|lp|le|v|vp|ve|vpe))[[:space:]]*\('
check "a hand-written HTTP request" src/common/ \
    '"[^"]*HTTP/1\.|"(GET|HEAD|POST|PUT|DELETE|PATCH) /'
[ "$failed" -eq 0 ] || exit 1
echo "blocks: threads, ZMQ sockets, child processes and HTTP requests in src/ come from src/common/"
