//! Parsing: one log line in, at most one typed [`crate::event::Event`] out.
