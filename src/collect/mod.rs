//! Collectors: turn observations of `/proc`, sockets and files into events.
