//! RDB 13 (Redis 8.6): the header, type-26 streams with their IDMP state, opcode 243 by
//! magic, and the type bytes defined after RDB 13. Real files from fixtures/servers/redis-8.6
//! and files built here byte by byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use rdb_parser::{Error, ErrorKind, Item, ParserBuilder, StreamId, Value};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/servers/redis-8.6")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn items(data: &[u8]) -> Result<Vec<Item<'_>>, Error> {
    ParserBuilder::new()
        .verify_checksum(false)
        .parse(data)?
        .collect()
}

/// A whole file: header, `body`, EOF and a zero (disabled) checksum.
fn file(header: &[u8; 9], body: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.push(0xFE); // SELECTDB 0
    out.push(0);
    out.extend_from_slice(body);
    out.push(0xFF);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A type-26 stream value without nodes or groups, then the given IDMP section.
fn empty_stream_v4(idmp: &[u8]) -> Vec<u8> {
    // nodes 0, length 0, last 0-0, first 0-0, max deleted 0-0, entries added 0, groups 0
    let mut v = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(idmp);
    v
}

fn key(type_byte: u8, name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut v = vec![type_byte, name.len() as u8];
    v.extend_from_slice(name);
    v.extend_from_slice(value);
    v
}

#[test]
fn every_8_6_fixture_reads_whole_and_holds_no_key_meta() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/servers/redis-8.6");
    let mut files = 0;
    let mut streams = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_none_or(|x| x != "rdb") {
            continue;
        }
        let data = std::fs::read(&path).unwrap_or_default();
        let all = ParserBuilder::new()
            .parse(&data)
            .and_then(|p| p.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(matches!(all.first(), Some(Item::Header(v)) if v.number == 13));
        for item in &all {
            match item {
                // What 8.6.3 saves here: no key carries module metadata.
                Item::KeyMeta(_) => panic!("{}: a KEY_META item", path.display()),
                Item::Key(k) => {
                    k.value
                        .decode_all()
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    if let Value::Stream(s) = &k.value {
                        assert_eq!(k.type_id, 26, "8.6 writes every stream as type 26");
                        assert!(s.idmp.is_some());
                        streams += 1;
                    }
                }
                _ => {}
            }
        }
        files += 1;
    }
    assert!(files >= 7, "{files} files");
    assert!(streams > 5, "{streams} streams");
}

#[test]
fn idmp_state_of_the_real_file() {
    let data = fixture("idmp.rdb");
    let all = items(&data).unwrap_or_else(|e| panic!("{e}"));
    let stream = |name: &[u8]| {
        all.iter()
            .find_map(|i| match i {
                Item::Key(k) if k.key.as_ref() == name => match &k.value {
                    Value::Stream(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_else(|| panic!("no stream {name:?}"))
    };
    let t = 4_102_444_800_000u64;
    let s = stream(b"stream:idmp");
    let idmp = s.idmp.unwrap_or_else(|| panic!("no IDMP state"));
    assert_eq!((idmp.duration_s, idmp.max_entries), (3600, 4));
    assert_eq!((idmp.iids_added, idmp.iids_duplicates), (14, 2));
    let producers: Vec<_> = idmp.producers().collect();
    assert_eq!(producers.len() as u64, idmp.producer_count());
    let pids: Vec<&[u8]> = producers.iter().map(|p| p.pid.as_ref()).collect();
    for want in [&b"orders"[..], b"billing", b"pid\xff\x00", b"auto", b"many"] {
        assert!(
            pids.contains(&want),
            "producer {want:?} missing from {pids:?}"
        );
    }
    let orders = producers.iter().find(|p| p.pid.as_ref() == b"orders");
    let orders: Vec<(Vec<u8>, StreamId)> = orders
        .map(|p| p.entries().map(|e| (e.iid.into_owned(), e.id)).collect())
        .unwrap_or_default();
    let id = |seq| StreamId { ms: t, seq };
    assert_eq!(
        orders,
        vec![
            (b"o1".to_vec(), id(1)),
            (b"o2".to_vec(), id(2)),
            (b"o3".to_vec(), id(3))
        ]
    );
    // Six iids, four remembered: the two oldest were evicted.
    let many = producers.iter().find(|p| p.pid.as_ref() == b"many");
    let many: Vec<Vec<u8>> = many
        .map(|p| p.entries().map(|e| e.iid.into_owned()).collect())
        .unwrap_or_default();
    assert_eq!(many, [b"m2", b"m3", b"m4", b"m5"]);
    let iids: u64 = producers.iter().map(|p| p.entry_count()).sum();
    assert_eq!(iids, idmp.iid_count());
    // IDMPAUTO iids are derived by the server from the fields: two distinct ones.
    let auto = producers.iter().find(|p| p.pid.as_ref() == b"auto");
    assert_eq!(auto.map(|p| p.entries().len()), Some(2));

    let cleared = stream(b"stream:idmp-cleared").idmp;
    assert!(
        matches!(cleared, Some(i) if i.producer_count() == 0 && i.duration_s == 60 && i.iids_added == 1)
    );
    let plain = stream(b"stream:plain").idmp;
    assert!(
        matches!(plain, Some(i) if i.producer_count() == 0 && (i.duration_s, i.max_entries) == (100, 100))
    );
}

#[test]
fn built_type_26_stream_and_its_truncations() {
    // duration 100, max 7, 1 producer "p" with iid "i" -> 5-1, added 1, duplicates 2
    let idmp = [0x40, 100, 7, 1, 1, b'p', 1, 1, b'i', 5, 1, 1, 2];
    let data = file(b"REDIS0013", &key(26, b"s", &empty_stream_v4(&idmp)));
    let all = items(&data).unwrap_or_else(|e| panic!("{e}"));
    let s = all.iter().find_map(|i| match i {
        Item::Key(k) => match &k.value {
            Value::Stream(s) => s.idmp.clone(),
            _ => None,
        },
        _ => None,
    });
    let s = s.unwrap_or_else(|| panic!("no IDMP state"));
    assert_eq!(
        (s.duration_s, s.max_entries, s.iids_added, s.iids_duplicates),
        (100, 7, 1, 2)
    );
    let producers: Vec<_> = s.producers().collect();
    let [p] = producers.as_slice() else {
        panic!("{} producers", producers.len());
    };
    assert_eq!(p.pid.as_ref(), b"p");
    let entries: Vec<_> = p.entries().collect();
    assert_eq!(
        entries,
        [rdb_parser::IdmpEntry {
            iid: b"i"[..].into(),
            id: StreamId { ms: 5, seq: 1 }
        }]
    );
    assert_eq!(s.iid_count(), 1);
    // The same bytes as type 21 leave the IDMP section unread: it becomes the next
    // "type byte" and fails, so the section is really part of type 26.
    let data21 = file(b"REDIS0013", &key(21, b"s", &empty_stream_v4(&idmp)));
    assert!(items(&data21).is_err());
    // Every cut inside the IDMP section is an error naming the key, never a panic.
    for cut in 0..idmp.len() {
        let data = file(b"REDIS0013", &key(26, b"s", &empty_stream_v4(&idmp[..cut])));
        let err = items(&data).err();
        assert!(err.is_some(), "cut at {cut} parsed");
    }
    // A producer count the bytes cannot hold fails before reserving anything.
    let huge = [0x40, 100, 7, 0x80, 0x7f, 0xff, 0xff, 0xff, 0, 0];
    let data = file(b"REDIS0013", &key(26, b"s", &empty_stream_v4(&huge)));
    let err = items(&data)
        .err()
        .map(|e| (e.kind().clone(), e.key().map(<[u8]>::to_vec)));
    assert_eq!(err, Some((ErrorKind::Truncated, Some(b"s".to_vec()))));
}

#[test]
fn opcode_243_is_key_meta_under_redis_and_slot_import_under_valkey() {
    // KEY_META with one class (spec 0x41424344, UINT 9, EOF), then EXPIRETIME_MS-free key.
    let mut body = vec![243, 1, 0x44, 0x43, 0x42, 0x41, 2, 9, 0];
    body.extend_from_slice(&key(0, b"k", &[1, b'v']));
    let data = file(b"REDIS0013", &body);
    let mut p = ParserBuilder::new()
        .verify_checksum(false)
        .parse(&data)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    while let Some(item) = p.next() {
        let item = item.unwrap_or_else(|e| panic!("{e}"));
        match &item {
            Item::KeyMeta(m) => {
                assert_eq!(m.classes.len(), 1);
                assert_eq!(m.classes[0].spec, 0x4142_4344);
                assert_eq!(m.classes[0].raw, &[2, 9, 0]);
                // The key that owns it is still to come: no resuming here.
                assert!(!p.at_boundary());
                seen.push("meta");
            }
            Item::Key(k) => {
                assert_eq!(k.key.as_ref(), b"k");
                // The key's own span starts at its type byte, after the metadata.
                assert_eq!(k.offset, 9 + 2 + 9);
                assert!(p.at_boundary());
                seen.push("key");
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["meta", "key"]);
    // Before RDB 13 the byte is no opcode: a REDIS0012 file with it fails.
    let mut data12 = data.clone();
    data12[..9].copy_from_slice(b"REDIS0012");
    let err = items(&data12).err();
    assert!(matches!(err, Some(e) if *e.kind() == ErrorKind::UnknownType));
    // VALKEY080: the same byte is SLOT_IMPORT (name, ranges).
    let body = [243, 3, b'j', b'o', b'b', 1, 0, 0x40, 100];
    let data = file(b"VALKEY080", &body);
    let all = items(&data).unwrap_or_else(|e| panic!("{e}"));
    assert!(all
        .iter()
        .any(|i| matches!(i, Item::SlotImport(s) if s.ranges == vec![(0, 100)])));
}

#[test]
fn types_after_13_stop_naming_the_type_and_its_version() {
    for (t, words) in [
        (27u8, "XNACK"),
        (28, "ARRAY"),
        (29, "hash template"),
        (32, "hash template"),
        (33, "GCRA"),
    ] {
        let data = file(b"REDIS0013", &key(t, b"k", &[0, 0, 0, 0]));
        let err = items(&data)
            .err()
            .unwrap_or_else(|| panic!("type {t} parsed"));
        assert_eq!(*err.kind(), ErrorKind::UnknownType);
        assert_eq!(err.type_byte(), Some(t));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("unknown value type {t} in key \"k\"")),
            "{text}"
        );
        assert!(text.contains(words), "{text}");
        assert!(
            text.contains("Redis 8.8") || text.contains("after RDB 13"),
            "{text}"
        );
        assert_eq!(err.key(), Some(&b"k"[..]), "{text}");
        // The offset is the type byte's: header 9, SELECTDB 2.
        assert_eq!(err.offset(), 11, "{text}");
    }
}

/// A type byte no Redis defines (107, which a Redis Enterprise file held at byte 280)
/// is reported as such at its own offset, not as whatever the bytes after it fail as.
#[test]
fn an_unknown_type_byte_is_named_at_its_offset_whatever_follows() {
    for (t, after) in [
        (107u8, &[0xC3, 0x7F][..]), // would read as a truncated LZF "key"
        (107, &[]),
        (8, &[1, b'k', 0]),
        (60, &[0x40]),
        (242, &[1, b'k']),
    ] {
        let mut body = vec![t];
        body.extend_from_slice(after);
        let data = file(b"REDIS0013", &body);
        let err = items(&data)
            .err()
            .unwrap_or_else(|| panic!("type {t} parsed"));
        let text = err.to_string();
        assert_eq!(*err.kind(), ErrorKind::UnknownType, "{text}");
        assert!(
            text.starts_with(&format!("unknown value type {t} at byte 11: ")),
            "{text}"
        );
        assert!(
            text.contains("the last type this parser reads is 26"),
            "{text}"
        );
        assert!(
            text.contains("newer server or a proprietary fork"),
            "{text}"
        );
        assert_eq!(err.key(), None, "{text}");
    }
    // Opcodes of a later version are unknown types in an older file.
    let mut data = b"REDIS0008".to_vec();
    data.extend_from_slice(&[0xFE, 0, 0xF7, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
    let err = items(&data)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("unknown value type 247 at byte 11"),
        "{err}"
    );
}

#[test]
fn header_13_is_read_and_14_is_not() {
    assert!(items(&file(b"REDIS0013", &[])).is_ok());
    let err = items(&file(b"REDIS0014", &[])).err();
    assert!(matches!(err, Some(e) if *e.kind() == ErrorKind::UnsupportedVersion));
}
