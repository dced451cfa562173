//! The block-header chain: per-network consensus parameters, proof-of-work rules, the header
//! tree with its best chain, contextual validation, and the on-disk header store.

pub mod accept;
pub mod blockgen;
pub mod mine;
pub mod params;
pub mod pow;
pub mod presync;
pub mod store;
#[cfg(test)]
pub(crate) mod testdata;
pub mod tree;
pub mod validate;
