#!/usr/bin/env bash
# Installs Debian's postfix package without configuring it (no main.cf, no service started), for the
# end-to-end test, which runs Postfix from its own configuration directory. Exits non-zero with a
# reason on standard error when it cannot (not root, apt fails, a conflicting MTA is installed).
set -euo pipefail

# Tests running at once (nextest runs each in its own process) take turns; the first installs.
exec 9>/run/lock/tarpit-e2e-install-postfix.lock
flock -w 280 9

if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "postfix is not installed and this is not root" >&2
  exit 1
fi
if dpkg-query -W -f='${Status}' exim4-base 2>/dev/null | grep -q 'install ok installed'; then
  echo "exim4 is installed and installing postfix would remove it" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq --no-install-recommends postfix >/dev/null 2>&1; then
  echo "apt-get install postfix failed" >&2
  exit 1
fi
