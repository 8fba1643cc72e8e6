#!/usr/bin/env bash
# Regenerates the man pages that follow the CLI: man/tarpitd.8, man/tarpitctl.8 and one
# man/tarpitctl-NAME.8 per subcommand, rendered from the clap definitions in src/cli/ with the
# hand-written sections of src/cli/man/. Run it after changing a flag, a subcommand or its help
# text; tests/packaging.rs fails until the checked-in pages match. man/tarpit.yaml.5 is written
# by hand and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# A page of a subcommand that is gone must go too.
rm -f man/tarpitd.8 man/tarpitctl.8 man/tarpitctl-*.8
cargo run --quiet --example gen-man -- man
