#!/usr/bin/env bash
# Unpacks Debian's Exim daemon (and libidn12, which it links and the host may lack) into a cache
# directory without installing it: the exim4 packages conflict with postfix, which the Postfix
# end-to-end test needs installed. Prints the cache directory (the binary is usr/sbin/exim4 under
# it, its libraries under usr/lib/x86_64-linux-gnu). Exits non-zero with a reason on standard
# error when it cannot (not root, apt fails).
set -euo pipefail

cache=/var/cache/tarpit-e2e/exim
if [ "$(id -u)" -ne 0 ]; then
  echo "fetching Exim needs root" >&2
  exit 1
fi
mkdir -p "$cache"
# Tests running at once take turns; the first one fetches.
exec 9>/run/lock/tarpit-e2e-fetch-exim.lock
flock -w 280 9

if [ -x "$cache/root/usr/sbin/exim4" ] && [ -e "$cache/root/usr/lib/x86_64-linux-gnu/libidn.so.12" ]; then
  echo "$cache"
  exit 0
fi
rm -rf "$cache/debs" "$cache/root"
mkdir -p "$cache/debs" "$cache/root"
cd "$cache/debs"
download() {
  apt-get download exim4-daemon-light libidn12 >/dev/null 2>&1
}
if ! download; then
  apt-get update -qq >/dev/null 2>&1 || true
  if ! download; then
    echo "apt-get download exim4-daemon-light libidn12 failed" >&2
    exit 1
  fi
fi
for deb in ./*.deb; do
  dpkg -x "$deb" "$cache/root"
done
if [ ! -x "$cache/root/usr/sbin/exim4" ]; then
  echo "the exim4-daemon-light package held no usr/sbin/exim4" >&2
  exit 1
fi
echo "$cache"
