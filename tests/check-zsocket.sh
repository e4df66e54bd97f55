#!/bin/sh
# Fails when a ZMQ socket is made anywhere in src/ but the factory
# (src/common/zsocket.c): a socket made elsewhere would escape SECURE_ZMQ's
# CURVE and the frame caps.  Run by `make unit`.
root=${1:-.}
found=$(grep -rn --include='*.c' --include='*.h' -E '\bzmq_socket[[:space:]]*\(' "$root/src" \
        | grep -v "^$root/src/common/zsocket\.c:")
if [ -n "$found" ]; then
    echo "FAILED: zmq_socket( outside src/common/zsocket.c (use zsocket_new):"
    echo "$found"
    exit 1
fi
echo "zsocket: every ZMQ socket in src/ is made by src/common/zsocket.c"
