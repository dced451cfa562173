//! Proof-of-work rules (Core's `pow.cpp`): required `bits`, PoW check, work per header.
