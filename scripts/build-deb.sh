#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (metadata: [package.metadata.deb] in Cargo.toml) and
# prints the path of the .deb on standard output (progress goes to standard error).
#
# Usage: scripts/build-deb.sh [--profile NAME]
#   The package one ships is the default, the release profile. scripts/check-deb.sh checks it.
#
# Installs cargo-deb (the version pinned below) when it is missing: about a minute of compiling.
# Before running it, makes the assets that are not in the tree: the shell completions from
# `tarpitctl completions`, the gzipped README, and man/*.N sorted into man<N>/ directories so
# that every page in man/, whatever its section, is packaged.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
profile=release
if [ "${1:-}" = "--profile" ] && [ -n "${2:-}" ]; then
  profile=$2
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--profile NAME]" >&2
  exit 2
fi

# Depends is worked out by dpkg-shlibdeps (libc6, libmnl0, libnftnl11 with their minimum
# versions); without it cargo-deb would only warn and write a package that depends on nothing.
if ! command -v dpkg-shlibdeps >/dev/null; then
  echo "build-deb: dpkg-shlibdeps is missing: apt-get install dpkg-dev (or run scripts/install-deps.sh as root)" >&2
  exit 1
fi
installed=$(cargo deb --version 2>/dev/null || true)
if [ -z "$installed" ]; then
  echo "build-deb: installing cargo-deb $cargo_deb_version" >&2
  cargo install cargo-deb --version "$cargo_deb_version" --locked
elif [ "$installed" != "cargo-deb $cargo_deb_version" ]; then
  echo "build-deb: using the installed $installed (this script is tested with $cargo_deb_version;" \
    "if tests/deb-files.txt no longer matches: cargo install cargo-deb --version $cargo_deb_version --locked)" >&2
fi

cargo build --profile "$profile" --bins
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
tarpitctl="$target_dir/$profile/tarpitctl"

# Paths relative to the tree, as the asset list in Cargo.toml names them.
staging=target/deb
rm -rf "$staging"
mkdir -p "$staging/completions"
"$tarpitctl" completions bash > "$staging/completions/tarpitctl.bash"
"$tarpitctl" completions zsh > "$staging/completions/_tarpitctl"
"$tarpitctl" completions fish > "$staging/completions/tarpitctl.fish"
gzip -9n < README.md > "$staging/README.md.gz"
# Debian wants a changelog.Debian.gz beside the upstream changelog.gz: one entry for this build,
# dated like the last commit so that the same tree makes the same package.
fields=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
p = json.load(sys.stdin)["packages"][0]
deb = (p.get("metadata") or {}).get("deb", {})
print(p["name"], p["version"] + "-" + str(deb.get("revision", "1")), deb["maintainer"])')
read -r name version maintainer <<< "$fields"
stamp=$(git log -1 --format=%ct 2>/dev/null || date +%s)
cat > "$staging/changelog.Debian" <<EOF
$name ($version) unstable; urgency=medium

  * Built from the upstream sources with cargo-deb. The upstream changes are in
    /usr/share/doc/$name/changelog.gz.

 -- $maintainer  $(LC_ALL=C date -R -u -d "@$stamp")
EOF
for page in man/*.[1-9]; do
  [ -e "$page" ] || continue
  section=${page##*.}
  mkdir -p "$staging/man/man$section"
  cp "$page" "$staging/man/man$section/"
done

# cargo-deb prints the .deb's path as the last line on standard output.
deb=$(cargo deb --profile "$profile" --strip | tail -n1)
if [ ! -f "$deb" ]; then
  echo "build-deb: cargo deb did not report a package (got: $deb)" >&2
  exit 1
fi
echo "$deb"
