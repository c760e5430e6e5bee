//! Unit tests of the sockets collector.
