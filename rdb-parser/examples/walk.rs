//! Decodes every item and element of the snapshots named on the command line and prints
//! a one-line summary per file, or the first error.
//!
//! `cargo run -p rdb-parser --example walk -- dump.rdb ...`

use rdb_parser::{Item, Parser, Value};

fn walk(data: &[u8]) -> Result<(usize, usize), rdb_parser::Error> {
    let (mut keys, mut elements) = (0, 0);
    for item in Parser::new(data)? {
        if let Item::Key(e) = item? {
            keys += 1;
            let err = |x: rdb_parser::Error| x.in_key(e.db, &e.key);
            elements += match &e.value {
                Value::String(s) => s.to_bytes().map(|_| 1).map_err(err)?,
                Value::List(l) => l.iter().try_fold(0, |n, x| x.map(|_| n + 1)).map_err(err)?,
                Value::Set(s) => s.iter().try_fold(0, |n, x| x.map(|_| n + 1)).map_err(err)?,
                Value::ZSet(z) => z.iter().try_fold(0, |n, x| x.map(|_| n + 1)).map_err(err)?,
                Value::Hash(h) => h.iter().try_fold(0, |n, x| x.map(|_| n + 1)).map_err(err)?,
                Value::Stream(s) => s
                    .entries()
                    .try_fold(0, |n, x| x.map(|_| n + 1))
                    .map_err(err)?,
                Value::Module(_) => 1,
            };
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
