//! The API-level checker, target `api_sequences`: random sequences of public-API
//! operations on one lazytls connection against a peer the input drives (see the top of
//! `checker.rs` for what it covers and the invariants it checks).
//!
//! Its four parts (the checker's setup, the peers, our end's operations, the executor)
//! share this one module's private items, so they are included here one after another:
//! the crate's one `include!` of code, kept within this folder.

use super::targets::*;

include!("checker.rs");
include!("peers.rs");
include!("ours.rs");
include!("run.rs");
