//! The server's document root in memory, with the faults a seed draws: reads failing
//! with EIO for a while, short reads, a file replaced by new content (open handles keep
//! the old, as with an inode) or truncated in place (open handles see it). Every state
//! each path's content has been in is kept for the oracle.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use webserver::{DirListing, FileKind, FileMeta, FileSource, OpenError, Opened, RelPath};

use crate::params::{FileFault, Params};

/// A file's content and identity (an inode).
#[derive(Debug)]
struct Inode {
    data: RefCell<Vec<u8>>,
    modified: SystemTime,
}

/// One path of the root.
#[derive(Debug)]
struct Path {
    current: Rc<Inode>,
    /// Every content the path has shown: each inode's, and each truncation's.
    states: Vec<Rc<[u8]>>,
    /// Reads and opens fail until then.
    eio_until: Option<Duration>,
}

#[derive(Debug)]
struct State {
    paths: Vec<Path>,
    faults: Vec<(FileFault, bool)>,
    short_reads: bool,
    seed: u64,
    versions: u32,
}

/// An open file; counted while alive.
#[derive(Debug)]
pub struct Handle {
    inode: Rc<Inode>,
    path: usize,
    open: Rc<Cell<usize>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.open.set(self.open.get() - 1);
    }
}

/// The simulated document root: `/f0`, `/f1`, ... of the sizes the seed drew.
#[derive(Debug, Clone)]
pub struct SimFiles {
    state: Rc<RefCell<State>>,
    open: Rc<Cell<usize>>,
}

/// Deterministic content of file `i` in version `v`.
fn content(seed: u64, i: usize, v: u32, len: usize) -> Vec<u8> {
    let mut r = crate::params::rng(seed ^ ((i as u64) << 40) ^ (u64::from(v) << 20), 99);
    let mut out = vec![0u8; len];
    r.fill_bytes(&mut out);
    out
}

impl SimFiles {
    /// The root `params` describes.
    pub fn new(params: &Params) -> SimFiles {
        let paths = params
            .files
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let data = content(params.seed, i, 0, len);
                Path {
                    states: vec![data.clone().into()],
                    current: Rc::new(Inode {
                        data: RefCell::new(data),
                        modified: UNIX_EPOCH + Duration::from_secs(1_600_000_000),
                    }),
                    eio_until: None,
                }
            })
            .collect();
        SimFiles {
            state: Rc::new(RefCell::new(State {
                paths,
                faults: params.file_faults.iter().map(|&f| (f, false)).collect(),
                short_reads: params.short_reads,
                seed: params.seed,
                versions: 0,
            })),
            open: Rc::new(Cell::new(0)),
        }
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.open.get()
    }

    /// Every content `/f{i}` has shown.
    pub fn states(&self, i: usize) -> Vec<Rc<[u8]>> {
        self.state
            .borrow()
            .paths
            .get(i)
            .map(|p| p.states.clone())
            .unwrap_or_default()
    }

    /// Whether `/f{i}` had a fault (its responses may end early).
    pub fn faulted(&self, i: usize) -> bool {
        self.state
            .borrow()
            .faults
            .iter()
            .any(|(f, applied)| *applied && fault_file(f) == i)
    }

    /// Applies the faults due by now (virtual time since the start).
    fn apply_faults(&self) {
        let now = threadlib::time::elapsed();
        let mut s = self.state.borrow_mut();
        let State {
            paths,
            faults,
            seed,
            versions,
            ..
        } = &mut *s;
        for (fault, applied) in faults.iter_mut() {
            let at = match *fault {
                FileFault::Eio { at, .. } | FileFault::Replace { at, .. } => at,
                FileFault::Truncate { at, .. } => at,
            };
            if *applied || now < at {
                continue;
            }
            *applied = true;
            let p = &mut paths[fault_file(fault)];
            match *fault {
                FileFault::Eio { lasts, .. } => p.eio_until = Some(at + lasts),
                FileFault::Replace { file, .. } => {
                    *versions += 1;
                    let len = p.current.data.borrow().len() / 2 + 7;
                    let data = content(*seed, file, *versions, len);
                    p.states.push(data.clone().into());
                    p.current = Rc::new(Inode {
                        data: RefCell::new(data),
                        modified: UNIX_EPOCH
                            + Duration::from_secs(1_600_000_000 + u64::from(*versions)),
                    });
                }
                FileFault::Truncate { len, .. } => {
                    let mut d = p.current.data.borrow_mut();
                    let len = len.min(d.len());
                    d.truncate(len);
                    p.states.push(d.clone().into());
                }
            }
        }
    }

    fn failing(&self, path: usize) -> bool {
        let now = threadlib::time::elapsed();
        self.state.borrow().paths[path]
            .eio_until
            .is_some_and(|until| now < until)
    }
}

fn fault_file(f: &FileFault) -> usize {
    match *f {
        FileFault::Eio { file, .. } | FileFault::Replace { file, .. } => file,
        FileFault::Truncate { file, .. } => file,
    }
}

/// The index `i` of a path `f{i}`.
pub fn file_index(path: &[u8]) -> Option<usize> {
    std::str::from_utf8(path.strip_prefix(b"f")?)
        .ok()?
        .parse()
        .ok()
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc_eio())
}

const fn libc_eio() -> i32 {
    5
}

impl FileSource for SimFiles {
    type File = Option<Handle>;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<Option<Handle>>, OpenError> {
        self.apply_faults();
        if path.as_bytes().is_empty() {
            let meta = FileMeta {
                len: 0,
                modified: UNIX_EPOCH,
                kind: FileKind::Directory,
            };
            return Ok(Opened { handle: None, meta });
        }
        let Some(i) = file_index(path.as_bytes()).filter(|&i| i < self.state.borrow().paths.len())
        else {
            return Err(OpenError::NotFound);
        };
        if self.failing(i) {
            return Err(OpenError::Io(eio()));
        }
        let inode = self.state.borrow().paths[i].current.clone();
        let meta = FileMeta {
            len: inode.data.borrow().len() as u64,
            modified: inode.modified,
            kind: FileKind::File,
        };
        self.open.set(self.open.get() + 1);
        Ok(Opened {
            handle: Some(Handle {
                inode,
                path: i,
                open: self.open.clone(),
            }),
            meta,
        })
    }

    async fn read_at(
        &self,
        file: &Option<Handle>,
        offset: u64,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        self.apply_faults();
        let Some(h) = file else {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        };
        if self.failing(h.path) {
            return Err(eio());
        }
        let data = h.inode.data.borrow();
        let Some(rest) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) else {
            return Ok(0);
        };
        let mut n = rest.len().min(buf.len());
        if self.state.borrow().short_reads && n > 1 {
            // A deterministic short read: between 1 and 997 bytes.
            n = n.min(1 + (offset as usize * 31 + n) % 997);
        }
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    async fn list_dir(&self, _path: RelPath<'_>, _max: usize) -> Result<DirListing, OpenError> {
        Err(OpenError::Forbidden)
    }
}
