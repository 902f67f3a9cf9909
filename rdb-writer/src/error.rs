//! The one way encoding can fail: a structure outgrowing the width of its size fields.

use std::fmt;

/// An encoding error. New kinds may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A blob (listpack, ziplist, intset) would exceed what its header can describe.
    TooLarge {
        /// The structure: `"listpack"`, `"ziplist"`, `"intset"`.
        what: &'static str,
        /// The size it would have, in bytes (or members, for an intset).
        size: u64,
        /// The largest size its header can hold.
        limit: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge { what, size, limit } => {
                write!(f, "{what} of {size} exceeds the format's limit of {limit}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}
