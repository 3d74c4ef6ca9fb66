//! The console through real HTTP (the gateway's own accept loop and layers), on SQLite and
//! PostgreSQL: sign-in and sessions, isolation between merchants on every route, bad input
//! on every form, exports, audit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod isolation;
mod paging;
mod sessions;
mod world;
