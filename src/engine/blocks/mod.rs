//! Block relay logic, I/O-free: BIP152 compact blocks ([`compact`]).

pub mod compact;
