pub mod account;
pub mod admin;
mod common;
pub mod notification;
pub mod ops;
pub mod pin;
pub mod sandbox;
pub mod transaction;
