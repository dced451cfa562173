//! Per-network consensus parameters for headers (Core's `CChainParams` / `Consensus::Params`).
