//! Encoding Redis and Valkey RDB snapshots: the twin of `rdb-parser`.
//!
//! ```text
//! Writer::new(out, version)   "REDIS0011"
//!   .aux / .function          FA key value | F5 code
//!   .select_db / .resize_db   FE db | FB size expires
//!   .expire_ms / .idle / .freq, then .key_value(type, key, value::...) or .raw_entry
//!   .finish()                 FF crc64
//! ```
//! Each module mirrors the parser module of the same name: [`encode`] (lengths, strings,
//! times, doubles), [`listpack`], [`ziplist`], [`intset`], [`value`] (whole values) and
//! [`crc`]; LZF compression is its own (see `lzf.rs` for why). Constants come from `rdb_parser::format`, so each is defined once.
//!
//! ```
//! use rdb_parser::{format::type_id, Item, Parser, Value, Version};
//! use rdb_writer::{value, Compression, Writer};
//!
//! let mut w = Writer::new(Vec::new(), Version::redis(11))?;
//! w.select_db(0)?;
//! let items = [b"a".to_vec(), b"42".to_vec()];
//! w.key_value(type_id::LIST_QUICKLIST_2, b"mylist", &value::list_quicklist2(&items, Compression::Lzf)?)?;
//! let file = w.finish()?;
//!
//! let mut got = Vec::new();
//! for item in Parser::new(&file)? {
//!     if let Item::Key(e) = item? {
//!         if let Value::List(l) = &e.value {
//!             for x in l.iter() {
//!                 got.push(x?.to_bytes().into_owned());
//!             }
//!         }
//!     }
//! }
//! assert_eq!(got, items);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod convert;
pub mod crc;
pub mod encode;
mod error;
pub mod filter;
pub mod intset;
pub mod listpack;
mod lzf;
pub mod profile;
pub mod server;
pub mod slot;
pub mod value;
mod vectorset;
mod writer;
pub mod ziplist;

pub use crc::Crc64Writer;
pub use encode::Compression;
pub use error::Error;
pub use listpack::ListpackBuilder;
pub use profile::{ModuleSupport, TargetProfile, PROFILES};
pub use writer::{Writer, WriterBuilder};
pub use ziplist::ZiplistBuilder;
