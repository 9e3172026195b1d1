//! A purely functional (sans-I/O) TCP/IPv4 stack.
//!
//! Packets, the current time, the initial-sequence-number secret and application
//! requests go in; packets to send, application events and the next timer deadline come
//! out. The stack does no I/O, reads no clock, draws no randomness and keeps no globals:
//! the same inputs always produce the same outputs, so any run can be recorded and
//! replayed, and two stacks can be joined by a simulated link in one process.
//!
//! The entry point is [`Stack`]. Its shape follows quinn-proto:
//!
//! | direction | call |
//! |---|---|
//! | packet in | [`Stack::handle_packet`] ([`Stack::handle_packet_trusted`] from a device with checksum offload) |
//! | time passes | [`Stack::handle_timeout`] (when [`Stack::poll_timeout`] is due) |
//! | packet out | [`Stack::poll_transmit`] (until `None`; each [`Transmit`] says what a device with [`TxOffload`] must finish) |
//! | application events | [`Stack::poll_event`] (until `None`) |
//! | application requests | [`Stack::listen`], [`Stack::accept`], [`Stack::connect`], [`Stack::send`], [`Stack::recv`], [`Stack::shutdown`], [`Stack::close`], [`Stack::abort`] |
//!
//! After any input or request, drain `poll_transmit` and `poll_event`, then wait for
//! the next packet or `poll_timeout`, whichever comes first.
//!
//! Handles ([`ConnId`], [`ListenerId`]) carry a generation, so a stale handle is
//! rejected with [`Error::InvalidConnection`] / [`Error::InvalidListener`] rather than
//! reaching a newer connection in the same slot. Every connection handle ends with
//! [`Stack::close`] or [`Stack::abort`], also after it was reported closed, reset or
//! failed.
//!
//! Memory is bounded by configuration: each connection owns at most
//! [`TcpConfig::send_buffer`] plus [`TcpConfig::recv_buffer`] bytes (allocated on first
//! use and given back when the queue empties, so an idle connection holds none;
//! out-of-order data is reassembled inside the receive buffer), storage kept for reuse
//! is at most [`StackConfig::buffer_pool_bytes`], the table holds at
//! most [`StackConfig::max_connections`], half-open connections per listener at most
//! [`StackConfig::max_half_open`] (SYN cookies beyond), and queued control packets at
//! most [`StackConfig::max_control_queue`].
//!
//! Wire formats are parsed and emitted with smoltcp's `wire` module; the state machine
//! (RFC 9293 with RFC 7323, 2018, 2883, 8985, 6675, 6298, 5681, 6582, 9438, 5961, 6528) is this
//! crate's. Every malformed or unwanted packet is dropped and counted in [`Counters`].

pub mod seq;
pub mod time;

pub use seq::SeqNum;
pub use time::Instant;

pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod inline_vec;
pub mod rack;
pub mod recovery;
pub mod rtt;
pub mod sack;

mod config;
mod conn;
mod control;
mod counters;
mod error;
mod event;
mod handle;
mod isn;
mod listener;
mod sink;
mod stack;
pub mod wire;

pub use buffer::window;
pub use cc::{CcAlgorithm, CcConfig};
pub use config::{KeepAlive, StackConfig, TcpConfig, TxOffload};
pub use counters::{Counters, DropReason};
pub use error::{ConfigError, ConnError, Error};
pub use event::{ConnInfo, Event, TcpState};
pub use handle::{ConnId, ListenerId};
pub use sink::Gathered;
pub use stack::{Stack, Transmit, MIN_TRANSMIT_BUF};
