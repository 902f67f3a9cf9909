//! The `rdbkit` command's library: one module per subcommand, each writing to any
//! `Write` so tests call them without a subprocess. `main.rs` only parses arguments.

pub mod export;
pub mod info;
pub mod json;
pub mod output;

/// Why a command could not finish.
#[derive(Debug)]
pub enum Failure {
    /// The snapshot is malformed (exit code 1).
    Data(rdb_parser::Error),
    /// Reading or writing failed (exit code 2).
    Io(std::io::Error),
}

impl From<rdb_parser::Error> for Failure {
    fn from(e: rdb_parser::Error) -> Self {
        Failure::Data(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Data(e) => write!(f, "{e}"),
            Failure::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {}
