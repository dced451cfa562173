//! The bottom layer: the vocabulary every other layer shares — who a peer is and why a
//! connection ended ([`peer`]), address networks ([`netaddr`]), the message codec ([`message`],
//! [`transport`]), chain parameters, message counters, time and file helpers. Imports nothing
//! from the layers above.

pub mod chainparams;
pub mod counters;
pub mod hash;
pub mod message;
pub mod netaddr;
pub mod netgroup;
pub mod peer;
pub mod socks5;
pub mod sys;
pub mod time;
pub mod torcontrol;
pub mod totals;
pub mod transport;
