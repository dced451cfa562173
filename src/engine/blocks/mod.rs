//! Blocks, I/O-free: what the node asks of the validation thread and what it hears back.

pub mod download;
pub mod validation;
