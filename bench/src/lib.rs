//! Data-plane benchmark: the client calling graph nodes itself vs one request through the graph filter, side by side in one real Envoy.

pub mod envoy;
pub mod load;
pub mod oha;
pub mod peers;
pub mod report;
pub mod run;
pub mod sink;
pub mod stats;
pub mod topology;
