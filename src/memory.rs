//! Keeping the long-running processes (supervisor and worker) small.
//!
//! - glibc's malloc gives every thread that allocates its own arena (up to 8 per core) and
//!   keeps freed memory in them; the worker's start-up (rule compilation, the first full
//!   scans) frees most of what it allocated, which would then stay resident. Two arenas are
//!   plenty for a handful of threads that mostly hand events to one engine thread
//!   ([`limit_arenas`]), and [`trim`] returns what is free to the kernel.
//! - The code and constants that only start-up runs (command line, configuration, YAML and
//!   rule compilation, regular expressions) stay mapped in the process after it is done:
//!   file pages of the binary, which the kernel could reclaim but which count in its resident
//!   size. [`release_startup_pages`] drops this process's mappings of the binary's read-only
//!   pages once start-up is over; the code that still runs faults its pages back in from the
//!   page cache (no I/O: the file stays cached), so what remains resident is the working set.
//!   Only mappings that cannot hold private changes are touched: not writable, and without
//!   any anonymous (copied-on-write) page, so nothing but clean file pages is dropped.
//!
//! Elsewhere than glibc (musl) the allocator calls do nothing.

use std::fs;
use std::path::PathBuf;

/// At most this many malloc arenas.
const ARENAS: i32 = 2;

/// Limits the number of malloc arenas. Call before starting threads.
pub(crate) fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it is called before the process
    // starts other threads, and an unsupported parameter is reported by its return value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns the allocator's free memory to the kernel.
pub(crate) fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe (it locks each arena) and only releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A mapping of `/proc/self/smaps` that [`release_startup_pages`] may drop.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Droppable {
    start: usize,
    end: usize,
}

/// The read-only mappings of `exe` without anonymous pages, from an `smaps` text.
fn droppable(smaps: &str, exe: &str) -> Vec<Droppable> {
    let mut out = Vec::new();
    let mut current: Option<Droppable> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = words.next().unwrap_or("");
            let path = words.nth(3).unwrap_or("");
            current =
                (perms.starts_with('r') && !perms.contains('w') && path == exe && end > start)
                    .then_some(Droppable { start, end });
            continue;
        }
        if first == "Anonymous:"
            && let Some(mapping) = current.take()
            && words.next() == Some("0")
        {
            out.push(mapping);
        }
    }
    out
}

/// Drops this process's resident pages of the binary's read-only mappings (see the module
/// documentation). Returns the bytes of mappings released; errors leave the pages in place.
pub(crate) fn release_startup_pages() -> usize {
    let Ok(exe) = fs::read_link("/proc/self/exe").map(PathBuf::into_os_string) else {
        return 0;
    };
    let Some(exe) = exe.to_str().map(str::to_owned) else {
        return 0;
    };
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for mapping in droppable(&smaps, &exe) {
        let len = mapping.end - mapping.start;
        // SAFETY: the range is a whole mapping of this process, read-only (so no thread can
        // write to it) and without any anonymous page (checked above; a read-only mapping
        // cannot gain one), so its every page is a clean page of the file: MADV_DONTNEED only
        // unmaps them, and the next access faults the same bytes back in from the page cache.
        let result =
            unsafe { libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
        if result == 0 {
            released += len;
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0200000 r--p 00000000 fd:01 1234 /usr/local/bin/tasksentry
Size:               2048 kB
Rss:                1024 kB
Anonymous:             0 kB
55d0c0200000-55d0c0a00000 r-xp 00200000 fd:01 1234 /usr/local/bin/tasksentry
Size:               8192 kB
Anonymous:             0 kB
55d0c0a00000-55d0c0b00000 r--p 00a00000 fd:01 1234 /usr/local/bin/tasksentry
Size:               1024 kB
Anonymous:           512 kB
55d0c0b00000-55d0c0b10000 rw-p 00b00000 fd:01 1234 /usr/local/bin/tasksentry
Anonymous:            64 kB
7f0000000000-7f0000200000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000300000-7f0000400000 rw-p 00000000 00:00 0
Anonymous:           100 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_binary_are_dropped() {
        let found = droppable(SMAPS, "/usr/local/bin/tasksentry");
        assert_eq!(
            found,
            vec![
                Droppable {
                    start: 0x55d0_c000_0000,
                    end: 0x55d0_c020_0000
                },
                Droppable {
                    start: 0x55d0_c020_0000,
                    end: 0x55d0_c0a0_0000
                },
            ],
            "not the relocated read-only data (copied pages), not the writable data, not libc"
        );
        assert!(droppable("garbage\n-\nzz-yy r--p\nAnonymous: 0 kB\n", "x").is_empty());
    }

    #[test]
    fn this_process_keeps_running_after_its_code_pages_are_released() {
        let released = release_startup_pages();
        assert!(released > 0, "the test binary has read-only mappings");
        // Code, constants and the allocator all still work.
        let text: String = (0..1000).map(|i| format!("{i},")).collect();
        assert!(text.starts_with("0,1,2,"));
        trim();
    }
}
