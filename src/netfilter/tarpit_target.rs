//! Detects whether the kernel can run the `TARPIT` target (xtables-addons' `xt_TARPIT`),
//! and the error that refuses tarpit mode when it cannot.
//!
//! Reads `/proc` and `/lib/modules` only; it never loads a module or changes the kernel.

use std::fs;
use std::path::{Path, PathBuf};

/// Where to look: the proc file of loaded IPv4 xtables targets and the kernel's module tree.
#[derive(Debug, Clone)]
pub struct TargetProbe {
    /// Usually `/proc/net/ip_tables_targets`.
    pub targets_file: PathBuf,
    /// Usually `/lib/modules/<uname -r>`.
    pub modules_dir: PathBuf,
}

impl TargetProbe {
    /// The probe for the running kernel.
    pub fn system() -> Self {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self {
            targets_file: PathBuf::from("/proc/net/ip_tables_targets"),
            modules_dir: Path::new("/lib/modules").join(release.trim()),
        }
    }

    /// Ok when `TARPIT` is loaded, or installed as a module the kernel can load on first
    /// use; otherwise the error that explains what to install.
    pub fn check(&self) -> Result<(), TarpitTargetMissing> {
        let loaded = fs::read_to_string(&self.targets_file)
            .map(|s| s.lines().any(|l| l.trim() == "TARPIT"))
            .unwrap_or(false);
        if loaded || find_module(&self.modules_dir, 6) {
            return Ok(());
        }
        Err(TarpitTargetMissing {
            targets_file: self.targets_file.clone(),
            modules_dir: self.modules_dir.clone(),
        })
    }
}

/// True when an `xt_TARPIT.ko*` file sits somewhere below `dir` (at most `depth` levels).
fn find_module(dir: &Path, depth: u32) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("xt_TARPIT.ko") {
            return true;
        }
        depth > 0
            && e.file_type().map(|t| t.is_dir()).unwrap_or(false)
            && find_module(&e.path(), depth - 1)
    })
}

/// Tarpit mode is impossible on this kernel.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "tarpit mode needs the kernel's TARPIT target, which this system lacks (not in {}, no \
     xt_TARPIT module under {}). Install it with `apt-get install xtables-addons-dkms` \
     (Debian/Ubuntu; other systems: the xtables-addons kernel module), or set \
     `netfilter.action: stall`, which needs no extra module. Nothing was changed.",
    targets_file.display(),
    modules_dir.display()
)]
pub struct TarpitTargetMissing {
    /// The proc file that was read.
    pub targets_file: PathBuf,
    /// The module tree that was searched.
    pub modules_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(dir: &Path, targets: &str) -> TargetProbe {
        fs::write(dir.join("targets"), targets).unwrap();
        TargetProbe {
            targets_file: dir.join("targets"),
            modules_dir: dir.join("modules"),
        }
    }

    #[test]
    fn loaded_target_is_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(probe(d.path(), "REDIRECT\nTARPIT\nDNAT\n").check().is_ok());
    }

    #[test]
    fn installed_module_is_found() {
        let d = tempfile::tempdir().unwrap();
        let p = probe(d.path(), "REDIRECT\n");
        fs::create_dir_all(d.path().join("modules/updates/dkms")).unwrap();
        assert!(p.check().is_err());
        fs::write(d.path().join("modules/updates/dkms/xt_TARPIT.ko.xz"), b"").unwrap();
        assert!(p.check().is_ok());
    }

    #[test]
    fn missing_target_error_says_what_to_install_and_the_alternative() {
        let d = tempfile::tempdir().unwrap();
        let err = probe(d.path(), "REDIRECT\nREJECT\nTARPITX\n")
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("xtables-addons-dkms"), "{err}");
        assert!(err.contains("action: stall"), "{err}");
        assert!(err.contains("targets"), "{err}");
    }
}
