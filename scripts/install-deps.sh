#!/bin/sh
# Installs the Debian packages Keel builds and tests with, only when one is
# missing, so a second run is silent and fast.  Needs root (or sudo) only
# when something is actually missing.
set -e

PACKAGES="build-essential pkg-config libczmq-dev libzmq3-dev libjansson-dev
libmicrohttpd-dev libsqlite3-dev libhiredis-dev libnats-dev libsodium-dev
libjwt-dev libyaml-dev libcmocka-dev python3 python3-zmq python3-pytest
python3-pytest-xdist python3-pytest-timeout beanstalkd prometheus-node-exporter
redis-server redis-tools nats-server prometheus sqlite3 valgrind curl iproute2
chromium nodejs clang libclang-rt-14-dev libjs-chart.js"
# Debian's npm conflicts with NodeSource's nodejs, which brings its own npm.
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
