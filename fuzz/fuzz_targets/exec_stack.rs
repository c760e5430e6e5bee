//! Arbitrary bytes as the top of a process's stack at its exec stop, read from an arbitrary
//! address: parsing never panics, and whatever layout it accepts is ordered as an exec lays it
//! out (arguments, then environment, then the file name), so that the slices the tracer takes
//! from it are in bounds and the name it derives is a kernel `comm` (at most 15 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tasksentry::procfs::{exec_comm, parse_exec_stack, stack_slice};

fuzz_target!(|input: (u64, &[u8])| {
    let (base, bytes) = input;
    let Some(layout) = parse_exec_stack(base, bytes) else {
        return;
    };
    assert!(layout.args[0] <= layout.args[1]);
    assert!(layout.args[1] <= layout.env[0] || layout.args[1] == layout.execfn);
    assert!(layout.env[0] <= layout.env[1]);
    assert_eq!(layout.env[1], layout.execfn);
    assert!(layout.args[0] >= base);
    for area in [layout.args, layout.env] {
        if let Some(slice) = stack_slice(base, bytes, area) {
            assert_eq!(slice.len() as u64, area[1] - area[0]);
        }
    }
    if let Some(name) = exec_comm(base, bytes, layout.execfn) {
        assert!(!name.contains('\0'));
        assert!(name.chars().count() <= 15);
    }
});
