//! What ships beside the binaries: the systemd unit verifies, and the man pages match the CLI.

use std::path::Path;
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

/// A man page without the lines that change by themselves (the date, the generator's version).
fn stable(page: &str) -> String {
    page.lines()
        .filter(|l| !l.starts_with(".TH ") && !l.starts_with(".\\\" DO NOT MODIFY"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_man_pages_match_the_cli() {
    if !have("help2man") {
        eprintln!("skipped: help2man is not installed (scripts/gen-man.sh needs it)");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    for (bin, exe) in [
        ("tarpitd", env!("CARGO_BIN_EXE_tarpitd")),
        ("tarpitctl", env!("CARGO_BIN_EXE_tarpitctl")),
    ] {
        let page = std::fs::read_to_string(root.join(format!("man/{bin}.8"))).unwrap();
        let name = page
            .lines()
            .skip_while(|l| *l != ".SH NAME")
            .nth(1)
            .and_then(|l| l.split_once(" \\- "))
            .map(|(_, n)| n.to_owned())
            .unwrap();
        let out = Command::new("help2man")
            .args(["--no-info", "--section", "8", "--version-string"])
            .arg(format!("{bin} {version}"))
            .arg("--name")
            .arg(&name)
            .arg(exe)
            .output()
            .unwrap();
        assert!(out.status.success());
        let fresh = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stable(&page),
            stable(&fresh),
            "man/{bin}.8 no longer matches `{bin} --help`: run scripts/gen-man.sh"
        );
    }
}
