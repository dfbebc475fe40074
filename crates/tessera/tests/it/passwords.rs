//! passwords tests.
