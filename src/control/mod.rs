//! Control: the commands that drive the stages for an operator.
