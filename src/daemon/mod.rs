//! The top layer: the threads and everything that touches sockets, clocks, channels and
//! files. [`net`] is the socket side (socket handler, queues, wake-ups, dialer, DNS seeder);
//! [`msg_handler`] drives the engine with real time; [`rpc`], [`metrics`] and [`http`] serve
//! operators; [`validation`] owns Core's kernel; [`node`] starts and stops it all from a
//! [`config::Config`]; [`service`] detaches the process (`--daemon`) and keeps its PID file.

pub mod capture;
pub mod conffile;
pub mod config;
pub mod http;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod msg_handler;
pub mod net;
pub mod node;
pub mod panics;
pub mod rpc;
pub mod service;
pub mod snapshot;
pub mod validation;
