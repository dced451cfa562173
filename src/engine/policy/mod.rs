//! Connection policy, I/O-free: whom to dial (outbound planning, anchors, seeds and the DNS
//! seeding schedule), whom to evict, whom to refuse (bans, discouragement, `--whitelist`
//! permissions) and which of our own addresses to advertise.

pub mod anchors;
pub mod banman;
pub mod discourage;
pub mod eviction;
pub mod local;
pub mod outbound;
pub mod permissions;
pub mod seeding;
pub mod seeds;
