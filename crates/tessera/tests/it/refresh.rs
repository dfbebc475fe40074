//! refresh tests.
