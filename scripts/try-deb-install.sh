#!/usr/bin/env bash
# Installs, upgrades, removes and purges the Debian package in a throwaway copy of this system,
# so that dpkg and the maintainer scripts run for real: a private mount namespace with /etc, /usr
# and /var overlaid on a tmpfs. The machine's own files and dpkg database are left as they were.
#
# Usage: scripts/try-deb-install.sh FILE.deb   (as root; otherwise it says why it skips)
# Checks: a fresh install leaves tarpitd.service disabled and the binaries run; a unit enabled by
# the admin stays enabled through an upgrade; remove keeps the edited conffile and takes the
# binaries; purge takes the configuration and the unit's enablement.
set -euo pipefail

if [ "${1:-}" = "--inside" ]; then
  deb=$2
  scratch=$(mktemp -d)
  mount -t tmpfs tmpfs "$scratch"
  for dir in etc usr var; do
    mkdir "$scratch/$dir-upper" "$scratch/$dir-work"
    mount -t overlay overlay \
      -o "lowerdir=/$dir,upperdir=$scratch/$dir-upper,workdir=$scratch/$dir-work" "/$dir" || {
      echo "try-deb-install: skipped: cannot overlay /$dir (no overlayfs here?)" >&2
      exit 0
    }
  done
  fail() {
    echo "try-deb-install: $*" >&2
    exit 1
  }
  wants=/etc/systemd/system/multi-user.target.wants/tarpitd.service
  export DEBIAN_FRONTEND=noninteractive

  dpkg -i "$deb" >/dev/null || fail "dpkg -i failed"
  [ "$(systemctl is-enabled tarpitd.service 2>&1 || true)" = disabled ] ||
    fail "after a fresh install tarpitd.service is '$(systemctl is-enabled tarpitd.service 2>&1)', not disabled"
  [ ! -e "$wants" ] || fail "a fresh install enabled tarpitd.service"
  tarpitctl --version >/dev/null || fail "the installed tarpitctl does not run"
  tarpitd --check-config >/dev/null || fail "the installed tarpitd refuses the installed config"

  systemctl enable tarpitd.service >/dev/null 2>&1
  dpkg -i "$deb" >/dev/null || fail "dpkg -i over the installed package (upgrade) failed"
  [ -L "$wants" ] || fail "an upgrade disabled the tarpitd.service the admin had enabled"

  echo "mode: dry-run" >> /etc/tarpit/tarpit.yaml
  dpkg -r tarpit >/dev/null || fail "dpkg -r failed"
  [ ! -e /usr/sbin/tarpitd ] || fail "dpkg -r left /usr/sbin/tarpitd"
  grep -q -x 'mode: dry-run' /etc/tarpit/tarpit.yaml || fail "dpkg -r did not keep the edited conffile"

  dpkg -P tarpit >/dev/null || fail "dpkg -P failed"
  [ ! -e /etc/tarpit/tarpit.yaml ] || fail "dpkg -P left /etc/tarpit/tarpit.yaml"
  [ ! -e "$wants" ] || fail "dpkg -P left tarpitd.service enabled"
  echo "try-deb-install: ok: install (unit disabled), upgrade (enablement kept), remove (conffile kept), purge"
  exit 0
fi

deb=$(realpath "${1:?usage: $0 FILE.deb}")
if [ "$(id -u)" -ne 0 ]; then
  echo "try-deb-install: skipped: installing the package in a throwaway mount namespace needs root" >&2
  exit 0
fi
if ! unshare --mount --propagation private true 2>/dev/null; then
  echo "try-deb-install: skipped: cannot create a mount namespace here (unshare --mount failed)" >&2
  exit 0
fi
unshare --mount --propagation private "$(realpath "$0")" --inside "$deb"
