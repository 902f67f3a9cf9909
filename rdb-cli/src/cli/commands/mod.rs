//! One file per subcommand: its arguments and how they drive the library.

pub mod azure;
pub mod check;
pub mod completions;
pub mod convert;
pub mod diff;
pub mod export;
pub mod fetch;
pub mod info;
pub mod keys;
pub mod restore;
pub mod stats;
pub mod targets;
pub mod verify;
