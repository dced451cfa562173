//! The middle layer, I/O-free: the per-peer protocol ([`protocol`]), the header chain
//! ([`chain`]), the address book ([`addrman`]) and connection policy ([`policy`]). Everything
//! here takes the time as an argument and reports decisions as values; only [`crate::daemon`]
//! (real time, sockets) and [`crate::sim`] (fake time, an in-memory network) drive it. Imports
//! only from [`crate::base`].

pub mod addrman;
pub mod blocks;
pub mod chain;
pub mod peerman;
pub mod policy;
pub mod protocol;
