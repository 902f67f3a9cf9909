//! Decodes every item and element of the snapshots named on the command line and prints
//! a one-line summary per file, or the first error.
//!
//! `cargo run -p rdb-parser --example walk -- dump.rdb ...`

use rdb_parser::{Item, Parser};

fn walk(data: &[u8]) -> Result<(usize, u64), rdb_parser::Error> {
    let (mut keys, mut elements) = (0, 0);
    for item in Parser::new(data)? {
        if let Item::Key(e) = item? {
            keys += 1;
            elements += e.value.decode_all().map_err(|x| x.in_key(e.db, &e.key))?;
        }
    }
    Ok((keys, elements))
}

fn main() {
    for path in std::env::args().skip(1) {
        match std::fs::read(&path) {
            Ok(data) => match walk(&data) {
                Ok((k, e)) => println!("{path}: {k} keys, {e} elements"),
                Err(err) => println!("{path}: ERROR {err}"),
            },
            Err(err) => println!("{path}: cannot read: {err}"),
        }
    }
}
