//! In-memory transport and file source for driving `serve_connection` in tests.

// Tests run on the real clock; no simulation reaches them.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use webserver::{
    serve_connection, ConnectionEnd, DirEntry, DirListing, FileKind, FileMeta, FileSource,
    OpenError, Opened, RelPath, ServerContext, Settings, Transport, TransportError,
};

/// What the mock client does next.
#[derive(Clone)]
pub enum Event {
    /// Bytes arrive.
    Data(Vec<u8>),
    /// Nothing arrives for this long (virtual time).
    Wait(Duration),
    /// The read fails.
    Fail,
    /// Run a hook (e.g. start a shutdown) when the server reads past this point.
    Run(Rc<dyn Fn()>),
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Data(d) => write!(f, "Data({} bytes)", d.len()),
            Event::Wait(d) => write!(f, "Wait({d:?})"),
            Event::Fail => f.write_str("Fail"),
            Event::Run(_) => f.write_str("Run"),
        }
    }
}

/// A transport replaying a script of client events on a virtual clock; the script's
/// end is end of stream.
pub struct MockTransport {
    events: VecDeque<Event>,
    /// Largest number of bytes one read returns.
    pub chunk: usize,
    base: Instant,
    offset: Cell<Duration>,
    /// Everything the server wrote.
    pub written: Vec<u8>,
    /// How many writes there were.
    pub writes: usize,
    /// The spans of `written` that came through `write_more` (more to follow at once).
    pub written_more: Vec<std::ops::Range<usize>>,
    /// Fail every write.
    pub fail_writes: bool,
}

impl MockTransport {
    pub fn new(events: Vec<Event>) -> Self {
        MockTransport {
            events: events.into(),
            chunk: usize::MAX,
            base: Instant::now(),
            offset: Cell::new(Duration::ZERO),
            written: Vec::new(),
            writes: 0,
            written_more: Vec::new(),
            fail_writes: false,
        }
    }

    /// A client that sends `bytes` and then closes.
    pub fn sending(bytes: &[u8]) -> Self {
        Self::new(vec![Event::Data(bytes.to_vec())])
    }

    /// Virtual time elapsed.
    pub fn elapsed(&self) -> Duration {
        self.offset.get()
    }
}

impl Transport for MockTransport {
    async fn read(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, TransportError> {
        loop {
            match self.events.pop_front() {
                None => return Ok(0),
                Some(Event::Run(hook)) => hook(),
                Some(Event::Fail) => {
                    return Err(io::Error::from(io::ErrorKind::ConnectionReset).into())
                }
                Some(Event::Data(mut data)) => {
                    if data.is_empty() {
                        continue;
                    }
                    let n = data.len().min(buf.len()).min(self.chunk);
                    buf[..n].copy_from_slice(&data[..n]);
                    if n < data.len() {
                        data.drain(..n);
                        self.events.push_front(Event::Data(data));
                    }
                    return Ok(n);
                }
                Some(Event::Wait(d)) => {
                    let now = self.now();
                    if now + d >= deadline {
                        let waited = deadline.saturating_duration_since(now);
                        self.offset.set(self.offset.get() + waited);
                        let left = d - waited;
                        if !left.is_zero() {
                            self.events.push_front(Event::Wait(left));
                        }
                        return Err(TransportError::TimedOut);
                    }
                    self.offset.set(self.offset.get() + d);
                }
            }
        }
    }

    async fn write(&mut self, buf: &[u8], _stall: Duration) -> Result<usize, TransportError> {
        if self.fail_writes {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
        }
        self.writes += 1;
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    async fn write_more(&mut self, buf: &[u8], stall: Duration) -> Result<usize, TransportError> {
        let start = self.written.len();
        let n = self.write(buf, stall).await?;
        self.written_more.push(start..start + n);
        Ok(n)
    }

    fn now(&self) -> Instant {
        self.base + self.offset.get()
    }
}

/// A node of the mock tree.
#[derive(Debug, Clone)]
pub enum Node {
    File(Vec<u8>),
    Dir,
    Other,
    Forbidden,
    /// Opening it fails for lack of file descriptors (`EMFILE`).
    NoDescriptors,
    /// A file whose announced size is larger than its content (it shrank).
    Shrunk {
        content: Vec<u8>,
        announced: u64,
    },
}

/// The modification time of every mock file.
pub fn mtime() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(784_111_777)
}

/// An in-memory document root; counts handles so that tests can check none leaks.
#[derive(Default)]
pub struct MockFiles {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    pub open_handles: Rc<Cell<i64>>,
    pub opens: Cell<u64>,
    /// Whether it remembers which precompressed variants exist (one answer, for
    /// whichever file; off by default), and what it remembers.
    pub remembers_variants: bool,
    pub variants: Cell<Option<u8>>,
}

pub struct Handle {
    content: Vec<u8>,
    counter: Rc<Cell<i64>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.counter.set(self.counter.get() - 1);
    }
}

impl MockFiles {
    pub fn with(mut self, path: &str, node: Node) -> Self {
        self.nodes.insert(path.as_bytes().to_vec(), node);
        self
    }

    /// The standard test site.
    pub fn site() -> Self {
        MockFiles::default()
            .with("", Node::Dir)
            .with("index.html", Node::File(b"<h1>home</h1>\n".to_vec()))
            .with("style.css", Node::File(b"body{}\n".to_vec()))
            .with("ten.txt", Node::File(b"0123456789".to_vec()))
            .with("empty.txt", Node::File(Vec::new()))
            .with("big.bin", Node::File(pattern(100_000)))
            .with("docs", Node::Dir)
            .with("docs/index.html", Node::File(b"docs index".to_vec()))
            .with("pub", Node::Dir)
            .with("pub/a&b.txt", Node::File(b"x".to_vec()))
            .with("pub/sub", Node::Dir)
            .with("weird", Node::Dir)
            .with("weird/index.html", Node::Dir)
            .with("secret.txt", Node::Forbidden)
            .with("fifo", Node::Other)
            .with(
                "shrunk.txt",
                Node::Shrunk {
                    content: b"abc".to_vec(),
                    announced: 10,
                },
            )
            .with(
                "shrunk-big.bin",
                Node::Shrunk {
                    content: pattern(50_000),
                    announced: 60_000,
                },
            )
            .with("hello world.txt", Node::File(b"spaced".to_vec()))
    }
}

/// `n` deterministic bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

impl FileSource for MockFiles {
    type File = Handle;

    async fn open(&self, path: RelPath<'_>) -> Result<Opened<Handle>, OpenError> {
        self.opens.set(self.opens.get() + 1);
        let node = self.nodes.get(path.as_bytes()).ok_or(OpenError::NotFound)?;
        let (content, len, kind) = match node {
            Node::File(c) => (c.clone(), c.len() as u64, FileKind::File),
            Node::Dir => (Vec::new(), 4096, FileKind::Directory),
            Node::Other => (Vec::new(), 0, FileKind::Other),
            Node::Forbidden => return Err(OpenError::Forbidden),
            Node::NoDescriptors => return Err(io::Error::from_raw_os_error(libc::EMFILE).into()),
            Node::Shrunk { content, announced } => (content.clone(), *announced, FileKind::File),
        };
        self.open_handles.set(self.open_handles.get() + 1);
        Ok(Opened {
            handle: Handle {
                content,
                counter: self.open_handles.clone(),
            },
            meta: FileMeta {
                len,
                modified: mtime(),
                kind,
            },
        })
    }

    async fn read_at(&self, file: &Handle, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let offset = usize::try_from(offset).unwrap();
        if offset >= file.content.len() {
            return Ok(0);
        }
        // Short reads on purpose, to exercise the read loops.
        let n = buf.len().min(file.content.len() - offset).min(7000);
        buf[..n].copy_from_slice(&file.content[offset..offset + n]);
        Ok(n)
    }

    fn known_variants(&self, _file: &Handle) -> Option<u8> {
        self.variants.get()
    }

    fn remember_variants(&self, _file: &Handle, variants: u8) {
        if self.remembers_variants {
            self.variants.set(Some(variants));
        }
    }

    async fn list_dir(&self, path: RelPath<'_>, max: usize) -> Result<DirListing, OpenError> {
        let dir = path.as_bytes();
        let mut listing = DirListing::default();
        for (name, node) in &self.nodes {
            let Some(rest) = (if dir.is_empty() {
                (!name.is_empty()).then_some(&name[..])
            } else {
                name.strip_prefix(dir).and_then(|r| r.strip_prefix(b"/"))
            }) else {
                continue;
            };
            if rest.contains(&b'/') {
                continue;
            }
            if listing.entries.len() == max {
                listing.truncated = true;
                break;
            }
            listing.entries.push(DirEntry {
                name: rest.to_vec(),
                is_dir: matches!(node, Node::Dir),
            });
        }
        Ok(listing)
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Splits `bytes` into responses; `head[i]` says whether response `i` answers a HEAD
/// (no body whatever Content-Length says). Missing entries mean GET.
pub fn parse_responses(mut bytes: &[u8], head: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(bytes).expect("well-formed response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!(
                "truncated response head: {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        let status = resp.code.unwrap();
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let is_head = head.get(out.len()).copied().unwrap_or(false);
        let len: usize = if is_head || status == 304 {
            0
        } else {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .expect("every response has Content-Length")
        };
        assert!(bytes.len() >= n + len, "truncated body");
        out.push(Resp {
            status,
            headers,
            body: bytes[n..n + len].to_vec(),
        });
        bytes = &bytes[n + len..];
    }
    out
}

/// Fixed wall clock for `Date`.
pub fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn context(settings: Settings) -> ServerContext {
    ServerContext::with_clock(settings, wall)
}

/// Runs one connection to completion.
pub fn serve(io: &mut MockTransport, files: &MockFiles, ctx: &ServerContext) -> ConnectionEnd {
    futures::executor::block_on(serve_connection(io, files, ctx, None))
}

/// Sends `request` on a fresh connection to the standard site with default settings;
/// returns the responses and how the connection ended.
pub fn exchange(request: &str) -> (Vec<Resp>, ConnectionEnd) {
    exchange_with(request, Settings::default(), &[])
}

pub fn exchange_with(
    request: &str,
    settings: Settings,
    head: &[bool],
) -> (Vec<Resp>, ConnectionEnd) {
    let files = MockFiles::site();
    let ctx = context(settings);
    let mut io = MockTransport::sending(request.as_bytes());
    let end = serve(&mut io, &files, &ctx);
    assert_eq!(files.open_handles.get(), 0, "file handles leaked");
    (parse_responses(&io.written, head), end)
}

/// A GET for `path` with extra header lines.
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}
