//! A static-file HTTP/1.1 server.
//!
//! The HTTP core is free of I/O and generic over two small traits, so the same code
//! runs on kernel sockets, on the user-space TCP stack, in the whole-system
//! simulation, and on in-memory mocks in the tests:
//!
//! - [`Transport`]: a byte stream with deadlines (one accepted connection);
//! - [`FileSource`]: the document root, a directory capability.
//!
//! The entry point is [`serve_connection`], called once per accepted connection with a
//! per-core [`ServerContext`] (settings, `Date` cache, [`Counters`], access log,
//! shutdown flag). [`serve_listeners`] runs it on threadlib for one core's listeners
//! (accept loops, connection limit, graceful shutdown) over any
//! [`threadlib::net::Network`], through [`NetTransport`]. [`Config`] parses the
//! command line of the `webserver` binary.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use webserver::*;
//!
//! /// A client that sends one request and closes.
//! struct OneShot { request: &'static [u8], response: Vec<u8> }
//!
//! impl Transport for OneShot {
//!     async fn read(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<usize, TransportError> {
//!         let n = self.request.len().min(buf.len());
//!         buf[..n].copy_from_slice(&self.request[..n]);
//!         self.request = &self.request[n..];
//!         Ok(n) // 0 once everything was read: end of stream
//!     }
//!     async fn write(&mut self, buf: &[u8], _stall: Duration) -> Result<usize, TransportError> {
//!         self.response.extend_from_slice(buf);
//!         Ok(buf.len())
//!     }
//!     fn now(&self) -> Instant { Instant::now() }
//! }
//!
//! /// A document root holding only `hello.txt`.
//! struct Hello;
//!
//! impl FileSource for Hello {
//!     type File = ();
//!     async fn open(&self, path: RelPath<'_>) -> Result<Opened<()>, OpenError> {
//!         if path.as_bytes() != b"hello.txt" {
//!             return Err(OpenError::NotFound);
//!         }
//!         let meta = FileMeta { len: 5, modified: SystemTime::UNIX_EPOCH, kind: FileKind::File };
//!         Ok(Opened { handle: (), meta })
//!     }
//!     async fn read_at(&self, _: &(), offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
//!         let rest = &b"hello"[offset as usize..];
//!         let n = rest.len().min(buf.len());
//!         buf[..n].copy_from_slice(&rest[..n]);
//!         Ok(n)
//!     }
//!     async fn list_dir(&self, _: RelPath<'_>, _: usize) -> Result<DirListing, OpenError> {
//!         Err(OpenError::Forbidden)
//!     }
//! }
//!
//! let ctx = ServerContext::new(Settings::default());
//! let mut client = OneShot { request: b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", response: vec![] };
//! let end = futures::executor::block_on(serve_connection(&mut client, &Hello, &ctx, None));
//! assert!(matches!(end, ConnectionEnd::PeerClosed));
//! assert!(client.response.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! assert!(client.response.ends_with(b"\r\n\r\nhello"));
//! assert_eq!(ctx.counters.snapshot().requests, 1);
//! ```
//!
//! Modules by concern: [`request`] (incremental head parsing and limits), [`path`]
//! (percent-decoding and normalisation), [`conditional`] (ETag, `If-*`), [`range`]
//! (`Range`), [`encoding`] (precompressed variants, `Accept-Encoding`),
//! [`media_types`] (`Content-Type`), [`response`] (status and head writing),
//! [`autoindex`] (listings),
//! [`connection`] (the per-connection loop), [`serve`] (accept loops), [`throttle`]
//! (rate-limited reports), [`access_log`], [`counters`], [`date`], [`config`].

#![warn(missing_docs)]

pub mod access_log;
pub mod autoindex;
pub mod conditional;
pub mod config;
pub mod connection;
pub mod counters;
pub mod date;
pub mod encoding;
pub mod files;
pub mod media_types;
pub mod net_transport;
pub mod path;
pub mod range;
pub mod request;
pub mod response;
pub mod serve;
pub mod throttle;
pub mod transport;

pub use access_log::{AccessLog, LogEntry};
pub use config::{Config, LogTarget, NetBackend};
pub use connection::{
    serve_connection, ConnectionEnd, ConnectionError, ContentOptions, ServerContext, Settings,
};
pub use counters::{Counters, Totals};
pub use date::DateCache;
pub use files::{
    DirEntry, DirListing, FileKind, FileMeta, FileSource, OpenError, Opened, SendError,
};
pub use net_transport::NetTransport;
pub use path::RelPath;
pub use request::Limits;
pub use serve::{serve_listener, serve_listeners, ServeLimits};
pub use transport::{Transport, TransportError};
