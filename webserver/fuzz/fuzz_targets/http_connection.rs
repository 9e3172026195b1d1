//! Arbitrary bytes, delivered in arbitrary pieces, as one client connection to
//! `serve_connection` over an in-memory site (with precompressed variants, and a file
//! that cannot be opened for lack of descriptors): no panic, no leaked handle, and the
//! output always starts with a status line.

#![no_main]

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use webserver::{
    serve_connection, ContentOptions, DirEntry, DirListing, FileKind, FileMeta, FileSource, Limits,
    OpenError, Opened, RelPath, ServerContext, Settings, Transport, TransportError,
};

struct Client<'a> {
    input: &'a [u8],
    piece: usize,
    clock: Instant,
    written: Vec<u8>,
}

impl Transport for Client<'_> {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        if self.input.is_empty() {
            // Silence: let the deadline pass (timeouts are exercised too).
            self.clock = deadline;
            return Err(TransportError::TimedOut);
        }
        let n = self.input.len().min(buf.len()).min(self.piece);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        self.clock += Duration::from_millis(1);
        Ok(n)
    }

    async fn write(&mut self, buf: &[u8], _stall: Duration) -> Result<usize, TransportError> {
        if self.written.len() < 1 << 20 {
            self.written.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn now(&self) -> Instant {
        self.clock
    }
}

struct Handle(Rc<Cell<i64>>, &'static [u8]);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

struct Site(Rc<Cell<i64>>);

const FILES: &[(&[u8], &[u8])] = &[
    (b"index.html", b"<h1>hi</h1>"),
    (b"a.txt", b"0123456789"),
    (b"dir/b.css", b"body{}"),
    (b"a.txt.gz", b"GZ"),
    (b"a.txt.zst", b"ZSTD"),
    (b"dir/b.css.br", b"BR"),
];

impl FileSource for Site {
    type File = Handle;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<Handle>, OpenError> {
        let p = path.as_bytes();
        let (data, kind): (&'static [u8], FileKind) = if p.is_empty() || p == b"dir" {
            (b"", FileKind::Directory)
        } else if let Some((_, data)) = FILES.iter().find(|(name, _)| *name == p) {
            (data, FileKind::File)
        } else if p.starts_with(b"index.html.") {
            // EMFILE: the variants of index.html cannot be opened.
            return Err(io::Error::from_raw_os_error(24).into());
        } else {
            return Err(OpenError::NotFound);
        };
        self.0.set(self.0.get() + 1);
        let meta = FileMeta {
            len: data.len() as u64,
            modified: SystemTime::UNIX_EPOCH,
            kind,
        };
        Ok(Opened {
            handle: Handle(self.0.clone(), data),
            meta,
        })
    }

    async fn read_at(&self, file: &Handle, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let rest = file.1.get(offset as usize..).unwrap_or(&[]);
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }

    async fn list_dir(&self, _path: RelPath<'_>, _max: usize) -> Result<DirListing, OpenError> {
        Ok(DirListing {
            entries: vec![DirEntry {
                name: b"<b>&\"x\"".to_vec(),
                is_dir: false,
            }],
            truncated: false,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let (piece, input) = match data.split_first() {
        Some((p, rest)) => (usize::from(*p % 64) + 1, rest),
        None => (1, data),
    };
    let settings = Settings {
        limits: Limits {
            max_header_bytes: 512,
            max_uri_bytes: 128,
            max_body_bytes: 256,
        },
        autoindex: input.len() % 2 == 0,
        ..Settings::default()
    };
    let ctx = ServerContext::new(settings).with_content(ContentOptions {
        precompressed: input.len() % 3 != 0,
        cache_control: Some("max-age=1".into()),
        ..ContentOptions::default()
    });
    let open = Rc::new(Cell::new(0));
    let site = Site(open.clone());
    let mut client = Client {
        input,
        piece,
        clock: Instant::now(),
        written: Vec::new(),
    };
    futures::executor::block_on(serve_connection(&mut client, &site, &ctx, None));
    assert_eq!(open.get(), 0, "leaked file handle");
    assert!(client.written.is_empty() || client.written.starts_with(b"HTTP/1.1 "));
    assert_eq!(ctx.counters.active_connections(), 0);
});
