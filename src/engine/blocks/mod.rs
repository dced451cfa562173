//! Blocks, I/O-free: the download scheduler ([`download`]), BIP152 compact blocks
//! ([`compact`]), and what the node asks of the validation thread and hears back
//! ([`validation`]).

pub mod compact;
pub mod download;
pub mod validation;
