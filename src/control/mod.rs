//! Control: the commands that drive the stages for an operator.
//!
//! [`replay`] runs logs through the parser offline, for checking rules against real logs.

pub mod replay;
