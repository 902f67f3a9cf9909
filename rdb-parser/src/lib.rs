//! Zero-copy decoding of Redis and Valkey RDB snapshots.
//!
//! Reads every format a released server writes: `REDIS0001` to `REDIS0013` and Valkey's
//! `VALKEY080`, with every opcode, type and inner encoding (ziplist, listpack, intset,
//! zipmap, quicklists, streams, module values, hash-field TTLs, functions), and decodes
//! vector sets, the one module type built into Redis (8.0+).
//!
//! The input is one `&'data [u8]` (the `rdbkit` binary memory-maps the file). Keys, plain
//! strings and compact blobs are borrowed from it; integer and LZF strings are decoded only
//! when asked for; collections decode their elements on `next()`.
//!
//! ```
//! use rdb_parser::{Item, Parser, Value};
//!
//! // A tiny RDB 9 file with one key, "greeting" = "hello", and no checksum.
//! let mut file = b"REDIS0009".to_vec();
//! file.push(0x00); // type: string
//! file.push(8);
//! file.extend_from_slice(b"greeting");
//! file.push(5);
//! file.extend_from_slice(b"hello");
//! file.push(0xFF); // EOF
//! file.extend_from_slice(&[0; 8]); // checksum disabled
//!
//! let mut keys = Vec::new();
//! for item in Parser::new(&file)? {
//!     if let Item::Key(entry) = item? {
//!         if let Value::String(s) = &entry.value {
//!             keys.push((entry.key.into_owned(), s.to_bytes()?.into_owned()));
//!         }
//!     }
//! }
//! assert_eq!(keys, vec![(b"greeting".to_vec(), b"hello".to_vec())]);
//! # Ok::<(), rdb_parser::Error>(())
//! ```
//!
//! Errors carry the byte offset and, inside a key, the database and key:
//! `corrupt listpack entry in key "user:42" (db 0) at byte 1048613: ...`.
#![forbid(unsafe_code)]

mod bytes;
mod crc;
mod ctx;
mod element;
pub mod error;
pub mod format;
mod input;
mod intset;
mod keymeta;
mod listpack;
pub mod lzf;
mod module;
mod parser;
pub mod raw;
mod stream;
mod string;
mod value;
pub mod vectorset;
mod ziplist;
mod zipmap;

pub use element::{parse_canonical_int, Element};
pub use error::{Error, ErrorKind, Structure};
pub use format::{Magic, Version};
pub use input::parse_double;
pub use keymeta::{KeyMetaClass, KeyMetadata};
pub use module::{Module, ModuleAux, ModuleId};
pub use parser::{
    header, resume_point, Aux, Checksum, Entry, Eof, Function, Item, Parser, ParserBuilder,
    SlotImport,
};
pub use stream::{
    Consumer, ConsumerGroup, ConsumerPending, Consumers, GroupPending, Groups, Idmp, IdmpEntries,
    IdmpEntry, IdmpProducer, IdmpProducers, PendingEntry, Stream, StreamEntries, StreamEntry,
    StreamId,
};
pub use string::RdbString;
pub use value::{
    ElementIter, Hash, HashField, HashIter, List, ListNodes, Set, StringValue, Value, ZSet,
    ZSetIter,
};

pub use vectorset::{
    Projection, Quantization, Vector, VectorSet, VectorSetElement, VectorSetElements,
};

pub use crc::{crc64, crc64_combine, crc64_parallel};
