//! Throwaway database servers for tasktrail's tests, examples and benches.
//!
//! It does not depend on tasktrail, so a crate built with a narrow set of
//! tasktrail's features (the tracker-only example: `default-features =
//! false, features = ["postgres"]`) can use it without cargo unifying the
//! test suite's features into its build.

#![forbid(unsafe_code)]
#![allow(missing_docs)]

pub mod mysql;
pub mod pg;
pub mod sys;
