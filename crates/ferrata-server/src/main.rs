//! The `ferrata-server` binary.
fn main() {}
