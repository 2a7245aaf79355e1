//! The guide's pages as doctests: every Rust block in `docs/` is compiled
//! (and run, unless marked otherwise) by `cargo test --doc`.

#![allow(missing_docs)]

#[doc = include_str!("../../docs/scratch.md")]
pub struct Scratch;
