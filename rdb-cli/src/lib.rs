//! The `rdbkit` command's library: one module per subcommand, each writing to any
//! `Write` so tests call them without a subprocess. `main.rs` only parses arguments.

pub mod azure;
pub mod check;
pub mod checksum;
pub mod convert;
pub mod diff;
pub mod export;
pub mod fetch;
pub mod info;
pub mod json;
pub mod keys;
pub mod now;
pub mod output;
pub mod parts;
pub mod resp;
pub mod restore;
pub mod stats;
pub mod verify;

/// Helpers for the unit tests of several modules.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    /// Runs `f` in a rayon pool of `threads` threads, as `--threads` would.
    pub fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }
}

/// Why a command could not finish.
#[derive(Debug)]
pub enum Failure {
    /// The snapshot is malformed (exit code 1).
    Data(rdb_parser::Error),
    /// Reading or writing failed (exit code 2).
    Io(std::io::Error),
    /// The input cannot be processed as asked, e.g. a conversion needs a loss no flag
    /// allowed (exit code 1).
    Refused(String),
    /// The arguments do not fit together (exit code 2).
    Usage(String),
    /// The command has printed its verdict (a check that found problems, files that
    /// differ): exit with this code and print nothing more.
    Verdict(u8),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Data(_) | Failure::Refused(_) => 1,
            Failure::Io(_) | Failure::Usage(_) => 2,
            Failure::Verdict(code) => *code,
        }
    }
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
            Failure::Refused(m) | Failure::Usage(m) => f.write_str(m),
            Failure::Verdict(code) => write!(f, "exit code {code}"),
        }
    }
}

impl std::error::Error for Failure {}
