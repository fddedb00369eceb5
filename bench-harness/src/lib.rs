//! `shardbench`: the benchmark harness (filled in by the bench-harness issue).
#![forbid(unsafe_code)]
