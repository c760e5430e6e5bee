//! The `tasksentry` binary: parses the command line and runs the monitor.

fn main() {
    println!("tasksentry {}", env!("CARGO_PKG_VERSION"));
}
