//! The API-level checker, target `api_sequences`: random sequences of public-API
//! operations on one lazytls connection against a peer the input drives (see `checker`
//! for what it covers and the invariants it checks).
//!
//! Four parts: `checker` (the overview, and the transport the others share), `peers` (the
//! configurations and the peers), `ours` (our end's operations and tasks) and `run` (the
//! entry points and the executor). What they share is `pub(super)`; their public items
//! are re-exported here, so `sequences::api_sequences` and the rest keep their paths.

mod checker;
mod ours;
mod peers;
mod run;

pub use checker::{ONE_RECORD_ROOM, PeerWire, Wire, WireStats};
pub use ours::{Op, Shared};
pub use peers::{Setup, Usage};
pub use run::{SequenceOutcome, api_sequences, run};
