#!/bin/sh
# Builds the Debian package (make deb): dpkg-buildpackage -us -uc -b on a
# copy of the source tree in build/deb/keel-VERSION, because it writes its
# results into the parent directory, which must stay inside build/.  The
# copy holds what git tracks plus new files it does not ignore, so a build
# from a working tree with uncommitted changes packages those changes.
set -e
cd "$(dirname "$0")/.."
version=$(sed -n 's/^#define KEEL_VERSION "\(.*\)"/\1/p' src/common/service.h)
packaged=$(dpkg-parsechangelog -S Version)
if [ "$packaged" != "$version" ]; then     # a native package: no Debian revision
    echo "make-deb: debian/changelog is at $packaged but src/common/service.h at $version" >&2
    exit 1
fi
out=build/deb
tree=$out/keel-$version
rm -rf "$out"
mkdir -p "$tree"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Deleted files are still listed as cached: only those that exist.
    git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$tree"
else
    tar --exclude=./build --exclude='./build-*' --exclude=./var -cf - . | tar -xf - -C "$tree"
fi
cd "$tree"
dpkg-buildpackage -us -uc -b >../build.log 2>&1 || { tail -40 ../build.log >&2; exit 1; }
cd ..
ls -1 "$PWD"/keel_"$packaged"_*.deb
