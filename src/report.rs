//! How the binaries word an error for a person: the error and its causes on one line, each
//! said once.
//!
//! Library errors often name their cause in their own message (`config FILE: what and where`)
//! and also return it as their `source()`, so printing the whole chain would say it twice.

use std::error::Error;

/// `err` and its causes, joined by `": "`, leaving out a cause whose text is already there.
pub fn one_line(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("config {path}: {source}")]
    struct Outer {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let e = Outer {
            path: "a.yaml",
            source: std::io::Error::other("bad value at line 2"),
        };
        assert_eq!(one_line(&e), "config a.yaml: bad value at line 2");
        let wrapped = anyhow::Error::new(e).context("cannot start");
        assert_eq!(
            one_line(wrapped.as_ref()),
            "cannot start: config a.yaml: bad value at line 2"
        );
    }

    #[test]
    fn a_cause_not_in_the_message_is_added() {
        let e = anyhow::Error::new(std::io::Error::other("disk full")).context("saving state");
        assert_eq!(one_line(e.as_ref()), "saving state: disk full");
    }
}
