//! Writing for Redis 8.6 (RDB 13) and from it: 8.6 -> 8.6 reproduces the file, streams with
//! IDMP state stop a conversion to any older target unless `StreamIdmpPolicy::Drop` is
//! chosen (then each is reported), and untouched IDMP sections go without a word.

#![allow(clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;

use rdb_parser::{Item, ParserBuilder, StreamId, Value};
use rdb_writer::convert::{
    convert, ConvertError, ConvertOptions, FieldTtlPolicy, FunctionPolicy, ModulePolicy,
    StreamIdmpPolicy,
};
use rdb_writer::{TargetProfile, PROFILES};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/servers/redis-8.6")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn options(target: &str) -> ConvertOptions {
    let profile = TargetProfile::named(target).unwrap_or_else(|| panic!("no profile {target}"));
    let mut o = ConvertOptions::new(profile.clone());
    o.field_ttls = FieldTtlPolicy::Drop;
    o.functions = FunctionPolicy::Drop;
    o.modules = ModulePolicy::Drop;
    o
}

/// The report lines of a conversion: (key, action).
type Losses = Vec<(Vec<u8>, String)>;

/// Converts; returns the output and the report lines.
fn run(data: &[u8], opts: &ConvertOptions) -> Result<(Vec<u8>, Losses), ConvertError> {
    let mut losses = Vec::new();
    let (out, _) = convert(
        data,
        &ParserBuilder::new(),
        opts,
        Vec::new(),
        &mut |l| {
            losses.push((l.key.unwrap_or_default().to_vec(), l.action.to_string()));
            Ok(())
        },
        &mut |_| {},
    )?;
    Ok((out, losses))
}

/// Every stream of a file: key, type byte, live entries with their fields.
type Streams = Vec<(Vec<u8>, u8, Vec<(StreamId, Vec<(Vec<u8>, Vec<u8>)>)>)>;

fn streams(data: &[u8]) -> Streams {
    let mut out = Vec::new();
    for item in ParserBuilder::new()
        .parse(data)
        .unwrap_or_else(|e| panic!("{e}"))
    {
        if let Item::Key(k) = item.unwrap_or_else(|e| panic!("{e}")) {
            if let Value::Stream(s) = &k.value {
                let mut entries = Vec::new();
                let mut walk = s.entries();
                while let Some(e) = walk.next_entry() {
                    let e = e.unwrap_or_else(|e| panic!("{e}"));
                    let fields = e
                        .fields
                        .iter()
                        .map(|(f, v)| (f.to_bytes().into_owned(), v.to_bytes().into_owned()))
                        .collect();
                    entries.push((e.id, fields));
                }
                out.push((k.key.to_vec(), k.type_id, entries));
            }
        }
    }
    out
}

#[test]
fn redis_8_6_to_redis_8_6_is_byte_identical() {
    for name in [
        "types.rdb",
        "big.rdb",
        "idmp.rdb",
        "vectorsets.rdb",
        "lfu.rdb",
        "empty.rdb",
    ] {
        let data = fixture(name);
        let mut opts = options("redis-8.6");
        opts.modules = ModulePolicy::Keep;
        let (out, losses) = run(&data, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(out == data, "{name}: the output differs from the input");
        assert!(losses.is_empty(), "{name}: {losses:?}");
    }
    // `--rdb-version 13` is the same format.
    assert_eq!(
        TargetProfile::for_version(13).map(|p| p.version.number),
        Some(13)
    );
}

#[test]
fn idmp_state_stops_older_targets_unless_dropped() {
    let data = fixture("idmp.rdb");
    let source = streams(&data);
    let older: Vec<&str> = PROFILES
        .iter()
        .filter(|p| !p.loads_type(26))
        .map(|p| p.name)
        .collect();
    assert!(older.len() > 10, "{older:?}");
    for target in older {
        let err = run(&data, &options(target)).err();
        let kind = match &err {
            Some(rdb_writer::convert::ConvertError::Unrepresentable { kind, .. }) => Some(*kind),
            _ => None,
        };
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("stream:idmp") && text.contains("IDMP state"),
            "{target}: {text}"
        );
        // The kind, not the text, tells the CLI which flag accepts the loss.
        assert_eq!(
            kind,
            Some(rdb_writer::convert::LossKind::StreamIdmp),
            "{target}"
        );

        let mut opts = options(target);
        opts.stream_idmp = StreamIdmpPolicy::Drop;
        let (out, losses) = run(&data, &opts).unwrap_or_else(|e| panic!("{target}: {e}"));
        // One report line per stream whose state is more than an untouched default.
        let mut dropped: Vec<&[u8]> = losses
            .iter()
            .filter(|(_, a)| a == "stream_idmp_dropped")
            .map(|(k, _)| k.as_slice())
            .collect();
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                &b"stream:idmp"[..],
                b"stream:idmp-cleared",
                b"stream:idmp-xcfgset"
            ],
            "{target}"
        );
        // The entries are all there, in a stream type the target loads.
        let got = streams(&out);
        assert_eq!(got.len(), source.len(), "{target}");
        for ((k1, _, e1), (k2, t2, e2)) in source.iter().zip(&got) {
            assert_eq!(k1, k2);
            assert!(*t2 < 26, "{target}: {k2:?} written as type {t2}");
            assert_eq!(e1, e2, "{target}: {k2:?}");
        }
    }
}

#[test]
fn untouched_idmp_sections_convert_without_a_word() {
    // types.rdb from 8.6: every stream is type 26, none used IDMP.
    let data = fixture("types.rdb");
    for target in [
        "redis-5.0",
        "redis-7.0",
        "redis-7.4",
        "redis-8.0",
        "valkey-9.0",
    ] {
        let (out, losses) =
            run(&data, &options(target)).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(
            !losses.iter().any(|(_, a)| a == "stream_idmp_dropped"),
            "{target}: {losses:?}"
        );
        assert!(streams(&out).iter().all(|(_, t, _)| *t < 26), "{target}");
    }
}

/// A REDIS0013 file whose key "k" (with an expiry) carries one KEY_META class, then a
/// plain key "p"; trailer with its real CRC64.
fn key_meta_file() -> Vec<u8> {
    let mut b = b"REDIS0013".to_vec();
    b.extend_from_slice(&[0xFE, 0]); // SELECTDB 0
    b.push(0xFC); // EXPIRETIME_MS in 2100
    b.extend_from_slice(&4_102_444_800_000i64.to_le_bytes());
    b.extend_from_slice(&[243, 1, 0x44, 0x43, 0x42, 0x41, 2, 9, 0]); // KEY_META
    b.extend_from_slice(&[0, 1, b'k', 1, b'v']); // string k = v
    b.extend_from_slice(&[0, 1, b'p', 1, b'w']); // string p = w
    b.push(0xFF);
    let crc = rdb_parser::crc64(0, &b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn key_meta_stays_with_its_key_on_8_6_and_is_reported_elsewhere() {
    let data = key_meta_file();
    let (out, losses) = run(&data, &options("redis-8.6")).unwrap_or_else(|e| panic!("{e}"));
    assert!(out == data, "8.6 -> 8.6 changed a file with KEY_META");
    assert!(losses.is_empty(), "{losses:?}");

    // Leaving "k" out takes its metadata along: none of it lands before "p".
    let mut only_p = options("redis-8.6");
    only_p.filter.drop_expired = true;
    only_p.filter.now_ms = i64::MAX;
    let (out, _) = run(&data, &only_p).unwrap_or_else(|e| panic!("{e}"));
    let items: Vec<Item<'_>> = ParserBuilder::new()
        .parse(&out)
        .and_then(|p| p.collect())
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Key(k) => Some(std::str::from_utf8(&k.key).unwrap_or("?")),
            Item::KeyMeta(_) => Some("KEY_META"),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["p"]);

    for target in ["redis-8.0", "redis-7.4", "valkey-9.0", "redis-6.2"] {
        let (out, losses) =
            run(&data, &options(target)).unwrap_or_else(|e| panic!("{target}: {e}"));
        let actions: Vec<&str> = losses.iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(actions, ["key_meta_dropped"], "{target}");
        let items: Vec<Item<'_>> = ParserBuilder::new()
            .parse(&out)
            .and_then(|p| p.collect())
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let keys: Vec<(Vec<u8>, Option<i64>)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Key(k) => Some((k.key.to_vec(), k.expire_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (b"k".to_vec(), Some(4_102_444_800_000)),
                (b"p".to_vec(), None)
            ],
            "{target}"
        );
        assert!(
            !items.iter().any(|i| matches!(i, Item::KeyMeta(_))),
            "{target}"
        );
    }
}
