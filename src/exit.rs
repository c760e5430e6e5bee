//! Exit codes of the `tasksentry` binary.

/// Success.
pub const OK: u8 = 0;
/// A runtime failure (or, for `rules validate`, rule files with errors; for `lint`, findings
/// at or above `--fail-on`).
pub const FAILURE: u8 = 1;
/// Bad command-line usage (clap's own code).
pub const USAGE: u8 = 2;
/// `lint`: an input file that cannot be read or is not a task definition, policy or template
/// (reported with its `file:line:column`). The same value as [`USAGE`]: the invocation, not
/// the linted configuration, is at fault.
pub const INPUT: u8 = 2;
/// Invalid configuration or rules at start (`EX_CONFIG` from sysexits.h).
pub const CONFIG: u8 = 78;
