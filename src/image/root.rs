//! Reading a container root under a budget: paths are resolved inside the root (a symlink,
//! absolute or relative, never leads out of it), every read counts files and bytes against one
//! budget per pass, and every file is read with a size cap.

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Component as PathComponent, Path, PathBuf};

/// How much one inventory pass may read. Defaults suit a sidecar: a few hundred MiB and
/// 200,000 files at most per image, and no single metadata file above 8 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Directory entries looked at (files, directories, links), all kinds together.
    pub max_files: u64,
    /// Bytes read from files, all files together.
    pub max_bytes: u64,
    /// A metadata file (status, METADATA, package.json, ...) bigger than this is skipped.
    pub max_file_bytes: u64,
    /// An archive (jar, war, ear) bigger than this is skipped; also the cap on a nested jar.
    pub max_archive_bytes: u64,
    /// Directory depth below the root that the walk descends to.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_files: 200_000,
            max_bytes: 512 << 20,
            max_file_bytes: 8 << 20,
            max_archive_bytes: 128 << 20,
            max_depth: 48,
        }
    }
}

/// Symlinks followed while resolving one path, as the kernel's `ELOOP` bound.
const MAX_LINK_HOPS: usize = 40;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The pass used its budget of files or bytes.
    #[error("inventory budget exhausted ({what})")]
    Budget {
        /// `files` or `bytes`.
        what: &'static str,
    },
    /// The file is bigger than its cap.
    #[error("{path}: {size} bytes, above the cap of {cap}")]
    TooBig {
        /// Path inside the root.
        path: String,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Missing, unreadable, not a regular file, or a symlink loop.
    #[error("{path}: {source}")]
    Io {
        /// Path inside the root.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Paces a pass: called with the bytes about to be read (0 every [`PACE_EVERY_ENTRIES`]
/// directory entries), it may sleep to hold a rate, and returns false to stop the pass (the
/// monitor is stopping). The sidecar's image collector sets one; the offline commands do not.
pub type Pace = Box<dyn Fn(u64) -> bool>;

/// Directory entries between two calls of the pace with 0 bytes (so that a walk over many
/// small entries still notices a stop).
pub const PACE_EVERY_ENTRIES: u64 = 256;

struct Pacer(Pace);

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pacer")
    }
}

/// A container root (a directory, `/proc/<pid>/root` in the sidecar) read under [`Limits`].
#[derive(Debug)]
pub struct Root {
    base: PathBuf,
    limits: Limits,
    files: Cell<u64>,
    bytes: Cell<u64>,
    exhausted: RefCell<Option<&'static str>>,
    pace: Option<Pacer>,
    /// The root's directory, opened once (`O_PATH`) for [`Root::open_regular`]; `None` inside
    /// when it cannot be opened (then files are opened by path).
    base_dir: std::cell::OnceCell<Option<std::os::fd::OwnedFd>>,
}

impl Root {
    /// A root at `base`.
    pub fn new(base: impl Into<PathBuf>, limits: Limits) -> Root {
        Root {
            base: base.into(),
            limits,
            files: Cell::new(0),
            bytes: Cell::new(0),
            exhausted: RefCell::new(None),
            pace: None,
            base_dir: std::cell::OnceCell::new(),
        }
    }

    /// The same root, its reads paced by `pace` (see [`Pace`]); a pace that returns false
    /// ends the pass as a budget would, with `stopped` as the reason.
    pub fn with_pace(mut self, pace: Pace) -> Root {
        self.pace = Some(Pacer(pace));
        self
    }

    /// Asks the pace (if any) for `n` bytes; false (and the pass marked `stopped`) when it
    /// says stop.
    fn paced(&self, n: u64) -> bool {
        match &self.pace {
            Some(Pacer(pace)) if !pace(n) => {
                self.exhausted.borrow_mut().get_or_insert("stopped");
                false
            }
            _ => true,
        }
    }

    /// The root's directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `inner` with every link resolved inside the root, as a path inside the container
    /// (`/lib/x.so` of a merged-`/usr` image is `/usr/lib/x.so`); `None` when missing.
    pub fn canonical(&self, inner: &str) -> Option<String> {
        let host = self.resolve(inner)?;
        let rest = host.strip_prefix(&self.base).ok()?;
        Some(format!("/{}", rest.to_string_lossy()))
    }

    /// The limits of this pass.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Entries looked at and bytes read so far.
    pub fn used(&self) -> (u64, u64) {
        (self.files.get(), self.bytes.get())
    }

    /// Which budget ran out (`files`, `bytes`), or `stopped` when the pace ended the pass.
    pub fn exhausted(&self) -> Option<&'static str> {
        *self.exhausted.borrow()
    }

    /// Counts one directory entry; false once the file budget is used.
    pub(crate) fn take_file(&self) -> bool {
        if self.files.get() >= self.limits.max_files {
            self.exhausted.borrow_mut().get_or_insert("files");
            return false;
        }
        if self.files.get() % PACE_EVERY_ENTRIES == 0 && !self.paced(0) {
            return false;
        }
        self.files.set(self.files.get() + 1);
        true
    }

    /// Counts `n` bytes about to be read; false (and nothing counted) when they do not fit.
    pub(crate) fn take_bytes(&self, n: u64) -> bool {
        if self.bytes.get().saturating_add(n) > self.limits.max_bytes {
            self.exhausted.borrow_mut().get_or_insert("bytes");
            return false;
        }
        if !self.paced(n) {
            return false;
        }
        self.bytes.set(self.bytes.get() + n);
        true
    }

    /// The host path of `inner` (an absolute or relative path inside the container), with
    /// every symlink resolved as the container would see it: absolute targets start again at
    /// the root and `..` stops at the root. `None` for a missing path or a link loop.
    pub fn resolve(&self, inner: &str) -> Option<PathBuf> {
        let mut done: Vec<std::ffi::OsString> = Vec::new();
        let mut pending: Vec<std::ffi::OsString> = components(Path::new(inner));
        pending.reverse();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let mut host = self.base.clone();
            host.extend(&done);
            host.push(&part);
            let meta = fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return None;
                }
                let target = fs::read_link(&host).ok()?;
                if target.is_absolute() {
                    done.clear();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            } else {
                done.push(part);
            }
        }
        let mut host = self.base.clone();
        host.extend(&done);
        Some(host)
    }

    /// The host path of an inner path already resolved (found by the walk, which never
    /// follows links).
    pub(crate) fn host(&self, inner: &str) -> PathBuf {
        let mut host = self.base.clone();
        host.extend(components(Path::new(inner)));
        host
    }

    /// Reads the regular file at the inner path `inner` (resolved inside the root), at most
    /// `cap` bytes, counting it against the budget.
    pub fn read(&self, inner: &str, cap: u64) -> Result<Vec<u8>, ReadError> {
        let host = self.resolved(inner)?;
        self.read_host(&host, inner, cap)
    }

    /// [`Root::resolve`], or the error that says why not.
    fn resolved(&self, inner: &str) -> Result<PathBuf, ReadError> {
        self.resolve(inner).ok_or_else(|| ReadError::Io {
            path: inner.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "missing, or a symlink loop"),
        })
    }

    /// Opens the regular file at the inner path `inner` (resolved inside the root) for a reader
    /// that seeks, refusing it above `cap`, after counting its whole size against the budget.
    pub fn open(&self, inner: &str, cap: u64) -> Result<(File, u64), ReadError> {
        let host = self.resolved(inner)?;
        self.open_counted(&host, inner, cap)
    }

    /// Reads a file found by the walk (no link to resolve).
    pub(crate) fn read_walked(&self, inner: &str, cap: u64) -> Result<Vec<u8>, ReadError> {
        self.read_host(&self.host(inner), inner, cap)
    }

    fn read_host(&self, host: &Path, inner: &str, cap: u64) -> Result<Vec<u8>, ReadError> {
        let (file, size) = self.open_counted(host, inner, cap)?;
        let mut bytes = Vec::with_capacity(size as usize);
        // A file growing while read is cut at its size when opened.
        file.take(size)
            .read_to_end(&mut bytes)
            .map_err(|source| ReadError::Io {
                path: inner.to_owned(),
                source,
            })?;
        Ok(bytes)
    }

    /// Opens a regular file found by the walk, for readers that seek (archives), after
    /// counting its whole size against the budget.
    pub(crate) fn open_walked(&self, inner: &str, cap: u64) -> Result<(File, u64), ReadError> {
        self.open_counted(&self.host(inner), inner, cap)
    }

    /// Opens the regular file `host` (`inner` inside the root), refusing it above `cap`, and
    /// counts its whole size against the byte budget.
    fn open_counted(&self, host: &Path, inner: &str, cap: u64) -> Result<(File, u64), ReadError> {
        let io = |source| ReadError::Io {
            path: inner.to_owned(),
            source,
        };
        let file = self.open_regular(host).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > cap {
            return Err(ReadError::TooBig {
                path: inner.to_owned(),
                size,
                cap,
            });
        }
        if !self.take_bytes(size) {
            return Err(ReadError::Budget { what: "bytes" });
        }
        Ok((file, size))
    }

    /// Opens `host`, a path [`Root::resolve`] or the walk produced (the root's directory and
    /// components that were no links when looked at), for reading: beneath the root's
    /// directory and following no link at all (`openat2` with `RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS`), so that a workload that swaps a directory for a link between the
    /// look and the open gets the open refused (`ELOOP`, `EXDEV`) instead of reaching a file of
    /// the monitor's own filesystem (an absolute link read through `/proc/<pid>/root` would
    /// resolve in the monitor's root). Kernels without `openat2` (before 5.6) open by path, where
    /// `O_NOFOLLOW` guards the last component only. Only regular files are opened.
    fn open_regular(&self, host: &Path) -> std::io::Result<File> {
        use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
        let base = self.base_dir.get_or_init(|| {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(&self.base)
                .ok()
                .map(std::os::fd::OwnedFd::from)
        });
        let (Some(base), Ok(relative)) = (base, host.strip_prefix(&self.base)) else {
            return open_regular_by_path(host);
        };
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(base, relative, how) {
            Ok(fd) => regular(File::from(fd)),
            Err(nix::errno::Errno::ENOSYS) => open_regular_by_path(host),
            Err(errno) => Err(errno.into()),
        }
    }

    /// The entries of the directory at the inner path (resolved inside the root), sorted by
    /// name, each counted against the file budget: `(name, file type)`; links are reported as
    /// links, never followed.
    pub fn list(&self, inner: &str) -> Vec<(String, fs::FileType)> {
        match self.resolve(inner) {
            Some(host) => self.list_host(&host),
            None => Vec::new(),
        }
    }

    pub(crate) fn list_host(&self, host: &Path) -> Vec<(String, fs::FileType)> {
        let Ok(entries) = fs::read_dir(host) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if !self.take_file() {
                break;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            out.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Opens `host` for reading without following a final symlink and without blocking on a
/// FIFO, and checks it is a regular file.
fn open_regular_by_path(host: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(host)?;
    regular(file)
}

fn regular(file: File) -> std::io::Result<File> {
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The normal components of `path` (root and `.` dropped, `..` kept).
fn components(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|c| match c {
            PathComponent::Normal(part) => Some(part.to_os_string()),
            PathComponent::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("secret"), "outside").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        fs::create_dir_all(base.join("etc")).expect("mkdir");
        fs::write(base.join("etc/real"), "inside").expect("write");
        // Absolute: starts again at the container's root.
        symlink("/etc/real", base.join("etc/abs")).expect("link");
        // Relative with `..` past the root: stops at the root.
        symlink("../../../../etc/real", base.join("etc/dots")).expect("link");
        // Pointing at the host's copy of a file outside: resolved inside, so missing.
        symlink(outside.path().join("secret"), base.join("escape")).expect("link");
        symlink("loop", base.join("loop")).expect("link");
        let root = Root::new(base, Limits::default());
        assert_eq!(root.read("/etc/abs", 100).expect("abs"), b"inside");
        assert_eq!(root.read("etc/dots", 100).expect("dots"), b"inside");
        assert!(root.read("/escape", 100).is_err());
        assert!(root.read("/loop", 100).is_err());
        assert!(matches!(
            root.read("/etc/real", 3),
            Err(ReadError::TooBig { size: 6, .. })
        ));
    }

    /// A workload racing the monitor: the walk found `app` a directory, then `app` became a
    /// link to a directory outside the root before the file was opened. The open is refused;
    /// the file outside is never read.
    #[test]
    fn a_directory_swapped_for_a_link_after_the_walk_is_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("config.json"), "outside").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        fs::create_dir_all(base.join("app")).expect("mkdir");
        fs::write(base.join("app/config.json"), "inside").expect("write");
        let root = Root::new(base, Limits::default());
        assert_eq!(
            root.read_walked("/app/config.json", 100).expect("before"),
            b"inside"
        );
        fs::rename(base.join("app"), base.join("app.old")).expect("rename");
        symlink(outside.path(), base.join("app")).expect("link");
        let read = root.read_walked("/app/config.json", 100);
        assert!(read.is_err(), "{read:?}");
        // Through a resolved path as well: `resolve` names the link's target inside the root
        // (missing), never the host's.
        assert!(root.read("/app/config.json", 100).is_err());
        // A link inside the root that stays inside still reads, through `resolve`.
        fs::remove_file(base.join("app")).expect("unlink");
        symlink("/app.old", base.join("app")).expect("link");
        assert_eq!(
            root.read("/app/config.json", 100).expect("inside"),
            b"inside"
        );
    }

    #[test]
    fn the_byte_budget_stops_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a"), [0u8; 600]).expect("write");
        let root = Root::new(
            dir.path(),
            Limits {
                max_bytes: 1000,
                ..Limits::default()
            },
        );
        assert!(root.read("a", 1 << 20).is_ok());
        assert!(matches!(
            root.read("a", 1 << 20),
            Err(ReadError::Budget { what: "bytes" })
        ));
        assert_eq!(root.exhausted(), Some("bytes"));
        assert_eq!(root.used().1, 600);
    }
}
