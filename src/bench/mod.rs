//! Benchmark workloads kept in the library, so that a bench, its report example and its
//! smoke test build exactly the same networks from the same public ops.

pub mod guidelines;
