//! Bounded out-of-order segment reassembly.
