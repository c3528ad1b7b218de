pub mod admin;
pub mod ops;
