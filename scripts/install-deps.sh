#!/bin/sh
# Installs the Debian packages Keel needs, only when one is missing, so a
# second run is silent and fast.  Needs root (or sudo) only when something
# is actually missing.
#
#   sh scripts/install-deps.sh          what building and running need
#   sh scripts/install-deps.sh --test   that, plus what the tests, the
#                                       benchmarks and the package build need
set -e

# Building keeld and keelctl (python3 compiles the dashboard in, with
# Chart.js from libjs-chart.js) and running them: the -dev packages bring
# the shared libraries with them.
PACKAGES="build-essential pkg-config python3 libzmq3-dev
libjansson-dev libsqlite3-dev libhiredis-dev libnats-dev
libsodium-dev libyaml-dev libjs-chart.js"

# Unit tests (cmocka), integration tests (pytest + pyzmq acting as the
# agents), the peers the benchmarks and fault tests run beside Keel (Redis,
# NATS, beanstalkd, node-exporter), promtool, valgrind, the dashboard in
# Chromium, the fuzz targets (clang), and the Debian package (debhelper,
# lintian; man-db and logrotate check its manual pages and logrotate file).
TEST_PACKAGES="libcmocka-dev python3-zmq python3-yaml python3-pytest
python3-pytest-xdist python3-pytest-timeout beanstalkd prometheus-node-exporter
redis-server redis-tools nats-server prometheus sqlite3 valgrind curl iproute2
chromium nodejs clang libclang-rt-14-dev debhelper dpkg-dev fakeroot lintian
man-db logrotate"

case "${1:-}" in
    "") ;;
    --test)
        PACKAGES="$PACKAGES $TEST_PACKAGES"
        # Debian's npm conflicts with NodeSource's nodejs, which brings its own npm.
        command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
        ;;
    *)
        echo "usage: sh scripts/install-deps.sh [--test]" >&2
        exit 2
        ;;
esac

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
