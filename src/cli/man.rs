//! The man pages of `tarpitd(8)`, `tarpitctl(8)` and one `tarpitctl-NAME(8)` per subcommand,
//! rendered from the clap definitions with `clap_mangen`.
//!
//! What clap knows (name, synopsis, description, options, subcommands) is rendered from
//! [`super::tarpitd::Cli`] and [`super::tarpitctl::Cli`]; what it cannot know (exit status,
//! environment, files, signals, see also) is hand-written roff in `src/cli/man/tarpitd.roff`
//! and `src/cli/man/tarpitctl.roff`, appended to the top-level pages. The output depends on
//! nothing but the code: the date on the pages is [`DATE`], not today, so that
//! `scripts/gen-man.sh` and the drift test in `tests/packaging.rs` agree byte for byte.
//!
//! It only renders text; writing files is the caller's job (`examples/gen-man.rs`).

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::Man;

/// The date in every generated page's title line: when the pages last changed in substance.
/// Fixed rather than today's, so that generating twice gives the same bytes; move it forward
/// with a release.
pub const DATE: &str = "2026-12-04";

/// The man section of both commands: system administration.
const SECTION: &str = "8";

/// The NAME line of `tarpitd(8)`. Its `about` is the package's description, a sentence too long
/// for NAME, so the top-level pages say it shorter.
const TARPITD_NAME: &str =
    "the tarpit daemon: lists MTAs that keep sending unwanted mail and holds their connections";

/// The NAME line of `tarpitctl(8)`.
const TARPITCTL_NAME: &str = "control the tarpit daemon and try its rules on mail logs";

/// Hand-written sections appended to `tarpitd(8)`.
const TARPITD_EXTRA: &str = include_str!("man/tarpitd.roff");

/// Hand-written sections appended to `tarpitctl(8)`.
const TARPITCTL_EXTRA: &str = include_str!("man/tarpitctl.roff");

/// What the `roff` crate writes at the start of every rendering (it defines the apostrophe
/// string); a page needs it once, so later sections are stripped of it.
const ROFF_PREAMBLE: &[u8] = b".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One generated man page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Its file name in `man/`, e.g. `tarpitctl-list.8`.
    pub file_name: String,
    /// Its roff source.
    pub text: Vec<u8>,
}

/// Every generated page: `tarpitd.8`, `tarpitctl.8`, then `tarpitctl-NAME.8` for each
/// subcommand in the order `tarpitctl --help` lists them.
pub fn pages() -> io::Result<Vec<Page>> {
    let version = env!("CARGO_PKG_VERSION");
    let tarpitd = super::tarpitd::Cli::command();
    // No `help` subcommand: it has nothing to document and would get a page of its own.
    let mut tarpitctl = super::tarpitctl::Cli::command().disable_help_subcommand(true);
    tarpitctl.build();

    let mut pages = vec![
        top_level(tarpitd, TARPITD_NAME, TARPITD_EXTRA, version)?,
        top_level(tarpitctl.clone(), TARPITCTL_NAME, TARPITCTL_EXTRA, version)?,
    ];
    for sub in tarpitctl.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(subcommand(sub.clone(), version)?);
    }
    Ok(pages)
}

/// A page's title line settings, the same on every page.
fn man(cmd: clap::Command, version: &str) -> Man {
    let title = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_uppercase();
    Man::new(cmd)
        .title(title)
        .section(SECTION)
        .date(DATE)
        .source(format!("tarpit {version}"))
        .manual("System Manager's Manual")
}

/// `tarpitd(8)` or `tarpitctl(8)`: clap's sections with `name` on the NAME line, then the
/// hand-written ones.
fn top_level(cmd: clap::Command, name: &str, extra: &str, version: &str) -> io::Result<Page> {
    let has_subcommands = cmd.has_subcommands();
    let named = man(cmd.clone().about(name.to_owned()), version);
    let man = man(cmd, version);
    let mut text = head(&named, &man)?;
    text.extend(section(|w| man.render_options_section(w))?);
    if has_subcommands {
        text.extend(section(|w| man.render_subcommands_section(w))?);
    }
    text.extend_from_slice(extra.as_bytes());
    Ok(Page {
        file_name: man.get_filename(),
        text: tidy(&text),
    })
}

/// `tarpitctl-NAME(8)`: clap's sections, its aliases, and where to read on.
fn subcommand(cmd: clap::Command, version: &str) -> io::Result<Page> {
    let aliases: Vec<String> = cmd
        .get_visible_aliases()
        .map(|a| format!("tarpitctl {a}"))
        .collect();
    let man = man(cmd, version);
    let mut text = head(&man, &man)?;
    if !aliases.is_empty() {
        let mut roff = clap_mangen::roff::Roff::new();
        roff.control("PP", [])
            .text([clap_mangen::roff::roman(format!(
                "Also available as {}.",
                aliases.join(", ")
            ))]);
        text.extend(section(|w| roff.to_writer(w))?);
    }
    text.extend(section(|w| man.render_options_section(w))?);
    text.extend_from_slice(
        b".SH \"EXIT STATUS\"\nSee\n.BR tarpitctl (8).\n\
          .SH \"SEE ALSO\"\n.BR tarpitctl (8),\n.BR tarpitd (8),\n.BR tarpit.yaml (5)\n",
    );
    Ok(Page {
        file_name: man.get_filename(),
        text: tidy(&text),
    })
}

/// Title, NAME (from `named`), SYNOPSIS and DESCRIPTION (from `man`): what every page starts
/// with.
fn head(named: &Man, man: &Man) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    named.render_title(&mut text)?;
    text.extend(section(|w| named.render_name_section(w))?);
    text.extend(section(|w| man.render_synopsis_section(w))?);
    text.extend(section(|w| man.render_description_section(w))?);
    Ok(text)
}

/// Mends two things in clap_mangen's output that `mandoc -Tlint` flags: the spaces it leaves at
/// the end of a line, and the `.br`, blank line, `.br` it puts before "Possible values" (a blank
/// line is a `.sp`, so both breaks are ignored with a warning); that becomes one `.sp`.
fn tidy(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
    out.replace("\n.br\n\n.br\n", "\n.sp\n").into_bytes()
}

/// One rendered section without the preamble the page already has.
fn section(render: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    render(&mut text)?;
    match text.strip_prefix(ROFF_PREAMBLE) {
        Some(rest) => Ok(rest.to_vec()),
        None => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let pages = pages().unwrap();
        let page = pages.iter().find(|p| p.file_name == name).unwrap();
        String::from_utf8(page.text.clone()).unwrap()
    }

    #[test]
    fn every_subcommand_has_a_page_and_help_has_none() {
        let names: Vec<String> = pages().unwrap().into_iter().map(|p| p.file_name).collect();
        for sub in super::super::tarpitctl::Cli::command().get_subcommands() {
            let want = format!("tarpitctl-{}.8", sub.get_name());
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        assert_eq!(names[..2], ["tarpitd.8", "tarpitctl.8"]);
    }

    #[test]
    fn a_page_has_one_preamble_the_fixed_date_and_its_hand_written_sections() {
        let text = page("tarpitd.8");
        assert_eq!(text.matches(".ds Aq").count(), 2, "{text}");
        assert!(text.contains(&format!(".TH TARPITD 8 {DATE} ")), "{text}");
        assert!(text.contains(".SH SIGNALS"), "{text}");
        let ctl = page("tarpitctl.8");
        assert!(ctl.contains(".SH \"EXIT STATUS\""), "{ctl}");
        assert!(ctl.contains("tarpitctl\\-list(8)"), "{ctl}");
    }

    #[test]
    fn a_subcommand_page_documents_its_own_and_the_global_options() {
        let text = page("tarpitctl-add.8");
        for option in [
            "\\-\\-for",
            "\\-\\-reason",
            "\\-\\-force",
            "\\-\\-json",
            "\\-\\-socket",
        ] {
            assert!(text.contains(option), "{option} missing:\n{text}");
        }
        assert!(page("tarpitctl-del.8").contains("Also available as tarpitctl unlist."));
    }
}
