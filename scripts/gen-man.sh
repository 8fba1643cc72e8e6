#!/usr/bin/env bash
# Regenerates man/tarpitd.8 and man/tarpitctl.8 from the binaries' --help (needs help2man), so
# the pages follow the CLI. Run it after changing a flag or a subcommand.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bins
version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
help2man --no-info --section 8 --version-string "tarpitd $version" \
  --name "the tarpit daemon: lists MTAs that keep sending unwanted mail and holds their SMTP connections stuck" \
  ./target/debug/tarpitd > man/tarpitd.8
help2man --no-info --section 8 --version-string "tarpitctl $version" \
  --name "control the tarpit daemon and replay mail logs through its parser and policy" \
  ./target/debug/tarpitctl > man/tarpitctl.8
