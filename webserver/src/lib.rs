//! A static-file HTTP/1.1 server, free of I/O.
//!
//! Everything here is generic over two small traits, so the same code runs on kernel
//! sockets, on the user-space TCP stack, and on in-memory mocks in the tests:
//!
//! - [`Transport`]: a byte stream with deadlines (one accepted connection);
//! - [`FileSource`]: the document root, a directory capability.
//!
//! The entry point is [`serve_connection`], called once per accepted connection with a
//! per-core [`ServerContext`] (settings, `Date` cache, [`Counters`], access log,
//! shutdown flag). [`Config`] parses the command line of the `webserver` binary.
//!
//! Modules by concern: [`request`] (incremental head parsing and limits), [`path`]
//! (percent-decoding and normalisation), [`conditional`] (ETag, `If-*`), [`range`]
//! (`Range`), [`response`] (status and head writing), [`autoindex`] (listings),
//! [`connection`] (the per-connection loop), [`access_log`], [`counters`], [`date`],
//! [`config`].

#![warn(missing_docs)]

pub mod access_log;
pub mod autoindex;
pub mod conditional;
pub mod config;
pub mod connection;
pub mod counters;
pub mod date;
pub mod files;
pub mod path;
pub mod range;
pub mod request;
pub mod response;
pub mod transport;

pub use access_log::{AccessLog, LogEntry};
pub use config::{Config, LogTarget, NetBackend};
pub use connection::{serve_connection, ConnectionEnd, ConnectionError, ServerContext, Settings};
pub use counters::{Counters, Totals};
pub use date::DateCache;
pub use files::{
    DirEntry, DirListing, FileKind, FileMeta, FileSource, OpenError, Opened, SendError,
};
pub use path::RelPath;
pub use request::Limits;
pub use transport::{Transport, TransportError};
