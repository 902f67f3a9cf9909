//! Ordered parallel processing of a snapshot's items.
//!
//! ```text
//! parse batch N+1 (one thread)  |  work on batch N (all cores)  ->  sink, in file order
//! ```
//! The file is sequential but its keys are independent: the parser finds item boundaries
//! cheaply, then `work` (decode, filter, transcode, format) runs on every core, and the
//! results reach `sink` in the order of the file. Memory holds two batches at most.

use rayon::prelude::*;
use rdb_parser::{Item, Parser, ParserBuilder};

/// An item with its exact bytes in the input and its offset.
#[derive(Debug)]
pub struct Spanned<'data> {
    pub item: Item<'data>,
    pub span: &'data [u8],
    pub offset: u64,
}

/// Input bytes per batch: large enough to keep both cores busy, small enough to stay flat.
pub const BATCH_BYTES: usize = 4 << 20;
/// Items per batch: 4 Ki items (about 1 MB of parsed items) stay in the caches between the
/// parse and the cores; 16 Ki made stats and convert 3-6% slower and verify 9-11%, 1 Ki
/// made verify 7% slower (A/B, medians of 7 and 9).
pub const BATCH_ITEMS: usize = 4 * 1024;

/// Runs `work` over every item of `parser` on all cores and hands each result to `sink`
/// in file order. Stops at the first error, from the parser, `work` or `sink`.
pub fn ordered<'data, T, E, W, S>(parser: Parser<'data>, work: W, mut sink: S) -> Result<(), E>
where
    T: Send,
    E: From<rdb_parser::Error> + Send,
    W: Fn(Spanned<'data>) -> Result<T, E> + Sync,
    S: FnMut(T) -> Result<(), E>,
{
    let mut parser = parser;
    let data = parser.data();
    let mut current = next_batch(&mut parser, data);
    loop {
        let batch = current.map_err(E::from)?;
        if batch.is_empty() {
            return Ok(());
        }
        let (results, next) = rayon::join(
            || batch.into_par_iter().map(&work).collect::<Vec<_>>(),
            || next_batch(&mut parser, data),
        );
        for r in results {
            sink(r?)?;
        }
        current = next;
    }
}

/// Like [`ordered`], but `work` sees each item by reference and `sink` gets the item back
/// with its result: an `Item` is a few hundred bytes, and moving it through the worker and
/// back cost a tenth of a passthrough.
pub fn ordered_by_ref<'data, T, E, W, S>(
    parser: Parser<'data>,
    work: W,
    mut sink: S,
) -> Result<(), E>
where
    T: Send,
    E: From<rdb_parser::Error> + Send,
    W: Fn(&Spanned<'data>) -> Result<T, E> + Sync,
    S: FnMut(Spanned<'data>, T) -> Result<(), E>,
{
    let mut parser = parser;
    let data = parser.data();
    let mut current = next_batch(&mut parser, data);
    loop {
        let batch = current.map_err(E::from)?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut batch = batch;
        // `iter_mut` only because an `Item` is `Send` but not `Sync`; `work` reads it.
        let (results, next) = rayon::join(
            || batch.par_iter_mut().map(|s| work(s)).collect::<Vec<_>>(),
            || next_batch(&mut parser, data),
        );
        for (item, r) in batch.into_iter().zip(results) {
            sink(item, r?)?;
        }
        current = next;
    }
}

/// The next items up to the batch size, with their spans; empty at the end.
pub fn next_batch<'data>(
    parser: &mut Parser<'data>,
    data: &'data [u8],
) -> Result<Vec<Spanned<'data>>, rdb_parser::Error> {
    // Sized for the item cap up front: growing it would copy every item again.
    let mut batch = Vec::with_capacity(BATCH_ITEMS);
    let mut bytes = 0;
    while bytes < BATCH_BYTES && batch.len() < BATCH_ITEMS {
        let Some(item) = parser.next() else { break };
        let item = item?;
        let (start, end) = (parser.item_start(), parser.offset());
        let span = data.get(start as usize..end as usize).unwrap_or(&[]);
        bytes += span.len();
        batch.push(Spanned {
            item,
            span,
            offset: start,
        });
    }
    Ok(batch)
}

/// The EOF a pass saw, reported by the caller of [`checked`].
#[derive(Debug, Default)]
pub struct EofSeen(std::cell::Cell<Option<rdb_parser::Eof>>);

impl EofSeen {
    pub fn set(&self, eof: rdb_parser::Eof) {
        self.0.set(Some(eof));
    }
}

/// Runs `f` with a parser that leaves the CRC64 to another thread, which checksums the
/// file meanwhile (it is a sequential 1.4 GB/s pass otherwise). `f` reports the EOF it
/// reached; the other thread's result counts only when that EOF's trailer is the last 8
/// bytes of the file. Otherwise (bytes after the trailer, a trailer of 0) the parser's
/// own exact check decides.
pub fn checked<T, E>(
    data: &[u8],
    builder: &ParserBuilder,
    f: impl FnOnce(&ParserBuilder, &EofSeen) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<rdb_parser::Error>,
{
    let seen = EofSeen::default();
    // One thread allowed (`--threads 1`): let the parser check it in sequence.
    if !builder.verifies_checksum() || rayon::current_num_threads() <= 1 {
        return f(builder, &seen);
    }
    let mut unchecked = builder.clone();
    unchecked.verify_checksum(false);
    std::thread::scope(|scope| {
        let prefix_crc = scope.spawn(|| {
            let covered = data.len().checked_sub(8)?;
            Some(rdb_parser::crc64(0, data.get(..covered)?))
        });
        let value = f(&unchecked, &seen)?;
        let prefix_crc = prefix_crc.join().ok().flatten();
        let vouched = seen.0.get().is_some_and(|eof| match eof.checksum {
            rdb_parser::Checksum::Unchecked(stored) => {
                eof.trailing == 0
                    && eof.offset + 9 == data.len() as u64
                    && prefix_crc == Some(stored)
            }
            rdb_parser::Checksum::Absent | rdb_parser::Checksum::Verified(_) => true,
            // A trailer of 0 (checksums off) is read at the parser's EOF: exact.
            rdb_parser::Checksum::Disabled => true,
        });
        if !vouched {
            for item in builder.parse(data)? {
                item?;
            }
        }
        Ok(value)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rdb_parser::format::type_id;
    use rdb_parser::Version;

    /// Enough keys for several batches: every item reaches the sink once, in file order,
    /// with the result computed from that same item.
    #[test]
    fn ordered_by_ref_keeps_file_order_across_batches() {
        let mut w = crate::Writer::new(Vec::new(), Version::redis(11)).unwrap();
        w.select_db(0).unwrap();
        let n = 3 * BATCH_ITEMS + 17;
        for i in 0..n {
            let key = format!("key:{i}");
            let value = crate::value::string(key.as_bytes(), crate::Compression::None);
            w.key_value(type_id::STRING, key.as_bytes(), &value)
                .unwrap();
        }
        let file = w.finish().unwrap();
        let parser = ParserBuilder::new().parse(&file).unwrap();
        let mut keys = 0;
        let mut last = 0;
        ordered_by_ref(
            parser,
            |s: &Spanned<'_>| -> Result<Option<Vec<u8>>, rdb_parser::Error> {
                Ok(match &s.item {
                    Item::Key(e) => Some(e.key.to_vec()),
                    _ => None,
                })
            },
            |s, key| {
                assert!(s.offset >= last, "items out of order");
                last = s.offset;
                if let (Item::Key(e), Some(k)) = (&s.item, key) {
                    assert_eq!(*e.key, *k);
                    assert_eq!(k, format!("key:{keys}").into_bytes());
                    keys += 1;
                }
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(keys, n);
    }
}
