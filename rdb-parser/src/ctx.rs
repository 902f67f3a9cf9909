//! Where a lazily decoded value lives: the file it borrows from and the key it belongs to,
//! so that an error raised long after the top-level parser moved on still names its
//! absolute offset, database and key.

use std::borrow::Cow;
use std::cell::OnceCell;

use crate::error::{Error, Fail};
use crate::string::RdbString;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'data> {
    pub file: &'data [u8],
    pub db: u64,
    pub key: RdbString<'data>,
}

impl<'data> Ctx<'data> {
    /// Locates `f`. A failure inside a buffer that was decompressed from the file is
    /// reported at the compressed string's position, `origin`.
    pub fn error(&self, f: Fail, origin: &[u8]) -> Error {
        let start = self.file.as_ptr() as usize;
        let inside = f.at >= start && f.at <= start + self.file.len();
        let err = if inside {
            f.locate(self.file, 0)
        } else {
            let mut f = f;
            f.detail = format!("{} (inside a compressed blob)", f.detail);
            f.at = origin.as_ptr() as usize;
            f.locate(self.file, 0)
        };
        let key = self.key.decode().unwrap_or(Cow::Borrowed(b"?"));
        err.in_key(self.db, &key)
    }
}

/// An RDB string holding a ziplist/listpack/intset/zipmap, decompressed at most once.
#[derive(Debug, Clone)]
pub(crate) struct Blob<'data> {
    pub stored: RdbString<'data>,
    expanded: OnceCell<Cow<'data, [u8]>>,
}

impl<'data> Blob<'data> {
    pub fn new(stored: RdbString<'data>) -> Self {
        Blob {
            stored,
            expanded: OnceCell::new(),
        }
    }

    /// The blob's bytes: borrowed from the file, or decompressed on first use.
    pub fn bytes(&self) -> Result<&[u8], Fail> {
        if let Some(b) = self.expanded.get() {
            return Ok(b);
        }
        let decoded = self.stored.decode()?;
        Ok(self.expanded.get_or_init(|| decoded))
    }

    /// False when the blob is certainly not an empty container: an empty ziplist,
    /// listpack or intset takes at most 11 bytes, and servers compress only strings
    /// longer than 20 bytes, so a long or compressed blob needs no look inside.
    pub fn may_be_empty(&self) -> bool {
        self.stored.len() <= 16
    }

    /// Where errors inside a decompressed copy are reported.
    pub fn origin(&self) -> &'data [u8] {
        match self.stored {
            RdbString::Raw(b) => b,
            RdbString::Lzf { compressed, .. } => compressed,
            RdbString::Int(_) => &[],
        }
    }
}
