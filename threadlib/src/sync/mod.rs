//! Synchronisation for threads: core-local primitives (threads of one core, `Rc`-based,
//! no atomics) and cross-core ones in [`remote`].

pub mod remote;
