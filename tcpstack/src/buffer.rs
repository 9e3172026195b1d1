//! Byte ring buffers for the send and receive queues.
