//! Black-box tests of the hub over real HTTP; one binary for all of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod account;
mod admin;
mod edge;
mod notification;
mod openapi;
mod pin;
mod transaction;
mod two_instances;
