//! Headless Chromium tests, one module per part of qrgate with pages (the sandbox's phone,
//! the gateway's till). Skipped, and saying so, where Chromium is missing, unless
//! `QRGATE_TEST_REQUIRE_BROWSER=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod phone;
mod till;
