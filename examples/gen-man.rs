//! Writes the generated man pages (`tarpitd.8`, `tarpitctl.8`, `tarpitctl-NAME.8`) into a
//! directory, `man/` by default. `scripts/gen-man.sh` runs it; `tests/packaging.rs` checks
//! that the checked-in pages are what it writes.
//!
//! ```text
//! cargo run --example gen-man -- [DIR]
//! ```

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args_os().nth(1).unwrap_or_else(|| "man".into()));
    for page in tarpit::cli::man::pages().context("cannot render the man pages")? {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
