//! What ships beside the binaries: the systemd unit verifies; the man pages match the CLI, pass
//! `mandoc -Tlint` and `man --warnings`, and `tarpit.yaml(5)` documents every configuration key
//! the daemon accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_systemd_unit_verifies() {
    if !have("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/systemd/tarpitd.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/tarpitd "));
    // Verify the unit as written, with the binary just built in the place it names.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tarpitd.service");
    std::fs::write(
        &path,
        unit.replace("/usr/sbin/tarpitd", env!("CARGO_BIN_EXE_tarpitd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pages in `man/` (files named `NAME.SECTION`).
fn man_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.len() == 1 && e.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    pages.sort();
    pages
}

#[test]
fn the_man_pages_match_the_cli() {
    let generated = tarpit::cli::man::pages().unwrap();
    for page in &generated {
        let path = root().join("man").join(&page.file_name);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        if on_disk != page.text {
            let fresh = String::from_utf8_lossy(&page.text);
            let old = String::from_utf8_lossy(&on_disk);
            let (n, (want, got)) = fresh
                .lines()
                .chain(std::iter::repeat(""))
                .zip(old.lines().chain(std::iter::repeat("")))
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap();
            panic!(
                "man/{} does not match the CLI (line {}: the CLI gives {want:?}, the file has \
                 {got:?}): run scripts/gen-man.sh",
                page.file_name,
                n + 1
            );
        }
    }
    // The hand-written page carries the same version and date as the generated ones.
    let config_page = std::fs::read_to_string(root().join("man/tarpit.yaml.5")).unwrap();
    let title = format!(
        ".TH TARPIT.YAML 5 {} \"tarpit {}\" ",
        tarpit::cli::man::DATE,
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        config_page.lines().any(|l| l.starts_with(&title)),
        "man/tarpit.yaml.5: its .TH line should start with {title:?}"
    );
    // A page left over from a subcommand that is gone.
    for path in man_pages() {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.ends_with(".8") {
            assert!(
                generated.iter().any(|p| p.file_name == name),
                "man/{name} documents a command the CLI no longer has: run scripts/gen-man.sh"
            );
        }
    }
}

#[test]
fn the_man_pages_lint_and_render_without_warnings() {
    let pages = man_pages();
    assert!(pages.len() >= 3, "{pages:?}");
    if have("mandoc") {
        for page in &pages {
            let out = Command::new("mandoc")
                .args(["-Tlint", "-W", "warning"])
                .arg(page)
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
                "mandoc -Tlint {}:\n{}{}",
                page.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    } else {
        eprintln!("skipped: mandoc -Tlint, because mandoc is not installed (scripts/install-deps.sh installs it)");
    }
    if have("man") {
        for page in &pages {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(page)
                .env("MANWIDTH", "80")
                .env("LC_ALL", "C.UTF-8")
                .env("MAN_DISABLE_SECCOMP", "1")
                .env_remove("MANPAGER")
                .env_remove("PAGER")
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "man --warnings -l {}:\n{}",
                page.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("NAME"), "{}: renders empty", page.display());
        }
    } else {
        eprintln!("skipped: man --warnings, because man-db is not installed (scripts/install-deps.sh installs it)");
    }
}

/// A configuration key: its path from the top (`["sources", "journald", "units"]`).
type KeyPath = Vec<String>;

/// One step down into a configuration: a key of a mapping, or the element of a list.
#[derive(Clone)]
enum Step {
    Key(String),
    Element,
}

/// The probe key: no configuration has it, so serde names every key it would have taken.
const PROBE: &str = "zz_probe";

/// `leaf` placed at `steps` inside a configuration, as YAML flow text.
fn nest(steps: &[Step], leaf: &str) -> String {
    steps
        .iter()
        .rev()
        .fold(leaf.to_owned(), |inner, step| match step {
            Step::Key(k) => format!("{{{k}: {inner}}}"),
            Step::Element => format!("[{inner}]"),
        })
}

/// The names serde lists after "expected" in an "unknown field" or "unknown variant" message.
fn expected_names(message: &str, what: &str) -> Option<Vec<String>> {
    let rest = message.split(&format!("unknown {what} `{PROBE}`")).nth(1)?;
    let rest = rest.split(" at line ").next().unwrap_or(rest);
    let rest = rest.split_once("expected")?.1;
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Walks the configuration the daemon accepts by asking its parser: a mapping answers an
/// unknown key with the list of its keys (`deny_unknown_fields`), an enumeration an unknown
/// value with its values. Collects every key path and every enumerated value.
fn walk(
    steps: &[Step],
    path: &KeyPath,
    keys: &mut BTreeSet<KeyPath>,
    values: &mut BTreeSet<String>,
) {
    let parse = |text: &str| {
        tarpit::config::Config::parse(Path::new("probe.yaml"), text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let map = format!("{{{PROBE}: 1}}");
    let probes: [(Vec<Step>, &str); 4] = [
        (vec![], map.as_str()),
        (vec![], PROBE),
        (vec![Step::Element], map.as_str()),
        (vec![Step::Element], PROBE),
    ];
    for (extra, leaf) in probes {
        let at: Vec<Step> = steps.iter().cloned().chain(extra).collect();
        let message = parse(&nest(&at, leaf));
        if let Some(fields) = expected_names(&message, "field") {
            for field in fields {
                let mut sub = path.clone();
                sub.push(field.clone());
                let mut sub_steps = at.clone();
                sub_steps.push(Step::Key(field));
                keys.insert(sub.clone());
                walk(&sub_steps, &sub, keys, values);
            }
            return;
        }
        if let Some(variants) = expected_names(&message, "variant") {
            values.extend(variants);
            return;
        }
    }
}

/// Roff text as plain text: font changes dropped, escaped characters as themselves.
fn plain(roff: &str) -> String {
    roff.replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
        .replace("\\-", "-")
        .replace("\\(dq", "\"")
        .replace("\\&", "")
}

/// The keys `tarpit.yaml(5)` documents: under `.SH CONFIGURATION KEYS`, each top-level key is a
/// `.SS` and each key inside it a `.TP` entry whose tag is its path below the section
/// (`journald.units`).
fn documented_keys(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut in_keys = false;
    let mut current: Option<String> = None;
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix(".SH ") {
            in_keys = heading.trim_matches('"') == "CONFIGURATION KEYS";
            current = None;
        } else if !in_keys {
            continue;
        } else if let Some(title) = line.strip_prefix(".SS ") {
            let title = title.trim_matches('"').to_owned();
            sections.entry(title.clone()).or_default();
            current = Some(title);
        } else if line == ".TP" {
            let tag = plain(lines.next().unwrap_or_default());
            let tag = tag.strip_prefix('.').map_or(tag.as_str(), |t| {
                t.split_once(' ').map_or("", |(_, rest)| rest)
            });
            let key = tag.split_whitespace().next().unwrap_or_default();
            let section = current.clone().expect(".TP before the first .SS");
            sections
                .entry(section)
                .or_default()
                .insert(key.trim_matches('"').to_owned());
        }
    }
    sections
}

#[test]
fn the_config_page_documents_every_key_the_daemon_accepts_and_no_other() {
    let mut keys = BTreeSet::new();
    let mut values = BTreeSet::new();
    walk(&[], &Vec::new(), &mut keys, &mut values);
    // The walk itself must work, or this test would pass on nothing.
    assert!(
        keys.contains(&vec!["policy".to_owned(), "threshold".to_owned()]),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.len() == 3),
        "no nested key found: {keys:?}"
    );
    assert!(
        values.contains("dry-run") && values.contains("rbl-listed"),
        "{values:?}"
    );

    let page = std::fs::read_to_string(root().join("man/tarpit.yaml.5")).unwrap();
    let documented = documented_keys(&page);
    let mut missing = Vec::new();
    for key in &keys {
        let found = match key.as_slice() {
            [top] => documented.contains_key(top),
            [top, rest @ ..] => documented
                .get(top)
                .is_some_and(|tags| tags.contains(&rest.join("."))),
            [] => true,
        };
        if !found {
            missing.push(key.join("."));
        }
    }
    assert!(
        missing.is_empty(),
        "man/tarpit.yaml.5 does not document {missing:?}: add a .SS (top-level key) or a .TP \
         entry under its section in CONFIGURATION KEYS"
    );
    // Every value an enumeration takes (modes, actions, strategies, MTAs, event classes).
    let text = plain(&page);
    let words: BTreeSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .collect();
    let undocumented: Vec<&String> = values
        .iter()
        .filter(|v| !words.contains(v.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "man/tarpit.yaml.5 never names {undocumented:?}"
    );
    // And nothing that is not a key any more.
    for (section, tags) in &documented {
        for tag in std::iter::once(None).chain(tags.iter().map(Some)) {
            let mut path = vec![section.clone()];
            // A tag that repeats its section's name (`.SS mode`, `.TP mode`) is the key itself.
            if let Some(tag) = tag.filter(|t| *t != section) {
                path.extend(tag.split('.').map(str::to_owned));
            }
            assert!(
                keys.contains(&path),
                "man/tarpit.yaml.5 documents {:?}, which the daemon does not accept",
                path.join(".")
            );
        }
    }
}

#[test]
fn the_examples_in_the_config_page_load() {
    let page = std::fs::read_to_string(root().join("man/tarpit.yaml.5")).unwrap();
    let examples = page.split(".SH EXAMPLES").nth(1).unwrap();
    let mut loaded = 0;
    for block in examples.split(".EX\n").skip(1) {
        let yaml = plain(block.split(".EE").next().unwrap());
        let config = tarpit::config::Config::parse(Path::new("tarpit.yaml(5)"), &yaml)
            .unwrap_or_else(|e| {
                panic!("an example in man/tarpit.yaml.5 does not load: {e}\n{yaml}")
            });
        assert!(!config.policy.traps.is_empty());
        loaded += 1;
    }
    assert_eq!(loaded, 2, "one example for Postfix and one for Exim");
}
