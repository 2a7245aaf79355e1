//! Issue 16: see main.rs.
