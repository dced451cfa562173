//! The socket side of the node: the socket-handler thread, the shared per-peer queues, the
//! wake-ups that join it to the message handler, the listeners, the dialer thread, the DNS
//! seeding thread, the SOCKS5 proxy handshake of outbound connections and the Tor control
//! thread.

pub mod dialer;
pub mod listen;
pub mod peer_queues;
pub mod proxy;
pub mod seeder;
pub mod socket_handler;
pub mod tor;
pub mod transport;
pub mod wake;
