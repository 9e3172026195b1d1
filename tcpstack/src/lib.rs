//! A purely functional (sans-I/O) TCP/IPv4 stack.
//!
//! Packets, the current time, the initial-sequence-number secret and application
//! requests go in; packets to send, application events and the next timer deadline come
//! out. The stack does no I/O, reads no clock, draws no randomness and keeps no globals.

pub mod seq;
pub mod time;

pub use seq::SeqNum;
pub use time::Instant;

pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod rtt;
pub mod sack;
