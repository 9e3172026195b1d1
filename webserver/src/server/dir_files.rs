//! [`FileSource`] over a threadlib [`Dir`] capability, with a per-core cache of open
//! files and small files' bytes.
//!
//! Every open goes through the kernel's `openat2(RESOLVE_BENEATH)` (io_uring), so
//! `..`, absolute paths and symlinks leaving the root are refused by the kernel. Like
//! nginx's `open_file_cache`, an opened path is remembered with its descriptor, its
//! metadata and, for files up to [`CONTENT_MAX`], its bytes; an entry older than
//! [`REVALIDATE`] is checked again (opened and `statx`ed anew) before it is used, so a
//! changed file is served within that time. The cache is bounded in entries and bytes.
//! Paths found missing are remembered as such for the same time (as nginx's
//! `open_file_cache_errors`), in a separate bounded set, so that the lookups of
//! precompressed variants that do not exist cost no system call. An open file's entry
//! also remembers which of its precompressed variants exist while the entry is fresh
//! (the knowledge goes stale with the entry), so a request for a fresh entry looks
//! none of them up. When a stale entry
//! cannot be checked because the process is out of file descriptors, it is served as
//! it is (its own descriptor still reads the file it opened) rather than failing.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use threadlib::fs::{Dir, File, Metadata};
use threadlib::{time, Error};
use webserver::files::copy_through_buffer;
use webserver::{
    DirEntry, DirListing, FileKind, FileMeta, FileSource, OpenError, Opened, RelPath, SendError,
    Transport,
};

/// How long a cached entry is trusted before it is checked against the file system.
pub const REVALIDATE: Duration = Duration::from_secs(1);
/// Files up to this size have their bytes cached.
pub const CONTENT_MAX: u64 = 16 * 1024;
/// Most entries cached per core.
pub const MAX_ENTRIES: usize = 1024;
/// Most file bytes cached per core.
pub const MAX_CONTENT_BYTES: usize = 8 << 20;
/// Most paths remembered as missing per core.
pub const MAX_MISSING: usize = 1024;

/// An open file or directory, shared by the requests using it and the cache.
#[derive(Debug)]
pub struct Handle {
    file: File,
    meta: FileMeta,
    identity: (u64, u64),
    content: Option<Box<[u8]>>,
    checked: Cell<Instant>,
    /// Which precompressed variants exist, as found since the entry was last
    /// checked: cleared when the entry goes stale, so it is never older than the
    /// entry's own freshness.
    variants: Cell<Option<u8>>,
}

/// The document root of one core.
pub struct DirFiles {
    dir: Dir,
    cache: RefCell<HashMap<Box<[u8]>, Rc<Handle>>>,
    /// Paths found missing, and when.
    missing: RefCell<HashMap<Box<[u8]>, Instant>>,
    content_bytes: Cell<usize>,
    /// Reused io_uring read buffer (taken while a read is in flight).
    scratch: Cell<Vec<u8>>,
}

impl DirFiles {
    /// Serves files beneath `dir`.
    pub fn new(dir: Dir) -> Self {
        DirFiles {
            dir,
            // Looked up by path, never iterated: its order cannot leak.
            #[allow(clippy::disallowed_methods)]
            cache: RefCell::new(HashMap::new()),
            // The same.
            #[allow(clippy::disallowed_methods)]
            missing: RefCell::new(HashMap::new()),
            content_bytes: Cell::new(0),
            scratch: Cell::new(Vec::new()),
        }
    }

    fn cached(&self, path: &[u8], now: Instant) -> Option<Rc<Handle>> {
        let cache = self.cache.borrow();
        let h = cache.get(path)?;
        (now.saturating_duration_since(h.checked.get()) < REVALIDATE).then(|| h.clone())
    }

    /// Whether `path` was found missing less than [`REVALIDATE`] ago.
    fn known_missing(&self, path: &[u8], now: Instant) -> bool {
        self.missing
            .borrow()
            .get(path)
            .is_some_and(|&t| now.saturating_duration_since(t) < REVALIDATE)
    }

    /// Remembers that `path` is missing if the bound allows, forgetting stale entries
    /// first when full.
    fn remember_missing(&self, path: &[u8], now: Instant) {
        let mut missing = self.missing.borrow_mut();
        if missing.len() >= MAX_MISSING {
            missing.retain(|_, t| now.saturating_duration_since(*t) < REVALIDATE);
        }
        if missing.len() < MAX_MISSING {
            missing.insert(path.into(), now);
        }
    }

    /// Remembers `h` under `path` if the bounds allow, evicting stale entries first
    /// when full.
    fn remember(&self, path: &[u8], h: &Rc<Handle>, now: Instant) {
        let mut cache = self.cache.borrow_mut();
        let size = |h: &Handle| h.content.as_ref().map_or(0, |c| c.len());
        if let Some(old) = cache.remove(path) {
            self.content_bytes
                .set(self.content_bytes.get() - size(&old));
        }
        if cache.len() >= MAX_ENTRIES || self.content_bytes.get() + size(h) > MAX_CONTENT_BYTES {
            let mut freed = 0;
            cache.retain(|_, e| {
                let keep = now.saturating_duration_since(e.checked.get()) < REVALIDATE;
                if !keep {
                    freed += size(e);
                }
                keep
            });
            self.content_bytes.set(self.content_bytes.get() - freed);
        }
        if cache.len() < MAX_ENTRIES && self.content_bytes.get() + size(h) <= MAX_CONTENT_BYTES {
            self.content_bytes.set(self.content_bytes.get() + size(h));
            cache.insert(path.into(), h.clone());
        }
    }

    async fn open_fresh(&self, path: &str, now: Instant) -> Result<Handle, OpenError> {
        let file = self.dir.open(path).await.map_err(open_error)?;
        let m = file.metadata().await.map_err(other_error)?;
        let meta = file_meta(&m);
        let content = if meta.kind == FileKind::File && meta.len <= CONTENT_MAX {
            let bytes = file
                .read_to_end(CONTENT_MAX as usize + 1)
                .await
                .map_err(other_error)?;
            // A file changing under us: serve it uncached this time.
            (bytes.len() as u64 == meta.len).then(|| bytes.into_boxed_slice())
        } else {
            None
        };
        Ok(Handle {
            file,
            meta,
            identity: (m.dev, m.ino),
            content,
            checked: Cell::new(now),
            variants: Cell::new(None),
        })
    }
}

fn file_meta(m: &Metadata) -> FileMeta {
    let kind = if m.is_file {
        FileKind::File
    } else if m.is_dir {
        FileKind::Directory
    } else {
        FileKind::Other
    };
    FileMeta {
        len: m.size,
        modified: m.modified,
        kind,
    }
}

/// Maps an open failure: the kernel's refusals to leave the root (`EXDEV`, `ELOOP`)
/// and permission errors are 403; missing paths 404; no descriptor left (`EMFILE`,
/// `ENFILE`) 503.
fn open_error(e: Error) -> OpenError {
    match e {
        Error::Io(e) => match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => OpenError::NotFound,
            Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM) => OpenError::Forbidden,
            _ => OpenError::from(e),
        },
        e => other_error(e),
    }
}

fn other_error(e: Error) -> OpenError {
    OpenError::from(io::Error::from(e))
}

/// Paths reach the kernel as UTF-8 (threadlib's `Dir` takes `&str`); a name that is
/// not cannot exist in a root served by this binary.
fn as_str(path: RelPath<'_>) -> Result<&str, OpenError> {
    std::str::from_utf8(path.as_bytes()).map_err(|_| OpenError::NotFound)
}

impl FileSource for DirFiles {
    type File = Rc<Handle>;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<Rc<Handle>>, OpenError> {
        let now = time::now();
        let key = path.as_bytes();
        // A path is never fresh in both maps: it goes into `missing` only once its cache
        // entry is stale, and leaves it when found again. Asking `missing` first costs
        // a precompressed variant that does not exist one lookup, not two.
        if self.known_missing(key, now) {
            return Err(OpenError::NotFound);
        }
        if let Some(h) = self.cached(key, now) {
            return Ok(Opened {
                meta: h.meta,
                handle: h,
            });
        }
        let previous = self.cache.borrow().get(key).cloned();
        if let Some(old) = &previous {
            // Stale: what it knew of its variants is, too.
            old.variants.set(None);
        }
        let fresh = match self.open_fresh(as_str(path)?, now).await {
            Ok(fresh) => fresh,
            Err(OpenError::NotFound) => {
                self.remember_missing(key, now);
                return Err(OpenError::NotFound);
            }
            Err(OpenError::NoDescriptors(e)) => {
                // It cannot be checked now; its own descriptor still reads the file
                // it was. It stays stale, so the next request checks again.
                return match previous {
                    Some(old) => Ok(Opened {
                        meta: old.meta,
                        handle: old,
                    }),
                    None => Err(OpenError::NoDescriptors(e)),
                };
            }
            Err(e) => return Err(e),
        };
        self.missing.borrow_mut().remove(key);
        if let Some(old) = previous {
            if old.identity == fresh.identity && old.meta == fresh.meta {
                // Unchanged: keep the cached bytes, trust it for another period.
                old.checked.set(now);
                return Ok(Opened {
                    meta: old.meta,
                    handle: old,
                });
            }
        }
        let h = Rc::new(fresh);
        self.remember(key, &h, now);
        Ok(Opened {
            meta: h.meta,
            handle: h,
        })
    }

    async fn read_at(&self, h: &Rc<Handle>, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(content) = &h.content {
            let rest = usize::try_from(offset)
                .ok()
                .and_then(|o| content.get(o..))
                .unwrap_or_default();
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            return Ok(n);
        }
        let scratch = self.scratch.take();
        let got = h.file.read_at(scratch, buf.len(), offset).await?;
        let n = got.len().min(buf.len());
        buf[..n].copy_from_slice(&got[..n]);
        self.scratch.set(got);
        Ok(n)
    }

    async fn list_dir(
        &self,
        path: RelPath<'_>,
        max_entries: usize,
    ) -> Result<DirListing, OpenError> {
        let dir = as_str(path)?;
        let names = self.dir.read_dir(dir).await.map_err(open_error)?;
        let mut listing = DirListing {
            truncated: names.len() > max_entries,
            ..DirListing::default()
        };
        for name in names.into_iter().take(max_entries) {
            let child = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            // Entries whose target leaves the root fail to open: listed as files.
            let is_dir = self.dir.open_dir(&child).await.is_ok();
            listing.entries.push(DirEntry {
                name: name.into_bytes(),
                is_dir,
            });
        }
        Ok(listing)
    }

    async fn send_to<T: Transport>(
        &self,
        h: &Rc<Handle>,
        offset: u64,
        len: u64,
        out: &mut T,
        scratch: &mut Vec<u8>,
        write_timeout: Duration,
    ) -> Result<(), SendError> {
        let mut sent = 0;
        match out
            .send_file(&h.file, offset, len, write_timeout, &mut sent)
            .await
        {
            Some(sent) => sent,
            None => copy_through_buffer(self, h, offset, len, out, scratch, write_timeout).await,
        }
    }

    /// Trusted while the entry is, as an open is: found since the entry was last
    /// checked, and forgotten once it goes stale.
    fn known_variants(&self, h: &Rc<Handle>) -> Option<u8> {
        h.variants.get()
    }

    fn remember_variants(&self, h: &Rc<Handle>, variants: u8) {
        h.variants.set(Some(variants));
    }
}
