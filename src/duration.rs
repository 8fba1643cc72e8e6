//! Human durations (`90s`, `10m`, `1h`, `3d`, `2w`) for configs and command lines.
//!
//! One parser for the whole crate, so that every place that takes a duration accepts the same
//! spellings and says the same thing about a bad one.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the way people write it: `90s`, `10m`, `1h30m`, `3d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

/// The text was not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason}; expected a number with a unit, e.g. 90s, 10m, 12h, 3d, 2w")]
pub struct BadDuration {
    /// What was given.
    pub text: String,
    /// What was wrong with it.
    pub reason: String,
}

impl HumanDuration {
    /// Parses `90s`, `10m`, `1h30m`, `3d`, `2w` (any spelling `humantime` accepts).
    pub fn parse(text: &str) -> Result<Self, BadDuration> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| BadDuration {
                text: text.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The plain duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = BadDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HumanDuration::parse(s)
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HumanDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_spellings_operators_write() {
        assert_eq!(
            HumanDuration::parse("90s").unwrap().get(),
            Duration::from_secs(90)
        );
        assert_eq!(
            HumanDuration::parse("10m").unwrap().get(),
            Duration::from_secs(600)
        );
        assert_eq!(
            HumanDuration::parse("1h30m").unwrap().get(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            HumanDuration::parse("3d").unwrap().get(),
            Duration::from_secs(3 * 86400)
        );
        assert_eq!(
            HumanDuration::parse("2w").unwrap().get(),
            Duration::from_secs(14 * 86400)
        );
    }

    #[test]
    fn rejects_a_bare_number_with_a_hint() {
        let err = HumanDuration::parse("10").unwrap_err();
        assert!(
            err.to_string().contains("expected a number with a unit"),
            "{err}"
        );
    }
}
