//! "Now" for every expiry question (expired keys, TTL filters, field TTLs): one meaning of
//! the snapshot's own moment for every command.

use rdb_parser::{Item, ParserBuilder};

/// The moment a snapshot stands for, from its `ctime` AUX value: the end of the second it
/// names. The save began within that second, so a key that had expired when it began
/// counts as expired (any later load drops it too). `None` for a value that is not a
/// number of seconds or overflows in milliseconds (it comes from the file).
pub fn from_ctime(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value)
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()?
        .checked_add(1)?
        .checked_mul(1000)
}

/// [`from_ctime`] of the snapshot `data`, when its header has a `ctime` AUX field.
pub fn snapshot_ms(data: &[u8]) -> Option<i64> {
    let parser = ParserBuilder::new()
        .verify_checksum(false)
        .parse(data)
        .ok()?;
    for item in parser.take(64) {
        match item.ok()? {
            Item::Aux(a) if a.key.as_ref() == b"ctime" => return from_ctime(&a.value),
            Item::Header(_) | Item::Aux(_) => {}
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_is_the_end_of_its_second_and_checked() {
        assert_eq!(from_ctime(b"1700000000"), Some(1_700_000_001_000));
        assert_eq!(from_ctime(b" 1700000000\n"), Some(1_700_000_001_000));
        assert_eq!(from_ctime(b"9223372036854775807"), None);
        assert_eq!(from_ctime(b"92233720368547758"), None);
        assert_eq!(from_ctime(b"soon"), None);
    }
}
