//! Engine benchmarks (filled in later).

fn main() {}
