#!/usr/bin/env bash
# Checks the Debian package: its file list, its Depends, its conffile, its maintainer scripts,
# that the binaries and completions it carries work once unpacked into a temporary directory,
# lintian (when installed), and (as root, scripts/try-deb-install.sh) a real install, upgrade,
# remove and purge in a throwaway mount namespace. Nothing is installed on this machine.
#
# Usage: scripts/check-deb.sh [--update] [FILE.deb]
#   Without FILE.deb, builds the package with scripts/build-deb.sh first.
#   The expected files are tests/deb-files.txt plus one man page per man/*.N (gzipped, in manN/),
#   so that a new page is checked without editing the list. --update rewrites the list from the
#   package (review the diff before committing it).
set -euo pipefail

update=no
if [ "${1:-}" = "--update" ]; then
  update=yes
  shift
fi
deb=${1:+$(realpath "$1")}
cd "$(dirname "$0")/.."
if [ -z "$deb" ]; then
  deb=$(scripts/build-deb.sh)
fi
expected_list=tests/deb-files.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "check-deb: $*" >&2
  exit 1
}

# Files and symlinks only, as absolute paths; directories follow from them.
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' | sort > "$work/actual"
man_pages() {
  for page in man/*.[1-9]; do
    [ -e "$page" ] || continue
    echo "/usr/share/man/man${page##*.}/${page#man/}.gz"
  done
}
if [ "$update" = yes ]; then
  {
    sed -n '/^#/p' "$expected_list"
    grep -v -x -F -f <(man_pages) "$work/actual" || true
  } > "$work/new"
  mv "$work/new" "$expected_list"
  echo "check-deb: rewrote $expected_list" >&2
fi
{ grep -v '^#' "$expected_list"; man_pages; } | sort > "$work/expected"
diff -u "$work/expected" "$work/actual" > "$work/diff" || {
  cat "$work/diff" >&2
  fail "the package's files differ from $expected_list (+ in the package only, - missing from it); if the change is meant, run scripts/check-deb.sh --update $deb"
}

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libnftnl11 libmnl0; do
  [[ ", $depends," == *", $lib "* || ", $depends," == *", $lib,"* ]] ||
    fail "Depends does not name $lib: $depends"
done

dpkg-deb -e "$deb" "$work/control"
grep -q -x /etc/tarpit/tarpit.yaml "$work/control/conffiles" ||
  fail "/etc/tarpit/tarpit.yaml is not a conffile"
# A fresh install must not start enforcing on built-in defaults: postinst neither starts the unit
# (an upgrade only try-restarts it, i.e. when it runs) nor enables it unless it was enabled before
# (cargo-deb's "debian-installed" guard, the same as dh_installsystemd --no-enable).
postinst=$work/control/postinst
if grep 'deb-systemd-invoke' "$postinst" | grep -v -q 'deb-systemd-invoke try-restart '; then
  fail "postinst starts tarpitd.service (only try-restart is expected)"
fi
if grep -q 'deb-systemd-helper enable' "$postinst" &&
  ! grep -q 'deb-systemd-helper debian-installed tarpitd.service' "$postinst"; then
  fail "postinst enables tarpitd.service on a fresh install"
fi

dpkg-deb -x "$deb" "$work/root"
root=$work/root
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}
[ "$("$root/usr/bin/tarpitctl" --version)" = "tarpitctl $upstream" ] ||
  fail "unpacked tarpitctl --version says '$("$root/usr/bin/tarpitctl" --version)', not 'tarpitctl $upstream'"
[ "$("$root/usr/sbin/tarpitd" --version)" = "tarpitd $upstream" ] ||
  fail "unpacked tarpitd --version says '$("$root/usr/sbin/tarpitd" --version)', not 'tarpitd $upstream'"
grep -q '^ExecStart=/usr/sbin/tarpitd ' "$root/usr/lib/systemd/system/tarpitd.service" ||
  fail "the unit's ExecStart does not run /usr/sbin/tarpitd"

# The shipped configuration is all comments, so it is exactly the built-in defaults, and it loads.
if grep -v -E '^[[:space:]]*(#|$)' "$root/etc/tarpit/tarpit.yaml"; then
  fail "/etc/tarpit/tarpit.yaml has settings; it should only describe the defaults in comments"
fi
"$root/usr/sbin/tarpitd" --check-config --config "$root/etc/tarpit/tarpit.yaml" >/dev/null

# The completions are those of the binary shipped beside them, and bash accepts its script.
for shell_file in bash:usr/share/bash-completion/completions/tarpitctl \
  zsh:usr/share/zsh/vendor-completions/_tarpitctl \
  fish:usr/share/fish/vendor_completions.d/tarpitctl.fish; do
  "$root/usr/bin/tarpitctl" completions "${shell_file%%:*}" |
    cmp -s - "$root/${shell_file#*:}" || fail "/${shell_file#*:} is not what this tarpitctl generates"
done
bash -c 'source "$1" && complete -p tarpitctl' _ "$root/usr/share/bash-completion/completions/tarpitctl" >/dev/null ||
  fail "bash cannot load the tarpitctl completion"

# Lintian is not required (it pulls in about a hundred packages); where it is installed, its
# errors and warnings fail the check (packaging/deb/lintian-overrides says what is accepted).
if command -v lintian >/dev/null; then
  lintian --fail-on error,warning "$deb" 2> >(grep -v 'running with root privileges' >&2) ||
    fail "lintian found errors or warnings"
else
  echo "check-deb: skipped lintian because it is not installed" >&2
fi

scripts/try-deb-install.sh "$deb"
echo "check-deb: ok: $deb ($(wc -l < "$work/actual") files; Depends: $depends)"
