//! The append-only on-disk header store.
