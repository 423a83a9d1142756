//! Integration tests: stages.
