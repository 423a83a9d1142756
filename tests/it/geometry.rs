//! Integration tests: geometry.
