//! One HTTP/1.x connection: read requests, answer them in order, keep alive or close.
//!
//! [`serve_connection`] owns three buffers per connection: the read buffer (grown up to
//! the header limit), the output buffer that collects response heads and small bodies
//! (responses to pipelined requests are batched into one write), and a scratch buffer
//! used only while streaming a large file. Memory per connection is therefore bounded
//! by the header limit, plus [`FLUSH_AT`] and one more buffered response (a head with
//! at most [`INLINE_BODY`] of body, or an autoindex listing of at most
//! [`MAX_ENTRIES`](crate::autoindex::MAX_ENTRIES) names), plus
//! [`SEND_CHUNK`](crate::files::SEND_CHUNK).
//!
//! Timeouts: a request head must arrive completely within `header_timeout` of its
//! first byte (of the connection's start for the first request), else 408 and close
//! (slowloris). Between requests a keep-alive connection waits at most
//! `keepalive_timeout` for the next first byte, then closes silently. A write fails when
//! the client takes no byte for `send_timeout` (a slow reader that keeps reading is
//! served). A request body being discarded must keep arriving:
//! each read of it waits at most `header_timeout`.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::access_log::{AccessLog, LogEntry};
use crate::autoindex;
use crate::conditional::{self, Precondition, Validators};
use crate::counters::Counters;
use crate::date::{DateCache, WallClock};
use crate::encoding::{AcceptEncoding, Coding};
use crate::files::{FileKind, FileSource, OpenError, Opened, SendError};
use crate::media_types::MediaTypes;
use crate::path::{encode_path, normalize, RelPath};
use crate::range::{self, RangeOutcome};
use crate::request::{self, Limits, Method, Request, RequestError, Version, MAX_HEADERS};
use crate::response::{error_page, error_page_len, Head, Status};
use crate::throttle;
use crate::transport::{Counted, Transport, TransportError};

/// Bodies up to this size are copied into the output buffer behind their head and
/// sent with it in one write; larger ones are streamed with [`FileSource::send_to`].
pub const INLINE_BODY: u64 = 16 * 1024;

/// Pending output is written once it reaches this size even if more pipelined
/// requests are waiting, to bound the output buffer.
pub const FLUSH_AT: usize = 64 * 1024;

/// `Retry-After` of a 503 for lack of file descriptors, in seconds: descriptors come
/// back as connections close.
const RETRY_AFTER: &[u8] = b"1";

/// The read buffer starts this small and doubles up to the header limit as needed.
const INITIAL_READ_BUF: usize = 2 * 1024;

/// Tunables of the connection logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Request size limits.
    pub limits: Limits,
    /// Whether directories without `index.html` get an HTML listing (else 403).
    pub autoindex: bool,
    /// Time allowed for a whole request head (408 after).
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open.
    pub keepalive_timeout: Duration,
    /// Time the client may take no byte of a response before the connection is closed.
    pub send_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            autoindex: false,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// How files are represented in responses. Cheap to clone: the binary builds it once
/// and every core's [`ServerContext`] holds a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentOptions {
    /// Serve a precompressed variant (`file.zst`, `file.br`, `file.gz` beside `file`)
    /// when the request's `Accept-Encoding` allows it; see [`crate::encoding`]. Every
    /// response about a file that has variants carries `Vary: Accept-Encoding`.
    pub precompressed: bool,
    /// The `Cache-Control` value of successful file responses (200, 206, 304), if
    /// any; error responses, redirects and listings never carry it. Must be a valid
    /// field value ([`crate::response::is_field_value`]).
    pub cache_control: Option<Arc<str>>,
    /// The media types of files, by extension.
    pub media_types: Arc<MediaTypes>,
}

/// What the connections of one core share: settings, the date cache, the counters,
/// the access log and the shutdown flag. Not `Sync`: one per core.
pub struct ServerContext {
    /// The tunables.
    pub settings: Settings,
    /// How files are represented (variants, headers, media types).
    pub content: ContentOptions,
    /// The per-second `Date` cache (also the clock of log records).
    pub date: DateCache,
    /// This core's counters.
    pub counters: Counters,
    access_log: Option<Box<dyn AccessLog>>,
    shutting_down: Cell<bool>,
}

impl ServerContext {
    /// A context with the system clock and no access log.
    // The real server's clock; a simulation passes its own to `with_clock`.
    #[allow(clippy::disallowed_methods)]
    pub fn new(settings: Settings) -> Self {
        Self::with_clock(settings, std::time::SystemTime::now)
    }

    /// A context whose `Date` and log times come from `clock`.
    pub fn with_clock(settings: Settings, clock: WallClock) -> Self {
        ServerContext {
            settings,
            content: ContentOptions::default(),
            date: DateCache::new(clock),
            counters: Counters::default(),
            access_log: None,
            shutting_down: Cell::new(false),
        }
    }

    /// Represents files as `content` says (default: [`ContentOptions::default`]).
    pub fn with_content(mut self, content: ContentOptions) -> Self {
        self.content = content;
        self
    }

    /// Sends a record of every response to `log`.
    pub fn with_access_log(mut self, log: Box<dyn AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Starts a graceful shutdown: responses from now on carry `Connection: close`, and
    /// connections return instead of waiting for another request. Connections blocked
    /// reading an idle keep-alive connection are the caller's to cancel.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
    }

    /// Whether [`ServerContext::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    fn log(&self, peer: Option<SocketAddr>, req: Option<&Request<'_>>, status: u16, body: u64) {
        let line = req.map(|r| (r.method_token, r.target, r.version));
        self.log_line(peer, line, status, body);
    }

    /// Logs a response to the request line `(method, target, version)`, if it was
    /// parsed.
    fn log_line(
        &self,
        peer: Option<SocketAddr>,
        line: Option<(&str, &str, Version)>,
        status: u16,
        body: u64,
    ) {
        if let Some(log) = &self.access_log {
            log.record(&LogEntry {
                peer,
                time: self.date.now(),
                method: line.map_or("-", |l| l.0),
                target: line.map_or("-", |l| l.1),
                version: line.map(|l| l.2),
                status,
                body_bytes: body,
            });
        }
    }

    /// The access-log entry of `req`'s response, whose body is still to stream; `None`
    /// without an access log.
    fn pending_log(
        &self,
        peer: Option<SocketAddr>,
        req: &Request<'_>,
        status: u16,
    ) -> Option<PendingLog> {
        self.access_log.as_ref()?;
        Some(PendingLog {
            peer,
            method: req.method_token.into(),
            target: req.target.into(),
            version: req.version,
            status,
        })
    }

    /// Logs a streamed response once its body has gone, `body` bytes of it taken by the
    /// connection.
    fn log_streamed(&self, pending: Option<PendingLog>, body: u64) {
        if let Some(p) = pending {
            let line = (&*p.method, &*p.target, p.version);
            self.log_line(p.peer, Some(line), p.status, body);
        }
    }
}

/// The access-log entry of a response whose body streams after its head: logged when
/// the body has gone (or failed), with the bytes the connection took. It holds a copy
/// of the request line, since the read buffer may be reused meanwhile. A connection
/// whose future is dropped while the body streams logs nothing for it; the server
/// cancels connections instead, which ends the sending with an error, and logs.
struct PendingLog {
    peer: Option<SocketAddr>,
    method: Box<str>,
    target: Box<str>,
    version: Version,
    status: u16,
}

/// Why a connection could not finish normally.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading from or writing to the client failed or timed out.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Streaming a file body failed midway.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// How a connection ended.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The client closed its side between or during requests.
    PeerClosed,
    /// The server closed after a response (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or an error that ends the connection).
    Closed,
    /// An idle keep-alive connection timed out (closed without a response).
    IdleTimeout,
    /// A request head did not arrive in time: 408 was sent.
    HeaderTimeout,
    /// Shutdown was under way and the connection was between requests.
    Shutdown,
    /// I/O failed.
    Failed(ConnectionError),
}

/// Serves HTTP/1.0 and HTTP/1.1 requests on `io` from `files` until the connection
/// ends. `peer` only feeds the access log.
pub async fn serve_connection<T: Transport, F: FileSource>(
    io: &mut T,
    files: &F,
    ctx: &ServerContext,
    peer: Option<SocketAddr>,
) -> ConnectionEnd {
    ctx.counters.connection_opened();
    // Counts the connection as closed even when the future is dropped (cancelled).
    struct Guard<'a>(&'a Counters);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.connection_closed();
        }
    }
    let _guard = Guard(&ctx.counters);
    let mut io = Counted {
        inner: io,
        counters: &ctx.counters,
        written: 0,
    };
    let mut conn = Conn {
        io: &mut io,
        ctx,
        out: Vec::with_capacity(1024),
        scratch: Vec::new(),
        path: Vec::new(),
        variant: Vec::new(),
    };
    match conn.run(files, peer).await {
        Ok(end) => end,
        Err(e) => ConnectionEnd::Failed(e),
    }
}

struct Conn<'a, 'b, T> {
    io: &'a mut Counted<'b, T>,
    ctx: &'a ServerContext,
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// Reused for the decoded path of each request.
    path: Vec<u8>,
    /// Reused for the paths of precompressed variants.
    variant: Vec<u8>,
}

/// A response decided and written (head, and body if buffered) into the output.
struct Reply<H> {
    status: Status,
    /// Body bytes of the response (for the access log, unless the body streams).
    body_bytes: u64,
    keep_alive: bool,
    /// A body still to stream after the head.
    stream: Option<Stream<H>>,
}

struct Stream<H> {
    file: H,
    offset: u64,
    len: u64,
}

/// The outcome of looking at the read buffer.
enum Step<H> {
    NeedMore,
    Reject(RequestError),
    Served {
        head_len: usize,
        body_len: u64,
        reply: Reply<H>,
        /// The access-log entry of a reply whose body streams.
        pending: Option<PendingLog>,
    },
}

impl<T: Transport> Conn<'_, '_, T> {
    async fn run<F: FileSource>(
        &mut self,
        files: &F,
        peer: Option<SocketAddr>,
    ) -> Result<ConnectionEnd, ConnectionError> {
        let settings = self.ctx.settings;
        let limits = settings.limits;
        let cap = limits.max_header_bytes.max(64);
        let mut buf = vec![0u8; INITIAL_READ_BUF.min(cap)];
        let (mut start, mut end) = (0usize, 0usize);
        // Deadline of the request head being received; `None` while idle between
        // requests. The first request is timed from the connection's start.
        let mut head_deadline = Some(self.io.now() + settings.header_timeout);
        loop {
            let step = if start < end {
                let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
                match request::parse(&buf[start..end], &mut headers, &limits) {
                    Ok(None) => Step::NeedMore,
                    Err(e) => Step::Reject(e),
                    Ok(Some(req)) => {
                        let keep_alive = req.keep_alive && !self.ctx.is_shutting_down();
                        let reply = self.respond(&req, files, keep_alive).await;
                        let status = reply.status.code();
                        self.ctx.counters.response(status);
                        // A streamed body is logged once it has gone, with what was sent.
                        let pending = if reply.stream.is_some() {
                            self.ctx.pending_log(peer, &req, status)
                        } else {
                            self.ctx.log(peer, Some(&req), status, reply.body_bytes);
                            None
                        };
                        Step::Served {
                            head_len: req.head_len,
                            body_len: req.body_len,
                            reply,
                            pending,
                        }
                    }
                }
            } else {
                Step::NeedMore
            };
            match step {
                Step::Reject(e) => {
                    let status = e.status();
                    let body = self.error(status, false, false, false, &[]);
                    self.ctx.counters.response(status.code());
                    self.ctx.log(peer, None, status.code(), body);
                    self.flush().await?;
                    return Ok(ConnectionEnd::Closed);
                }
                Step::Served {
                    head_len,
                    body_len,
                    reply,
                    pending,
                } => {
                    start += head_len;
                    let in_buf = body_len.min((end - start) as u64);
                    start += in_buf as usize;
                    let mut body_left = body_len - in_buf;
                    if body_left > 0 {
                        // The client may wait for the answer before sending the body.
                        if let Err(e) = self.flush().await {
                            self.abandon(files, reply.stream, pending).await;
                            return Err(e.into());
                        }
                        while body_left > 0 {
                            let deadline = self.io.now() + settings.header_timeout;
                            let n = match self.io.read(&mut buf, deadline).await {
                                Ok(0) | Err(_) => {
                                    self.abandon(files, reply.stream, pending).await;
                                    return Ok(ConnectionEnd::PeerClosed);
                                }
                                Ok(n) => n,
                            };
                            let take = body_left.min(n as u64);
                            body_left -= take;
                            (start, end) = (take as usize, n);
                        }
                    }
                    if let Some(s) = reply.stream {
                        let (sent, body) = self.send_file(files, &s).await;
                        files.close(s.file).await;
                        self.ctx.log_streamed(pending, body);
                        sent?;
                    }
                    if !reply.keep_alive {
                        self.flush().await?;
                        return Ok(ConnectionEnd::Closed);
                    }
                    if self.out.len() >= FLUSH_AT {
                        self.flush().await?;
                    }
                    head_deadline = None;
                    continue;
                }
                Step::NeedMore => {}
            }

            // Answer everything parsed so far before blocking for more input.
            self.flush().await?;
            if start == end {
                (start, end) = (0, 0);
                if self.ctx.is_shutting_down() {
                    return Ok(ConnectionEnd::Shutdown);
                }
                self.scratch = Vec::new();
            }
            if end == buf.len() {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    (start, end) = (0, end - start);
                } else if buf.len() < cap {
                    buf.resize((buf.len() * 2).min(cap), 0);
                } else {
                    // Unreachable while `request::parse` enforces the header limit;
                    // answered as that limit rather than trusted.
                    let body = self.error(Status::HeadersTooLarge, false, false, false, &[]);
                    self.ctx.counters.response(431);
                    self.ctx.log(peer, None, 431, body);
                    self.flush().await?;
                    return Ok(ConnectionEnd::Closed);
                }
            }
            // A partial head is timed from the first time we wait for its rest: that
            // is right after its first bytes arrived, and costs no clock read when
            // whole requests arrive in one read.
            let now = self.io.now();
            if start < end && head_deadline.is_none() {
                head_deadline = Some(now + settings.header_timeout);
            }
            let deadline = head_deadline.unwrap_or(now + settings.keepalive_timeout);
            match self.io.read(&mut buf[end..], deadline).await {
                Ok(0) => return Ok(ConnectionEnd::PeerClosed),
                Ok(n) => end += n,
                Err(TransportError::TimedOut) if head_deadline.is_none() => {
                    self.ctx.counters.idle_timeout();
                    return Ok(ConnectionEnd::IdleTimeout);
                }
                Err(TransportError::TimedOut) => {
                    self.ctx.counters.header_timeout();
                    let body = self.error(Status::RequestTimeout, false, false, false, &[]);
                    self.ctx.counters.response(408);
                    self.ctx.log(peer, None, 408, body);
                    self.flush().await?;
                    return Ok(ConnectionEnd::HeaderTimeout);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes the pending output.
    async fn flush(&mut self) -> Result<(), TransportError> {
        self.write_out(false).await
    }

    /// Writes the pending output; `body_follows`: a streamed body comes right after
    /// it, so a short tail (a head) may wait to leave with the body's first bytes.
    async fn write_out(&mut self, body_follows: bool) -> Result<(), TransportError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let stall = self.ctx.settings.send_timeout;
        if body_follows {
            self.io.write_all_more(&self.out, stall).await?;
        } else {
            self.io.write_all(&self.out, stall).await?;
        }
        self.out.clear();
        if self.out.capacity() > 2 * FLUSH_AT {
            self.out.shrink_to(FLUSH_AT);
        }
        Ok(())
    }

    /// Gives up a reply's streamed body before any of it was sent: closes the file and
    /// logs the reply with no body bytes.
    async fn abandon<F: FileSource>(
        &self,
        files: &F,
        stream: Option<Stream<F::File>>,
        pending: Option<PendingLog>,
    ) {
        if let Some(s) = stream {
            files.close(s.file).await;
        }
        self.ctx.log_streamed(pending, 0);
    }

    /// Writes the pending head, then streams the file body; also returns how many
    /// bytes of the body the connection took, all of them or, when it failed, some.
    ///
    /// The head leaves with the body's first bytes rather than as a small segment of
    /// its own: that saves a packet, and on Linux a lone small segment ahead of a large
    /// body can keep the client's receive window from growing (connections stuck at
    /// 64 KiB take a round trip through the server for every window of the body).
    async fn send_file<F: FileSource>(
        &mut self,
        files: &F,
        s: &Stream<F::File>,
    ) -> (Result<(), ConnectionError>, u64) {
        if let Err(e) = self.write_out(true).await {
            return (Err(e.into()), 0);
        }
        let before = self.io.written;
        let timeout = self.ctx.settings.send_timeout;
        let sent = files
            .send_to(
                &s.file,
                s.offset,
                s.len,
                &mut *self.io,
                &mut self.scratch,
                timeout,
            )
            .await;
        (sent.map_err(Into::into), self.io.written - before)
    }

    /// Decides the response to `req` and writes it (except a streamed body).
    async fn respond<F: FileSource>(
        &mut self,
        req: &Request<'_>,
        files: &F,
        keep_alive: bool,
    ) -> Reply<F::File> {
        let mut path = std::mem::take(&mut self.path);
        let reply = self.respond_in(req, files, keep_alive, &mut path).await;
        self.path = path;
        reply
    }

    async fn respond_in<F: FileSource>(
        &mut self,
        req: &Request<'_>,
        files: &F,
        keep_alive: bool,
        path: &mut Vec<u8>,
    ) -> Reply<F::File> {
        let http10 = req.version == Version::Http10;
        let head_only = req.method == Method::Head;
        let simple =
            |conn: &mut Self, status: Status, keep_alive: bool, extra: &[(&str, &[u8])]| {
                let body_bytes = conn.error(status, keep_alive, http10, head_only, extra);
                Reply {
                    status,
                    body_bytes,
                    keep_alive,
                    stream: None,
                }
            };
        match req.method {
            Method::Get | Method::Head => {}
            Method::NotAllowed => {
                return simple(
                    self,
                    Status::MethodNotAllowed,
                    keep_alive,
                    &[("Allow", b"GET, HEAD")],
                )
            }
            Method::Unknown => return simple(self, Status::NotImplemented, keep_alive, &[]),
        }
        let Ok(norm) = normalize(req.target.as_bytes(), path) else {
            return simple(self, Status::BadRequest, keep_alive, &[]);
        };
        let rel = RelPath::from_normalized(path);
        let opened = match files.open(rel).await {
            Ok(opened) => opened,
            Err(e) => return self.open_failed(&e, keep_alive, http10, head_only),
        };
        match opened.meta.kind {
            FileKind::File if !norm.trailing_slash => {
                return self.serve_file(req, files, rel, opened, keep_alive).await;
            }
            FileKind::File => {
                // "/file.txt/": a file is not a directory.
                files.close(opened.handle).await;
                return simple(self, Status::NotFound, keep_alive, &[]);
            }
            FileKind::Other => {
                files.close(opened.handle).await;
                return simple(self, Status::Forbidden, keep_alive, &[]);
            }
            FileKind::Directory => files.close(opened.handle).await,
        }
        if !norm.trailing_slash {
            let query = req.target.split_once('?').map(|(_, q)| q);
            let mut location = Vec::with_capacity(path.len() + 3 + query.map_or(0, str::len));
            encode_path(rel, &mut location);
            location.push(b'/');
            // The query goes along, as nginx's redirect keeps it (the request line's
            // parser admitted only visible ASCII, safe in a header).
            if let Some(q) = query {
                location.push(b'?');
                location.extend_from_slice(q.as_bytes());
            }
            return simple(
                self,
                Status::MovedPermanently,
                keep_alive,
                &[("Location", &location)],
            );
        }
        let dir_len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(b"index.html");
        let index_rel = RelPath::from_normalized(path);
        let index_error = match files.open(index_rel).await {
            Ok(opened) if opened.meta.kind == FileKind::File => {
                return self
                    .serve_file(req, files, index_rel, opened, keep_alive)
                    .await;
            }
            Ok(opened) => {
                files.close(opened.handle).await;
                return simple(self, Status::Forbidden, keep_alive, &[]);
            }
            Err(e) => e,
        };
        path.truncate(dir_len);
        let rel = RelPath::from_normalized(path);
        match index_error {
            OpenError::NotFound if self.ctx.settings.autoindex => {
                match files.list_dir(rel, autoindex::MAX_ENTRIES).await {
                    Ok(mut listing) => {
                        let mut body = Vec::new();
                        autoindex::render(rel, &mut listing, &mut body);
                        let date = self.ctx.date.http_date();
                        let mut head = Head::start(&mut self.out, Status::Ok, &date);
                        head.header("Content-Type", b"text/html; charset=utf-8")
                            .header_u64("Content-Length", body.len() as u64);
                        head.finish(keep_alive, http10);
                        if !head_only {
                            self.out.extend_from_slice(&body);
                        }
                        Reply {
                            status: Status::Ok,
                            body_bytes: if head_only { 0 } else { body.len() as u64 },
                            keep_alive,
                            stream: None,
                        }
                    }
                    Err(e) => self.open_failed(&e, keep_alive, http10, head_only),
                }
            }
            OpenError::NotFound => simple(self, Status::Forbidden, keep_alive, &[]),
            e => self.open_failed(&e, keep_alive, http10, head_only),
        }
    }

    /// Answers a GET or HEAD for the regular file `opened`, named `rel`: in the
    /// representation [`Conn::choose_representation`] picks, whose validators the
    /// conditional headers and `Range` are evaluated against.
    async fn serve_file<F: FileSource>(
        &mut self,
        req: &Request<'_>,
        files: &F,
        rel: RelPath<'_>,
        opened: Opened<F::File>,
        keep_alive: bool,
    ) -> Reply<F::File> {
        let http10 = req.version == Version::Http10;
        let head_only = req.method == Method::Head;
        let (Opened { handle, meta }, coding, vary) = if self.ctx.content.precompressed {
            self.choose_representation(req, files, rel, opened).await
        } else {
            (opened, None, false)
        };
        let vary_header: &[(&str, &[u8])] = if vary {
            &[("Vary", b"Accept-Encoding")]
        } else {
            &[]
        };
        let v = Validators::of_variant(&meta, coding);
        let date = self.ctx.date.http_date();
        let head_start = self.out.len();
        match conditional::evaluate(req, &v) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                files.close(handle).await;
                let mut head = Head::start(&mut self.out, Status::NotModified, &date);
                head.header("ETag", v.etag());
                write_last_modified(&mut head, &self.ctx.date, v.last_modified);
                for (name, value) in vary_header {
                    head.header(name, value);
                }
                if let Some(cc) = &self.ctx.content.cache_control {
                    head.header("Cache-Control", cc.as_bytes());
                }
                head.finish(keep_alive, http10);
                return Reply {
                    status: Status::NotModified,
                    body_bytes: 0,
                    keep_alive,
                    stream: None,
                };
            }
            Precondition::Failed => {
                files.close(handle).await;
                let body_bytes = self.error(
                    Status::PreconditionFailed,
                    keep_alive,
                    http10,
                    head_only,
                    vary_header,
                );
                return Reply {
                    status: Status::PreconditionFailed,
                    body_bytes,
                    keep_alive,
                    stream: None,
                };
            }
        }
        let len = meta.len;
        let mut range = RangeOutcome::Full;
        if req.method == Method::Get {
            if let Some(value) = req.range {
                if req
                    .if_range
                    .is_none_or(|ir| conditional::if_range_matches(ir, &v))
                {
                    range = range::evaluate(value, len);
                }
            }
        }
        let (status, first, count) = match range {
            RangeOutcome::Full => (Status::Ok, 0, len),
            RangeOutcome::Partial { first, last } => {
                (Status::PartialContent, first, last - first + 1)
            }
            RangeOutcome::Unsatisfiable => {
                files.close(handle).await;
                let mut unsatisfied = Vec::with_capacity(32);
                unsatisfied.extend_from_slice(b"bytes */");
                unsatisfied.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                let mut extra = vec![("Content-Range", &unsatisfied[..])];
                extra.extend_from_slice(vary_header);
                let body_bytes = self.error(
                    Status::RangeNotSatisfiable,
                    keep_alive,
                    http10,
                    head_only,
                    &extra,
                );
                return Reply {
                    status: Status::RangeNotSatisfiable,
                    body_bytes,
                    keep_alive,
                    stream: None,
                };
            }
        };
        let mut head = Head::start(&mut self.out, status, &date);
        // The media type is the original file's, whatever the coding.
        head.content_type_for(rel.file_name(), &self.ctx.content.media_types)
            .header_u64("Content-Length", count)
            .header("ETag", v.etag())
            .header("Accept-Ranges", b"bytes");
        if let Some(coding) = coding {
            head.header("Content-Encoding", coding.token().as_bytes());
        }
        for (name, value) in vary_header {
            head.header(name, value);
        }
        if let Some(cc) = &self.ctx.content.cache_control {
            head.header("Cache-Control", cc.as_bytes());
        }
        write_last_modified(&mut head, &self.ctx.date, v.last_modified);
        if status == Status::PartialContent {
            head.content_range(first, first + count - 1, len);
        }
        head.finish(keep_alive, http10);
        if head_only {
            files.close(handle).await;
            return Reply {
                status,
                body_bytes: 0,
                keep_alive,
                stream: None,
            };
        }
        if count > INLINE_BODY {
            return Reply {
                status,
                body_bytes: count,
                keep_alive,
                stream: Some(Stream {
                    file: handle,
                    offset: first,
                    len: count,
                }),
            };
        }
        let read = read_exact_at(files, &handle, first, count, &mut self.out).await;
        files.close(handle).await;
        if read.is_err() {
            // The head promised bytes the file no longer has: answer 500 instead.
            self.out.truncate(head_start);
            let body_bytes = self.error(Status::InternalServerError, false, http10, head_only, &[]);
            return Reply {
                status: Status::InternalServerError,
                body_bytes,
                keep_alive: false,
                stream: None,
            };
        }
        Reply {
            status,
            body_bytes: count,
            keep_alive,
            stream: None,
        }
    }

    /// Picks the representation of the file `rel` (opened as `identity`) that `req`
    /// gets: the best precompressed variant its `Accept-Encoding` allows, else the file
    /// itself (the handle not returned is closed). Also tells whether the file has any
    /// variant, which makes every response about it vary by `Accept-Encoding`.
    ///
    /// Opens only what it must: the acceptable codings best first until one exists,
    /// then, if none did, the others until one exists (for `Vary`). If the file source
    /// remembers which variants exist ([`FileSource::known_variants`]), only those are
    /// tried; else, once all three have been looked up, the answer is given to it to
    /// remember. A variant that cannot be opened for another reason than its absence
    /// counts as existing but is not served (and then nothing is remembered).
    async fn choose_representation<F: FileSource>(
        &mut self,
        req: &Request<'_>,
        files: &F,
        rel: RelPath<'_>,
        identity: Opened<F::File>,
    ) -> (Opened<F::File>, Option<Coding>, bool) {
        let known = files.known_variants(&identity.handle);
        let accept = AcceptEncoding::parse(req.header_values("accept-encoding"));
        // Codings looked up, and those found (or that failed to open).
        let (mut probed, mut found, mut exact) = (0u8, 0u8, true);
        for coding in accept.ranked() {
            let bit = coding.bit();
            if known.is_some_and(|k| k & bit == 0) {
                continue;
            }
            probed |= bit;
            match open_variant(files, &mut self.variant, rel, coding).await {
                Ok(Some(variant)) => {
                    files.close(identity.handle).await;
                    return (variant, Some(coding), true);
                }
                Ok(None) => {}
                Err(e) => {
                    self.note_open_error(&e);
                    (found, exact) = (found | bit, false);
                }
            }
        }
        if let Some(known) = known {
            return (identity, None, known != 0 || found != 0);
        }
        for coding in Coding::ALL {
            let bit = coding.bit();
            if found != 0 {
                break;
            }
            if probed & bit != 0 {
                continue;
            }
            probed |= bit;
            match open_variant(files, &mut self.variant, rel, coding).await {
                Ok(Some(variant)) => {
                    files.close(variant.handle).await;
                    found |= bit;
                }
                Ok(None) => {}
                Err(e) => {
                    self.note_open_error(&e);
                    (found, exact) = (found | bit, false);
                }
            }
        }
        if exact && probed == Coding::ALL_BITS {
            files.remember_variants(&identity.handle, found);
        }
        (identity, None, found != 0)
    }

    /// Answers a request whose file could not be opened: 404, 403, 503 with
    /// `Retry-After` when out of file descriptors (the connection kept: the condition
    /// passes), else 500 and close.
    fn open_failed<H>(
        &mut self,
        e: &OpenError,
        keep_alive: bool,
        http10: bool,
        head_only: bool,
    ) -> Reply<H> {
        self.note_open_error(e);
        let (status, keep_alive) = match e {
            OpenError::NotFound => (Status::NotFound, keep_alive),
            OpenError::Forbidden => (Status::Forbidden, keep_alive),
            OpenError::NoDescriptors(_) => (Status::ServiceUnavailable, keep_alive),
            OpenError::Io(_) => (Status::InternalServerError, false),
        };
        let extra: &[(&str, &[u8])] = if status == Status::ServiceUnavailable {
            &[("Retry-After", RETRY_AFTER)]
        } else {
            &[]
        };
        let body_bytes = self.error(status, keep_alive, http10, head_only, extra);
        Reply {
            status,
            body_bytes,
            keep_alive,
            stream: None,
        }
    }

    /// Reports running out of file descriptors (rate-limited, process-wide).
    fn note_open_error(&self, e: &OpenError) {
        if let OpenError::NoDescriptors(io) = e {
            throttle::report_out_of_descriptors(self.io.now(), "open", io);
        }
    }

    /// Writes an error-style response (small HTML page) with `extra` headers; returns
    /// the body bytes sent.
    fn error(
        &mut self,
        status: Status,
        keep_alive: bool,
        http10: bool,
        head_only: bool,
        extra: &[(&str, &[u8])],
    ) -> u64 {
        let date = self.ctx.date.http_date();
        let len = error_page_len(status);
        let mut head = Head::start(&mut self.out, status, &date);
        head.header("Content-Type", b"text/html; charset=utf-8")
            .header_u64("Content-Length", len as u64);
        for (name, value) in extra {
            head.header(name, value);
        }
        head.finish(keep_alive, http10);
        if head_only {
            0
        } else {
            error_page(status, &mut self.out);
            len as u64
        }
    }
}

/// Opens the precompressed variant of `rel` in `coding` (its path built in `buf`):
/// `Ok(None)` when there is none (missing, or not a regular file).
async fn open_variant<F: FileSource>(
    files: &F,
    buf: &mut Vec<u8>,
    rel: RelPath<'_>,
    coding: Coding,
) -> Result<Option<Opened<F::File>>, OpenError> {
    buf.clear();
    buf.extend_from_slice(rel.as_bytes());
    buf.extend_from_slice(coding.suffix().as_bytes());
    match files.open(RelPath::from_normalized(buf)).await {
        Ok(opened) if opened.meta.kind == FileKind::File => Ok(Some(opened)),
        Ok(opened) => {
            files.close(opened.handle).await;
            Ok(None)
        }
        Err(OpenError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_last_modified(head: &mut Head<'_>, date: &DateCache, secs: u64) {
    head.header("Last-Modified", &date.format_secs(secs));
}

/// Appends exactly `len` bytes of `file` at `offset` to `out`.
async fn read_exact_at<F: FileSource>(
    files: &F,
    file: &F::File,
    offset: u64,
    len: u64,
    out: &mut Vec<u8>,
) -> Result<(), SendError> {
    let start = out.len();
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    out.resize(start + len, 0);
    let mut filled = 0;
    while filled < len {
        match files
            .read_at(file, offset + filled as u64, &mut out[start + filled..])
            .await
        {
            Ok(0) => return Err(SendError::ShortFile),
            Ok(n) => filled += n,
            Err(e) => return Err(SendError::Read(e)),
        }
    }
    Ok(())
}
