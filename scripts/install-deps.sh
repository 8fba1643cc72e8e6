#!/usr/bin/env bash
# Installs the Debian packages that building and testing tarpit need, when they are missing.
# As root it runs apt-get; otherwise it names what is missing and carries on, so that a developer
# without root can still build (tests that need the missing pieces skip with a reason).
set -euo pipefail

packages=(
  pkg-config libnftnl-dev libmnl-dev nftables iproute2 python3 swaks mandoc man-db systemd
  systemd-journal-remote dpkg-dev python3-prometheus-client
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
