//! Blocking, thread-per-connection stand-ins for threadlib over std (test-only): a TCP
//! stream as a [`Transport`] and `std::fs` beneath a root as a [`FileSource`]. The web
//! server's loopback test uses them, and loadgen's test against the web server includes
//! this file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use webserver::{
    serve_connection, DirEntry, DirListing, FileKind, FileMeta, FileSource, OpenError, Opened,
    RelPath, ServerContext, Settings, Totals, Transport, TransportError,
};

/// A blocking TCP stream; a read honours its deadline through the socket's read timeout.
pub struct Blocking(pub TcpStream);

impl Blocking {
    /// Reads at least one byte before `deadline` (`Ok(0)` at end of stream), or fails
    /// with [`TransportError::TimedOut`].
    pub fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::TimedOut);
        }
        self.0.set_read_timeout(Some(left))?;
        match self.0.read(buf) {
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(TransportError::TimedOut)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Transport for Blocking {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        self.read_by(buf, deadline)
    }

    async fn write(&mut self, buf: &[u8], _stall: Duration) -> Result<usize, TransportError> {
        Ok(self.0.write(buf)?)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// std::fs beneath a root (test-only: the real server confines with openat2).
pub struct StdFiles(pub PathBuf);

impl FileSource for StdFiles {
    type File = File;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<File>, OpenError> {
        let full = self.0.join(path.as_path());
        let file = File::open(&full).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => OpenError::NotFound,
            io::ErrorKind::PermissionDenied => OpenError::Forbidden,
            _ => OpenError::Io(e),
        })?;
        let meta = file.metadata()?;
        let kind = if meta.is_file() {
            FileKind::File
        } else if meta.is_dir() {
            FileKind::Directory
        } else {
            FileKind::Other
        };
        Ok(Opened {
            handle: file,
            meta: FileMeta {
                len: meta.len(),
                modified: meta.modified()?,
                kind,
            },
        })
    }

    async fn read_at(&self, file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        file.read_at(buf, offset)
    }

    async fn list_dir(&self, path: RelPath<'_>, max: usize) -> Result<DirListing, OpenError> {
        let mut listing = DirListing::default();
        for entry in std::fs::read_dir(self.0.join(path.as_path()))? {
            let entry = entry?;
            if listing.entries.len() == max {
                listing.truncated = true;
                break;
            }
            use std::os::unix::ffi::OsStrExt;
            listing.entries.push(DirEntry {
                name: entry.file_name().as_bytes().to_vec(),
                is_dir: entry.file_type()?.is_dir(),
            });
        }
        Ok(listing)
    }
}

/// The bundled sample site, `www/` at the workspace root.
pub fn www() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../www")
}

/// Serves one connection of the bundled site with `settings` on the calling thread,
/// until it ends; returns the connection's counters.
pub fn serve_site(stream: TcpStream, peer: Option<SocketAddr>, settings: Settings) -> Totals {
    let ctx = ServerContext::new(settings);
    futures::executor::block_on(serve_connection(
        &mut Blocking(stream),
        &StdFiles(www()),
        &ctx,
        peer,
    ));
    ctx.counters.snapshot()
}
