//! The rule engine: Falco's rule language, compiled once, evaluated per event.
//!
//! Pure code: no I/O beyond reading the files it is given, no tokio, and no panics on input.
