//! Model-server benchmark driver.
fn main() {}
