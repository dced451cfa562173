//! The socket side of the node: framing, the shared per-peer queues, the socket-handler
//! thread and the wake-ups that join it to the message handler.

pub mod message;
pub mod transport;
