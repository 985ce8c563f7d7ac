//! `seldon-server`: the model server with only the built-in models (runtimes add theirs).
fn main() {}
