//! Fuzz targets for seldon-mesh, as plain functions over bytes.
//!
//! ```text
//!   fuzz/corpus/<target>/*  ──► tests/corpus.rs (stable, `cargo test -p seldon-fuzz`, CI)
//!   seeded random + mutation ─┘     replays every file + a short seeded budget per target
//!
//!   libfuzzer/fuzz_targets/<target>.rs ──► `make fuzz` (cargo +nightly fuzz run, libFuzzer)
//!                 each is one line: `fuzz_target!(|d: &[u8]| seldon_fuzz::<target>(d))`
//! ```
//!
//! Every target's property is "never panics" plus, where cheap, a stronger one (a round trip
//! is stable, `compile` never accepts duplicate names, ...): a broken property panics with a
//! message, so libFuzzer and the replay test report it as a crash. See fuzz/README.md.

pub mod driver;

mod binary;
mod crd;
mod executor;
mod graph;
mod json;
mod protocol;

pub use binary::v2_binary;
pub use crd::crd_parse;
pub use executor::executor;
pub use graph::graph_compile;
pub use protocol::protocol_ops;

/// A fuzz target: bytes in, panics on a broken property.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder and libFuzzer binary have.
pub const TARGETS: &[(&str, Target)] = &[
    ("protocol_ops", protocol_ops),
    ("v2_binary", v2_binary),
    ("executor", executor),
    ("graph_compile", graph_compile),
    ("crd_parse", crd_parse),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
