//! Loom models of the nexus-trace-core ring live in `tests/`.
