//! Seldon v1 and Open Inference Protocol v2 payloads: typed JSON models, the wire `.proto` files, and the byte-level payload operations the graph executor needs.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
