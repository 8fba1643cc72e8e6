//! SIGHUP and `tarpitctl reload`: re-read the configuration, atomically.
//!
//! A bad new file is reported and the old configuration stays in force. A good one replaces the
//! policy (the engine is rebuilt, offender history restored from the store; scores still below
//! the threshold start again) and the rule files. Sections that hold sockets, threads or the
//! kernel table (sources, state, control, netfilter, stall, metrics) take effect at the next
//! start; the reply says which changed.

use time::OffsetDateTime;

use crate::config::Config;
use crate::control::protocol::{ControlError, ErrorCode, Reloaded};
use crate::parse::Parser;
use crate::policy::engine::Engine;

use super::core::Core;

/// Reloads `core`'s configuration from its file.
pub fn reload(core: &mut Core) -> Result<Reloaded, ControlError> {
    let loaded = Config::load(core.config_path.as_deref()).map_err(|e| {
        ControlError::new(
            ErrorCode::ConfigRejected,
            format!("{e}; the old configuration stays in force"),
        )
    })?;
    let new = loaded.config;
    let rules = super::load_rules(&new.rules).map_err(|e| {
        ControlError::new(
            ErrorCode::ConfigRejected,
            format!("{e}; the old configuration stays in force"),
        )
    })?;
    let mut changes = Vec::new();
    let old = &core.config;
    let restart = [
        (
            "sources",
            format!("{:?}", old.sources) != format!("{:?}", new.sources),
        ),
        ("state", old.state != new.state),
        ("control", old.control != new.control),
        ("netfilter", old.netfilter != new.netfilter),
        ("stall", old.stall != new.stall),
        ("metrics", old.metrics != new.metrics),
        ("mode", old.mode != new.mode),
    ];
    for (section, changed) in restart {
        if changed {
            changes.push(format!(
                "{section}: changed; takes effect at the next start"
            ));
        }
    }
    if old.policy != new.policy || old.ban != new.ban {
        changes.push("policy: applied".to_owned());
    }
    if old.rules != new.rules {
        changes.push("rules: applied".to_owned());
    }
    let mut engine = Engine::new(&new.policy_section(), core.own.clone());
    if let Ok(offenders) = core.store.offenders() {
        for o in offenders {
            engine.restore(o.net, o.offences, o.last_listing_end);
        }
    }
    for source in &mut core.sources {
        let clock = source.parser.clock().clone();
        source.parser = Parser::new(rules.0.clone(), rules.1.clone(), source.mta, clock);
    }
    let mode = core.config.mode;
    core.engine = engine;
    core.config = Config { mode, ..new };
    tracing::info!(changes = ?changes, "configuration reloaded at {}", OffsetDateTime::now_utc());
    Ok(Reloaded {
        config: core.config_path.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        ),
        changes,
    })
}
