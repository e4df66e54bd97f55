#!/bin/sh
# The Debian package as a new operator meets it (issue 18): built by
# `make deb`, lintian finds no error; installed with dpkg on this machine it
# makes the keel user and its directories and marks /etc/keel/keel.yaml a
# conffile; `keeld all`, started from the installed paths as the keel user
# (there is no systemd here to start the unit), brings all five services to
# /health 200; purging leaves nothing behind: no file, no directory, no user.
#
#   sh tests/package/test_deb.sh DIR     DIR holds keel_*.deb (build/deb)
#
# Needs root (dpkg; through sudo when not root).  Runs one at a time (flock), on a port offset no other
# test uses (the integration harness stays below 30000), and refuses to
# touch a machine where keel is already installed by someone else.
set -eu

dir=$(cd "${1:?usage: test_deb.sh DIR-WITH-THE-DEB}" && pwd)
deb=$(ls -1 "$dir"/keel_*.deb | head -1)
factor=${KEEL_TIME_FACTOR:-1}
failures=0

fail() { echo "package-test: FAILED: $*" >&2; failures=$((failures + 1)); }
check() { desc=$1; shift; if "$@" >/dev/null 2>&1; then echo "package-test: ok: $desc"; else fail "$desc"; fi; }

if [ "$(id -u)" -ne 0 ]; then
    # dpkg -i and runuser need root; sudo as scripts/install-deps.sh does.
    command -v sudo >/dev/null && exec sudo KEEL_TIME_FACTOR="$factor" sh "$0" "$dir"
    echo "package-test: needs root (dpkg -i, runuser)" >&2
    exit 1
fi
exec 9>/var/lock/keel-package-test.lock
flock 9
if dpkg-query -W -f='${Status}' keel 2>/dev/null | grep -q 'ok installed'; then
    echo "package-test: keel is installed on this machine already; not touching it" >&2
    exit 1
fi

keeld_pid=""
cleanup() {
    if [ -n "$keeld_pid" ] && kill -0 "$keeld_pid" 2>/dev/null; then
        kill "$keeld_pid"
        sleep 1
        kill -9 "$keeld_pid" 2>/dev/null || true
    fi
    if dpkg-query -W -f='${Status}' keel 2>/dev/null | grep -q 'ok installed'; then
        dpkg --purge keel >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT INT TERM

# -- the package itself -------------------------------------------------------
if lintian --fail-on error "$deb" >"$dir/lintian.txt" 2>&1; then
    echo "package-test: ok: lintian reports no error ($(grep -c '^W:' "$dir/lintian.txt" || true) warnings)"
else
    cat "$dir/lintian.txt" >&2
    fail "lintian reports errors"
fi

# -- installed ------------------------------------------------------------------
dpkg -i "$deb" >"$dir/install.txt" 2>&1 || { cat "$dir/install.txt" >&2; fail "dpkg -i"; exit 1; }
check "the keel user exists" getent passwd keel
check "the keel group exists" getent group keel
check "/var/lib/keel belongs to keel" test "$(stat -c %U:%G /var/lib/keel)" = keel:keel
check "/var/log/keel belongs to keel" test "$(stat -c %U:%G /var/log/keel)" = keel:keel
conffiles=$(dpkg-query -W -f='${Conffiles}' keel)
check "/etc/keel/keel.yaml is a conffile" sh -c "echo '$conffiles' | grep -q ' /etc/keel/keel.yaml '"
check "/etc/logrotate.d/keel is a conffile" sh -c "echo '$conffiles' | grep -q ' /etc/logrotate.d/keel '"
version=$(sed -n 's/^#define KEEL_VERSION "\(.*\)"/\1/p' src/common/service.h)
check "keeld --version says $version" test "$(/usr/bin/keeld --version)" = "keeld (Keel) $version"
check "keeld(8) is installed" test -f /usr/share/man/man8/keeld.8.gz
check "keel.yaml(5) is installed" test -f /usr/share/man/man5/keel.yaml.5.gz
check "keeld(8) names version $version" sh -c "zcat /usr/share/man/man8/keeld.8.gz | grep -q '^.TH KEELD 8 \"\" \"Keel $version\"'"
for page in man/*.[158]; do
    section=${page##*.}
    check "$page is installed" test -f "/usr/share/man/man$section/${page##*/}.gz"
done
for script in deploy/completion/*; do
    [ -e "$script" ] || continue
    name=${script##*/}
    check "completion ${name%.bash} is installed" test -f "/usr/share/bash-completion/completions/${name%.bash}"
done
check "keel-all.service is installed and enabled" test -L /etc/systemd/system/multi-user.target.wants/keel-all.service
check "keel@.service is installed" test -f /lib/systemd/system/keel@.service
check "the installed configuration passes keeld --check" /usr/bin/keeld all --check --config /etc/keel/keel.yaml
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify keel-all.service" systemd-analyze verify /lib/systemd/system/keel-all.service
fi
if command -v logrotate >/dev/null; then
    check "logrotate accepts /etc/logrotate.d/keel" logrotate --debug /etc/logrotate.d/keel
fi

# -- running, as the keel user, from the installed paths -----------------------
offset=$(python3 - <<'PY'
import random, socket
bases = (7000, 7001, 7002, 7003, 7005, 8000, 8001, 8002, 8003, 8005, 7150, 7151, 5591, 6584)
for _ in range(200):
    offset = random.randrange(3000, 3800) * 10      # 30000..37990: above the harness's range
    try:
        for base in bases:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base + offset))
    except OSError:
        continue
    print(offset)
    break
PY
)
cd /var/lib/keel
runuser -u keel -- /usr/bin/keeld all --config /etc/keel/keel.yaml --port-offset "$offset" \
    >"$dir/keeld.txt" 2>&1 &
runuser_pid=$!
cd "$OLDPWD"
deadline=$(( $(date +%s) + 30 * factor ))
pending="8000 8001 8002 8003 8005"
while [ -n "$pending" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    left=""
    for port in $pending; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((port + offset))/health" || true)
        [ "$code" = 200 ] || left="$left $port"
    done
    pending=$left
    [ -z "$pending" ] || sleep 0.2
done
keeld_pid=$(ps -o pid= --ppid "$runuser_pid" | tr -d ' ' | head -1)
if [ -z "$pending" ]; then
    echo "package-test: ok: all five services healthy as the keel user (offset $offset)"
else
    cat "$dir/keeld.txt" >&2
    fail "not healthy:$pending"
fi
check "keeld runs as keel" test "$(ps -o user= -p "${keeld_pid:-0}" | tr -d ' ')" = keel
check "the JSON log is in /var/log/keel" grep -q '"msg":"Keel .*service(s) ready"' /var/log/keel/keel.log
check "the databases belong to keel" test "$(stat -c %U /var/lib/keel/errorbus/error_system.db)" = keel
if [ -n "$keeld_pid" ]; then
    kill -TERM "$keeld_pid"
    wait "$runuser_pid" || fail "keeld did not stop cleanly"
    keeld_pid=""
fi

# -- purged ----------------------------------------------------------------------
files=$(dpkg-query -L keel | grep -v '^/\.$' | grep -v -x -e /etc -e /lib -e /usr -e /usr/bin \
        -e /usr/lib -e /usr/share -e /usr/share/doc -e /usr/share/man -e '/usr/share/man/man[158]' \
        -e /etc/logrotate.d -e /lib/systemd -e /lib/systemd/system -e /usr/lib/sysusers.d \
        -e /usr/lib/tmpfiles.d -e /usr/share/bash-completion -e /usr/share/bash-completion/completions)
dpkg --purge keel >"$dir/purge.txt" 2>&1 || { cat "$dir/purge.txt" >&2; fail "dpkg --purge"; }
left=""
for f in $files /var/lib/keel /var/log/keel /etc/keel /etc/systemd/system/multi-user.target.wants/keel-all.service; do
    [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
done
check "purge removed every file and directory" test -z "$left"
[ -z "$left" ] || echo "package-test: left behind:$left" >&2
check "purge removed the keel user" sh -c '! getent passwd keel'
check "purge removed the keel group" sh -c '! getent group keel'
check "dpkg forgot the package" sh -c '! dpkg-query -W keel'

if [ "$failures" -gt 0 ]; then
    echo "package-test: $failures check(s) failed" >&2
    exit 1
fi
echo "package-test: passed"
