#!/usr/bin/env bash
# Unpacks the Debian/Ubuntu development packages of the C++ example's libraries into PREFIX,
# without root: nlohmann/json (nlohmann-json3-dev) and GoogleTest (libgtest-dev, libgmock-dev).
#
#   cpp_example/fetch_deps.sh PREFIX
#   cmake -S cpp_example -B build/cpp -DCMAKE_PREFIX_PATH=PREFIX/usr
#
# Uses `apt-get download` (the machine's configured apt sources, no root needed) and
# `dpkg-deb -x`. Not needed where the packages are installed (apt-get install nlohmann-json3-dev
# libgtest-dev libgmock-dev). A package that is already unpacked in PREFIX is not fetched again.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
packages=(nlohmann-json3-dev libgtest-dev libgmock-dev)
for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "$0: $tool not found (not a Debian/Ubuntu system?)" >&2
    exit 1
  fi
done
work=$(mktemp -d)
chmod 755 "$work"  # apt-get (as root) downloads as the user _apt
trap 'rm -rf "$work"' EXIT
for package in "${packages[@]}"; do
  stamp="$prefix/.fetched-$package"
  [ -e "$stamp" ] && continue
  (cd "$work" && apt-get download -q "$package" >/dev/null)
  deb=$(ls "$work/${package}"_*.deb)
  dpkg-deb -x "$deb" "$prefix"
  basename "$deb" >"$stamp"
done
echo "$prefix/usr"
