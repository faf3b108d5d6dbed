//! Compile tests for errand's macros live in `tests/`.
