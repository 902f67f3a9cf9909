//! Arbitrary bytes: parsing and decoding every value never panics or hangs, and every
//! error points inside the input. (Allocation is bounded by `-rss_limit_mb`.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdb_parser::{Item, ParserBuilder};

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    // Mutated files rarely keep a valid CRC: check structure, not the checksum.
    builder.verify_checksum(false).allow_empty_keys(true);
    let Ok(parser) = builder.parse(data) else {
        return;
    };
    for item in parser {
        let error = match item {
            Ok(Item::Key(e)) => match e.value.decode_all() {
                Ok(_) => continue,
                Err(error) => error,
            },
            Ok(_) => continue,
            Err(error) => error,
        };
        assert!(error.offset() <= data.len() as u64, "{error}");
        let _ = error.to_string();
        return;
    }
});
