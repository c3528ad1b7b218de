/// Why a value was refused by its checked constructor. The message is safe to show to the
/// caller: it never repeats the refused input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl ParseError {
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}
