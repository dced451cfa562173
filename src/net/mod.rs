//! The socket side of the node: framing, the shared per-peer queues, the socket-handler
//! thread and the wake-ups that join it to the message handler.

pub mod anchors;
pub mod banman;
pub mod dialer;
pub mod discourage;
pub mod eviction;
pub mod listen;
pub mod local;
pub mod message;
pub mod netaddr;
pub mod outbound;
pub mod peer;
pub mod peer_queues;
pub mod permissions;
pub mod seeder;
pub mod seeding;
pub mod seeds;
pub mod socket_handler;
pub mod totals;
pub mod transport;
pub mod wake;
