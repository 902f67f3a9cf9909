//! `rdbkit verify`: every healthy file is accepted, every corruption is flagged with its
//! offset (and key where there is one), each check fires on an input crafted for it, and
//! the verdicts agree with the real servers' redis-check-rdb.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fixtures_dir, peers_dir, rdb_files};
use rdb_cli::verify::{verify, verify_with, Problem, Report, Severity};
use rdb_parser::format::type_id;
use rdb_parser::Version;
use rdb_writer::{
    encode, value, Compression, ListpackBuilder, Writer, WriterBuilder, ZiplistBuilder,
};

const KNOWN_CORRUPT: [&str; 2] = ["corrupt_ziplist.rdb", "corrupt_empty_keys.rdb"];

fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in rdb_files_dirs(&fixtures_dir()) {
        files.extend(rdb_files(&dir));
    }
    assert!(files.len() >= 40, "expected the committed fixtures");
    files
}

fn rdb_files_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn peer_files() -> Option<Vec<PathBuf>> {
    let dir = peers_dir()?;
    let mut files = Vec::new();
    for sub in rdb_files_dirs(&dir) {
        files.extend(rdb_files(&sub));
    }
    Some(files)
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn errors(r: &Report) -> Vec<&Problem> {
    r.problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
}

#[test]
fn every_fixture_is_clean() {
    for path in fixture_files() {
        let r = verify(&read(&path), |_| {});
        assert!(r.ok(), "{}: {:?}", path.display(), r.problems);
        assert!(r.complete, "{}", path.display());
    }
}

#[test]
fn every_peer_file_is_clean_except_the_known_corrupt_ones() {
    let Some(files) = peer_files() else { return };
    assert_eq!(files.len(), 36);
    for path in files {
        let r = verify(&read(&path), |_| {});
        if KNOWN_CORRUPT.contains(&name(&path).as_str()) {
            let errs = errors(&r);
            assert!(!errs.is_empty(), "{}: not flagged", path.display());
            for p in errs {
                assert!(p.offset > 9, "{}: {p:?}", path.display());
                assert!(
                    p.key.is_some() && p.db.is_some(),
                    "{}: {p:?}",
                    path.display()
                );
            }
        } else {
            assert!(r.ok(), "{}: {:?}", path.display(), r.problems);
        }
    }
}

#[test]
fn corrupt_empty_keys_lists_every_empty_key() {
    let Some(dir) = peers_dir() else { return };
    let r = verify(
        &read(&dir.join("redis-redis/corrupt_empty_keys.rdb")),
        |_| {},
    );
    let empty: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.check.name() == "empty-collection")
        .collect();
    // Redis' test file holds nine empty keys; all are reported, not just the first.
    assert_eq!(empty.len(), 9, "{:?}", r.problems);
    assert!(r.complete);
}

/// Flipping any byte of a checksummed file, or cutting it short, is flagged.
#[test]
fn bit_flips_and_truncations_are_flagged() {
    for path in fixture_files()
        .into_iter()
        .filter(|p| name(p) == "types.rdb" || name(p) == "big.rdb")
    {
        let data = read(&path);
        let len = data.len();
        for i in 1..=12 {
            let pos = 9 + (len - 10) * i / 13;
            for bit in [0u8, 3, 7] {
                let mut bad = data.clone();
                if let Some(b) = bad.get_mut(pos) {
                    *b ^= 1 << bit;
                }
                let r = verify(&bad, |_| {});
                assert!(
                    !r.ok(),
                    "{}: flip of bit {bit} at {pos} not flagged",
                    path.display()
                );
                assert!(errors(&r).iter().all(|p| p.offset <= len as u64));
            }
            let cut = data.get(..pos).unwrap_or_default();
            let r = verify(cut, |_| {});
            assert!(
                !r.ok() && !r.complete,
                "{}: truncation at {pos} not flagged",
                path.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// One crafted input per check

fn snapshot(version: u32, build: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = WriterBuilder::new()
        .build(Vec::new(), Version::redis(version))
        .unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    build(&mut w);
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn one_key(version: u32, type_byte: u8, encoded: &[u8]) -> Vec<u8> {
    snapshot(version, |w| {
        w.key_value(type_byte, b"bad", encoded)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn blob_value(blob: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode::raw_string(&mut v, blob);
    v
}

/// Asserts that `check` fires on key "bad" with an offset inside the file, and that the
/// rest of the file was still walked to EOF.
fn fires(data: &[u8], check: &str) -> Problem {
    let r = verify(data, |_| {});
    let p = r
        .problems
        .iter()
        .find(|p| p.check.name() == check && p.severity == Severity::Error)
        .unwrap_or_else(|| panic!("{check} did not fire: {:?}", r.problems))
        .clone();
    assert!(!r.ok());
    assert!(p.offset > 9 && p.offset < data.len() as u64, "{p:?}");
    assert_eq!(p.key.as_deref(), Some(&b"bad"[..]), "{p:?}");
    assert_eq!(p.db, Some(0));
    p
}

/// Rewrites byte `at` of a crafted blob.
fn poke(v: &mut [u8], at: usize, f: impl FnOnce(u8) -> u8) {
    let b = v
        .get_mut(at)
        .unwrap_or_else(|| panic!("byte {at} outside the blob"));
    *b = f(*b);
}

fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut zl = ZiplistBuilder::new();
    for i in items {
        zl.push(i);
    }
    zl.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// `fires` on `good` with the byte at `at` changed by `f`, as the value of one key.
fn fires_when_poked(
    version: u32,
    type_byte: u8,
    good: &[u8],
    at: usize,
    f: impl FnOnce(u8) -> u8,
    check: &str,
) -> Problem {
    let mut bad = good.to_vec();
    poke(&mut bad, at, f);
    fires(&one_key(version, type_byte, &blob_value(&bad)), check)
}

fn listpack(items: &[&[u8]]) -> Vec<u8> {
    let mut lp = ListpackBuilder::new();
    for i in items {
        lp.push(i);
    }
    lp.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ziplist_header_entries_and_terminator() {
    let good = ziplist(&[b"aa", b"bb"]);
    assert!(verify(
        &one_key(9, type_id::LIST_ZIPLIST, &blob_value(&good)),
        |_| {}
    )
    .ok());
    // Total bytes.
    fires_when_poked(9, type_id::LIST_ZIPLIST, &good, 0, |b| b + 1, "ziplist");
    // Entry count.
    fires_when_poked(9, type_id::LIST_ZIPLIST, &good, 8, |_| 3, "ziplist");
    // The second entry's previous-entry length (the first entry takes 4 bytes).
    assert_eq!(good.get(14).copied(), Some(4));
    fires_when_poked(9, type_id::LIST_ZIPLIST, &good, 14, |_| 5, "ziplist");
    // Tail offset not at the last entry (the second starts at 14).
    assert_eq!(good.get(4).copied(), Some(14));
    fires_when_poked(9, type_id::LIST_ZIPLIST, &good, 4, |_| 10, "ziplist");
    // Terminator.
    let last = good.len() - 1;
    fires_when_poked(9, type_id::LIST_ZIPLIST, &good, last, |_| 0xFE, "ziplist");
}

#[test]
fn listpack_header_back_length_and_terminator() {
    let good = listpack(&[b"a", b"b"]);
    assert!(verify(
        &one_key(11, type_id::SET_LISTPACK, &blob_value(&good)),
        |_| {}
    )
    .ok());
    fires_when_poked(11, type_id::SET_LISTPACK, &good, 0, |b| b + 1, "listpack");
    fires_when_poked(11, type_id::SET_LISTPACK, &good, 4, |_| 3, "listpack");
    // Back-length of the first entry ("a": 0x81 'a' backlen 2).
    assert_eq!(good.get(8).copied(), Some(2));
    fires_when_poked(11, type_id::SET_LISTPACK, &good, 8, |_| 3, "listpack");
    // A back-length byte with the continuation bit where none may be.
    fires_when_poked(
        11,
        type_id::SET_LISTPACK,
        &good,
        8,
        |b| b | 0x80,
        "listpack",
    );
    let last = good.len() - 1;
    fires_when_poked(11, type_id::SET_LISTPACK, &good, last, |_| 0x00, "listpack");
}

fn intset(width: u32, values: &[i64]) -> Vec<u8> {
    let mut b = width.to_le_bytes().to_vec();
    b.extend((values.len() as u32).to_le_bytes());
    for v in values {
        b.extend(v.to_le_bytes().get(..width as usize).unwrap_or_default());
    }
    b
}

#[test]
fn intset_order_width_and_uniqueness() {
    let ok = one_key(9, type_id::SET_INTSET, &blob_value(&intset(2, &[1, 2, 3])));
    assert!(verify(&ok, |_| {}).ok());
    fires(
        &one_key(9, type_id::SET_INTSET, &blob_value(&intset(2, &[1, 3, 2]))),
        "intset-order",
    );
    fires(
        &one_key(9, type_id::SET_INTSET, &blob_value(&intset(4, &[5, 5]))),
        "intset-order",
    );
    fires(
        &one_key(9, type_id::SET_INTSET, &blob_value(&intset(3, &[1, 2]))),
        "intset",
    );
    // Length that does not match the count.
    let mut short = intset(2, &[1, 2]);
    short.pop();
    fires(
        &one_key(9, type_id::SET_INTSET, &blob_value(&short)),
        "intset",
    );
}

#[test]
fn nan_scores() {
    let v = value::zset_2(&[(b"m".as_slice(), f64::NAN)], Compression::None);
    fires(&one_key(9, type_id::ZSET_2, &v), "nan-score");
    let lp = listpack(&[b"m", b"nan"]);
    fires(
        &one_key(10, type_id::ZSET_LISTPACK, &blob_value(&lp)),
        "nan-score",
    );
}

#[test]
fn duplicate_members_and_fields() {
    let v = value::set_plain(&[b"a".as_slice(), b"b", b"a"], Compression::None);
    let p = fires(&one_key(9, type_id::SET, &v), "duplicate-member");
    assert!(p.message.contains("\"a\""), "{p:?}");
    let v = value::hash_plain(
        &[(b"f".as_slice(), b"1".as_slice()), (b"f", b"2")],
        Compression::None,
    );
    fires(&one_key(9, type_id::HASH, &v), "duplicate-member");
    let lp = listpack(&[b"m", b"1", b"m", b"2"]);
    fires(
        &one_key(10, type_id::ZSET_LISTPACK, &blob_value(&lp)),
        "duplicate-member",
    );
    // An integer entry and the same digits as a string are the same member.
    let mut lp = ListpackBuilder::new();
    lp.push_int(7);
    lp.push_str(b"7");
    let lp = lp.finish().unwrap_or_else(|e| panic!("{e}"));
    fires(
        &one_key(11, type_id::SET_LISTPACK, &blob_value(&lp)),
        "duplicate-member",
    );
}

#[test]
fn hash_field_ttls() {
    // Valkey HASH_2: field, value, i64 expiry (-1: none).
    let hash2 = |expire: i64| {
        let mut v = Vec::new();
        encode::length(&mut v, 1);
        encode::raw_string(&mut v, b"f");
        encode::raw_string(&mut v, b"v");
        encode::ms_time(&mut v, expire);
        v
    };
    let valkey = |v: &[u8]| {
        let mut w = Writer::new(Vec::new(), Version::valkey(80)).unwrap_or_else(|e| panic!("{e}"));
        w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
        w.key_value(type_id::HASH_2, b"bad", v)
            .unwrap_or_else(|e| panic!("{e}"));
        w.finish().unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(verify(&valkey(&hash2(-1)), |_| {}).ok());
    assert!(verify(&valkey(&hash2(1_700_000_000_000)), |_| {}).ok());
    fires(&valkey(&hash2(-5)), "hash-field-ttl");
    fires(&valkey(&hash2(1 << 50)), "hash-field-ttl");
    // Redis 7.4 listpack (type 25): min expiry, then (field, value, expiry) triples.
    let listpack_ex = |ttls: &[i64]| {
        let mut lp = ListpackBuilder::new();
        for (i, t) in ttls.iter().enumerate() {
            lp.push_str(format!("f{i}").as_bytes());
            lp.push_str(b"v");
            lp.push_int(*t);
        }
        let mut v = Vec::new();
        encode::ms_time(
            &mut v,
            ttls.iter().copied().filter(|&t| t > 0).min().unwrap_or(0),
        );
        encode::raw_string(&mut v, &lp.finish().unwrap_or_else(|e| panic!("{e}")));
        v
    };
    let t = 1_700_000_000_000;
    assert!(verify(
        &one_key(12, type_id::HASH_LISTPACK_EX, &listpack_ex(&[t, t + 5, 0])),
        |_| {}
    )
    .ok());
    fires(
        &one_key(12, type_id::HASH_LISTPACK_EX, &listpack_ex(&[t + 5, t])),
        "hash-field-ttl",
    );
    fires(
        &one_key(12, type_id::HASH_LISTPACK_EX, &listpack_ex(&[0, t])),
        "hash-field-ttl",
    );
}

#[test]
fn hash_and_zset_pair_counts() {
    let odd = listpack(&[b"f", b"v", b"g"]);
    fires(
        &one_key(10, type_id::HASH_LISTPACK, &blob_value(&odd)),
        "hash",
    );
    fires(
        &one_key(10, type_id::ZSET_LISTPACK, &blob_value(&odd)),
        "zset",
    );
    let odd = ziplist(&[b"f", b"v", b"g"]);
    fires(
        &one_key(9, type_id::HASH_ZIPLIST, &blob_value(&odd)),
        "hash",
    );
}

#[test]
fn quicklist_nodes() {
    let node = |container: u64, blob: &[u8]| {
        let mut v = Vec::new();
        encode::length(&mut v, 1);
        encode::length(&mut v, container);
        encode::raw_string(&mut v, blob);
        v
    };
    let good = listpack(&[b"x", b"y"]);
    assert!(verify(
        &one_key(10, type_id::LIST_QUICKLIST_2, &node(2, &good)),
        |_| {}
    )
    .ok());
    let mut bad = good.clone();
    poke(&mut bad, 8, |_| 9);
    fires(
        &one_key(10, type_id::LIST_QUICKLIST_2, &node(2, &bad)),
        "listpack",
    );
    // An unknown container breaks the value's extent: reported, and the walk stops.
    let data = one_key(10, type_id::LIST_QUICKLIST_2, &node(7, &good));
    let r = verify(&data, |_| {});
    assert!(!r.ok() && !r.complete, "{:?}", r.problems);
    assert!(r.problems.iter().any(|p| p.message.contains("container")));
    // An empty node among full ones: servers skip it; a warning, not an error.
    let mut v = Vec::new();
    encode::length(&mut v, 2);
    for blob in [listpack(&[]), good.clone()] {
        encode::length(&mut v, 2);
        encode::raw_string(&mut v, &blob);
    }
    let r = verify(&one_key(10, type_id::LIST_QUICKLIST_2, &v), |_| {});
    assert!(r.ok(), "{:?}", r.problems);
    let p = r.problems.first().unwrap_or_else(|| panic!("no warning"));
    assert_eq!(
        (p.check.name(), p.severity),
        ("quicklist-node", Severity::Warning)
    );
    // Only empty nodes: an empty list, an error.
    let mut v = Vec::new();
    encode::length(&mut v, 1);
    encode::raw_string(&mut v, &ziplist(&[]));
    fires(&one_key(9, type_id::LIST_QUICKLIST, &v), "empty-collection");
    // A v1 quicklist node is a ziplist.
    let mut v = Vec::new();
    encode::length(&mut v, 1);
    let mut zl = ziplist(&[b"x"]);
    poke(&mut zl, 0, |b| b + 1);
    encode::raw_string(&mut v, &zl);
    fires(&one_key(9, type_id::LIST_QUICKLIST, &v), "ziplist");
}

#[derive(Default)]
struct Group<'a> {
    pel: &'a [(u64, u64)],
    consumers: &'a [&'a [(u64, u64)]],
    /// The group's last-delivered ID (default: the stream's last ID).
    last: Option<(u64, u64)>,
}

/// A type 15 stream with one node holding `ids` (field "f", value "v" each).
fn stream(ids: &[(u64, u64)], length: u64, last: (u64, u64), groups: &[Group<'_>]) -> Vec<u8> {
    let master = ids.first().copied().unwrap_or((0, 0));
    let mut lp = ListpackBuilder::new();
    lp.push_int(ids.len() as i64);
    lp.push_int(0);
    lp.push_int(1);
    lp.push_str(b"f");
    lp.push_int(0);
    for &(ms, seq) in ids {
        lp.push_int(2); // SAMEFIELDS
        lp.push_int(ms as i64 - master.0 as i64);
        lp.push_int(seq as i64 - master.1 as i64);
        lp.push_str(b"v");
        lp.push_int(4);
    }
    let lp = lp.finish().unwrap_or_else(|e| panic!("{e}"));
    let raw = |out: &mut Vec<u8>, (ms, seq): (u64, u64)| {
        out.extend(ms.to_be_bytes());
        out.extend(seq.to_be_bytes());
    };
    let mut v = Vec::new();
    encode::length(&mut v, 1);
    let mut master_raw = Vec::new();
    raw(&mut master_raw, master);
    encode::raw_string(&mut v, &master_raw);
    encode::raw_string(&mut v, &lp);
    encode::length(&mut v, length);
    encode::length(&mut v, last.0);
    encode::length(&mut v, last.1);
    encode::length(&mut v, groups.len() as u64);
    for (i, g) in groups.iter().enumerate() {
        encode::raw_string(&mut v, format!("g{i}").as_bytes());
        let group_last = g.last.unwrap_or(last);
        encode::length(&mut v, group_last.0);
        encode::length(&mut v, group_last.1);
        encode::length(&mut v, g.pel.len() as u64);
        for &id in g.pel {
            raw(&mut v, id);
            encode::ms_time(&mut v, 1_700_000_000_000);
            encode::length(&mut v, 1);
        }
        encode::length(&mut v, g.consumers.len() as u64);
        for (j, c) in g.consumers.iter().enumerate() {
            encode::raw_string(&mut v, format!("c{j}").as_bytes());
            encode::ms_time(&mut v, 1_700_000_000_000);
            encode::length(&mut v, c.len() as u64);
            for &id in c.iter() {
                raw(&mut v, id);
            }
        }
    }
    v
}

#[test]
fn stream_ids_and_consumer_groups() {
    let t = type_id::STREAM_LISTPACKS;
    let ok = stream(
        &[(1, 0), (2, 0)],
        2,
        (2, 0),
        &[Group {
            pel: &[(1, 0), (2, 0)],
            consumers: &[&[(1, 0)], &[(2, 0)]],
            ..Group::default()
        }],
    );
    let r = verify(&one_key(9, t, &ok), |_| {});
    assert!(r.ok() && r.problems.is_empty(), "{:?}", r.problems);

    fires(
        &one_key(9, t, &stream(&[(5, 0), (3, 0)], 2, (5, 0), &[])),
        "stream-id-order",
    );
    fires(
        &one_key(9, t, &stream(&[(1, 0)], 2, (1, 0), &[])),
        "stream-length",
    );
    fires(
        &one_key(9, t, &stream(&[(1, 0), (9, 0)], 2, (5, 0), &[])),
        "stream-last-id",
    );
    // A PEL entry nobody owns.
    let unowned = stream(
        &[(1, 0)],
        1,
        (1, 0),
        &[Group {
            pel: &[(1, 0)],
            consumers: &[],
            ..Group::default()
        }],
    );
    let p = fires(&one_key(9, t, &unowned), "stream-pel");
    assert!(p.message.contains("no consumer"), "{p:?}");
    // Owned twice.
    let shared = stream(
        &[(1, 0)],
        1,
        (1, 0),
        &[Group {
            pel: &[(1, 0)],
            consumers: &[&[(1, 0)], &[(1, 0)]],
            ..Group::default()
        }],
    );
    let p = fires(&one_key(9, t, &shared), "stream-pel");
    assert!(p.message.contains("more than one"), "{p:?}");
    // A consumer entry missing from the group PEL.
    let missing = stream(
        &[(1, 0)],
        1,
        (1, 0),
        &[Group {
            pel: &[],
            consumers: &[&[(1, 0)]],
            ..Group::default()
        }],
    );
    let p = fires(&one_key(9, t, &missing), "stream-pel");
    assert!(p.message.contains("not in the group PEL"), "{p:?}");
    // A group that has delivered past the stream's last ID: loadable, but suspicious.
    let ahead = stream(
        &[(1, 0)],
        1,
        (1, 0),
        &[Group {
            last: Some((7, 0)),
            ..Group::default()
        }],
    );
    let r = verify(&one_key(9, t, &ahead), |_| {});
    assert!(r.ok(), "{:?}", r.problems);
    assert!(
        r.problems
            .iter()
            .any(|p| p.check.name() == "stream-group" && p.severity == Severity::Warning),
        "{:?}",
        r.problems
    );
    // Two groups of one name.
    let twice = stream(&[(1, 0)], 1, (1, 0), &[Group::default(), Group::default()]);
    let mut renamed = twice.clone();
    // The second group is named "g1": make it "g0".
    let at = renamed
        .windows(2)
        .rposition(|w| w == b"g1")
        .unwrap_or_else(|| panic!("no g1"));
    poke(&mut renamed, at + 1, |_| b'0');
    fires(&one_key(9, t, &renamed), "stream-group");
}

#[test]
fn duplicate_keys_in_a_db() {
    let data = snapshot(9, |w| {
        for v in [b"1", b"2"] {
            w.key_value(
                type_id::STRING,
                b"bad",
                &value::string(v, Compression::None),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        // The same name in another db is fine.
        w.select_db(1).unwrap_or_else(|e| panic!("{e}"));
        w.key_value(
            type_id::STRING,
            b"bad",
            &value::string(b"3", Compression::None),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    let p = fires(&data, "duplicate-key");
    assert!(p.message.contains("at byte"), "{p:?}");
    let r = verify(&data, |_| {});
    assert_eq!(r.errors(), 1, "{:?}", r.problems);
}

/// Keys spread over many batches (4 Ki items each): duplicates far apart, a key three
/// times, and a duplicate in the last batch are each found once, at the later copy, naming
/// the copy before it.
#[test]
#[allow(clippy::indexing_slicing)] // lengths asserted first
fn duplicate_keys_across_batches() {
    let names: Vec<Vec<u8>> = (0..40_000)
        .map(|i| format!("k{i}").into_bytes())
        .chain([b"k5".to_vec(), b"k20000".to_vec(), b"k5".to_vec()])
        .collect();
    let data = snapshot(9, |w| {
        for name in &names {
            w.key_value(
                type_id::STRING,
                name,
                &value::string(b"v", Compression::None),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    let r = verify(&data, |_| {});
    let dups: Vec<&Problem> = r
        .problems
        .iter()
        .filter(|p| p.check.name() == "duplicate-key")
        .collect();
    let keys: Vec<&[u8]> = dups.iter().filter_map(|p| p.key.as_deref()).collect();
    assert_eq!(keys, [&b"k5"[..], b"k20000", b"k5"], "{dups:?}");
    assert_eq!(r.errors(), 3, "{:?}", r.problems);
    // Offsets ascend, and each message names the copy before it.
    assert!(dups.windows(2).all(|w| w[0].offset < w[1].offset));
    let first_k5 = dups[0].offset;
    assert!(
        dups[2].message.ends_with(&format!("at byte {first_k5}")),
        "{:?}",
        dups[2]
    );
}

#[test]
fn empty_collections() {
    fires(
        &one_key(
            9,
            type_id::SET,
            &value::set_plain::<&[u8]>(&[], Compression::None),
        ),
        "empty-collection",
    );
    let lp = listpack(&[]);
    fires(
        &one_key(10, type_id::HASH_LISTPACK, &blob_value(&lp)),
        "empty-collection",
    );
}

#[test]
fn expiry_without_a_key() {
    let mut data = WriterBuilder::new()
        .checksum(false)
        .build(Vec::new(), Version::redis(9))
        .and_then(|mut w| {
            w.key_value(
                type_id::STRING,
                b"k",
                &value::string(b"v", Compression::None),
            )?;
            w.finish()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let eof = data.len() - 9;
    let mut opcode = vec![rdb_parser::format::opcode::EXPIRETIME_MS];
    opcode.extend(1_700_000_000_000i64.to_le_bytes());
    data.splice(eof..eof, opcode);
    let r = verify(&data, |_| {});
    let p = r
        .problems
        .iter()
        .find(|p| p.check.name() == "dangling-opcode")
        .unwrap_or_else(|| panic!("{:?}", r.problems));
    assert_eq!(p.offset, eof as u64);
    assert!(!r.ok());
}

/// An expiry (or IDLE, FREQ) opcode followed by another of its kind before the key: loaders
/// keep the last, so the first belongs to no key, as one before EOF does. Also when a
/// SELECTDB or AUX comes between them and the key.
/// Writes what comes between two keys.
type Between = dyn Fn(&mut Writer<Vec<u8>>) -> std::io::Result<()>;

#[test]
fn repeated_key_opcodes_leave_the_first_without_a_key() {
    let v = value::string(b"v", Compression::None);
    let build = |f: &Between| {
        WriterBuilder::new()
            .build(Vec::new(), Version::redis(9))
            .and_then(|mut w| {
                w.select_db(0)?;
                w.key_value(type_id::STRING, b"first", &v)?;
                f(&mut w)?;
                w.key_value(type_id::STRING, b"bad", &v)?;
                w.finish()
            })
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let cases: [(&str, &Between); 3] = [
        ("two expiries", &|w| {
            w.expire_ms(1_700_000_000_000)?;
            w.expire_ms(1_800_000_000_000)
        }),
        ("two idle times, a db between", &|w| {
            w.idle(5)?;
            w.select_db(0)?;
            w.idle(7)
        }),
        ("two counters, an aux between", &|w| {
            w.freq(3)?;
            w.aux(b"x", b"y")?;
            w.freq(4)
        }),
    ];
    for (what, f) in cases {
        let data = build(f);
        let p = fires(&data, "dangling-opcode");
        // The first opcode: right after the key "first" (its value "v" ends it).
        let first = data
            .windows(7)
            .position(|w| w == b"first\x01v")
            .unwrap_or_else(|| panic!("no first key"))
            + 7;
        assert_eq!(p.offset, first as u64, "{what}: {p:?}");
    }
    // An expiry, then a SELECTDB, then EOF: no key ever comes.
    let data = WriterBuilder::new()
        .build(Vec::new(), Version::redis(9))
        .and_then(|mut w| {
            w.select_db(0)?;
            w.key_value(type_id::STRING, b"first", &v)?;
            w.expire_ms(1_700_000_000_000)?;
            w.select_db(1)?;
            w.finish()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let r = verify(&data, |_| {});
    let p = r
        .problems
        .iter()
        .find(|p| p.check.name() == "dangling-opcode")
        .unwrap_or_else(|| panic!("{:?}", r.problems));
    let first = data
        .windows(7)
        .position(|w| w == b"first\x01v")
        .unwrap_or_else(|| panic!("no first key"))
        + 7;
    assert_eq!(p.offset, first as u64, "{p:?}");
    // One of each kind is what servers write: clean.
    let data = build(&|w| {
        w.expire_ms(1_700_000_000_000)?;
        w.idle(5)?;
        w.freq(3)
    });
    let r = verify(&data, |_| {});
    assert!(r.ok() && r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn lzf_strings_must_expand_to_their_declared_length() {
    let text = vec![b'a'; 200];
    let good = value::string(&text, Compression::Lzf);
    assert_eq!(
        good.first().copied(),
        Some(0xC3),
        "the writer compresses a run of 200 bytes"
    );
    assert!(verify(&one_key(9, type_id::STRING, &good), |_| {}).ok());
    // 0xC3, compressed length (1 byte), original length 200 (2-byte form 0x40 0xC8).
    let mut bad = good.clone();
    assert_eq!(bad.get(2..4), Some(&[0x40, 200][..]));
    poke(&mut bad, 3, |_| 201);
    let data = snapshot(9, |w| {
        w.key_value(type_id::STRING, b"bad", &bad)
            .unwrap_or_else(|e| panic!("{e}"));
        w.key_value(type_id::STRING, b"next", &good)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    fires(&data, "lzf");
    // A back-reference before the start, and a literal run past the end of the input.
    for stream in [&[0x20u8, 0x00][..], &[0x05, b'a']] {
        let mut v = vec![0xC3, stream.len() as u8, 6];
        v.extend_from_slice(stream);
        fires(&one_key(9, type_id::STRING, &v), "lzf");
    }
    // The corrupt value's extent is known: the key after it is still checked.
    let r = verify(&data, |_| {});
    assert!(r.complete && r.keys == 2, "{r:?}");
}

#[test]
fn several_problems_are_all_reported() {
    let data = snapshot(10, |w| {
        let mut bad_lp = listpack(&[b"a", b"b"]);
        poke(&mut bad_lp, 8, |_| 3);
        w.key_value(type_id::SET_LISTPACK, b"one", &blob_value(&bad_lp))
            .unwrap_or_else(|e| panic!("{e}"));
        w.key_value(
            type_id::SET,
            b"two",
            &value::set_plain(&[b"x".as_slice(), b"x"], Compression::None),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        w.key_value(
            type_id::ZSET_2,
            b"three",
            &value::zset_2(&[(b"m".as_slice(), f64::NAN)], Compression::None),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
    let r = verify(&data, |_| {});
    let keys: Vec<_> = errors(&r).iter().filter_map(|p| p.key.clone()).collect();
    assert_eq!(
        keys,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    assert!(r.complete);
}

/// A file broken in every key: past the limit findings are counted, not listed, and the
/// verdict, counts and checksum verdict stay exact.
#[test]
fn findings_past_the_limit_are_counted_not_listed() {
    let empty = value::set_plain::<&[u8]>(&[], Compression::None);
    let mut data = snapshot(9, |w| {
        for i in 0..50 {
            w.key_value(type_id::SET, format!("e{i}").as_bytes(), &empty)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    // And a damaged trailer, reported whatever the limit.
    if let Some(last) = data.last_mut() {
        *last ^= 1;
    }
    let all = verify(&data, |_| {});
    assert_eq!((all.errors(), all.omitted()), (51, 0), "{:?}", all.problems);
    let few = verify_with(&data, 10, |_| {});
    assert_eq!(few.errors(), 51);
    assert_eq!((few.problems.len(), few.omitted()), (11, 40));
    assert!(!few.ok());
    assert!(few.problems.iter().any(|p| p.check.name() == "checksum"));
    let json = few.to_json();
    assert_eq!(json.pointer("/omitted"), Some(&serde_json::json!(40)));
    assert_eq!(json.pointer("/errors"), Some(&serde_json::json!(51)));
    let mut text = Vec::new();
    few.write_text(&mut text).unwrap_or_else(|e| panic!("{e}"));
    assert!(String::from_utf8_lossy(&text).contains("40 more problems"));
}

// ---------------------------------------------------------------------------------------
// The binary and the real redis-check-rdb

fn rdbkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
}

#[test]
fn exit_codes_and_json() {
    let dir = servers::TempDir::new("verify-cli");
    let good = dir.path().join("good.rdb");
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&good, snapshot(9, |_| {})).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &bad,
        one_key(
            9,
            type_id::SET,
            &value::set_plain(&[b"a".as_slice(), b"a"], Compression::None),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = |args: &[&std::ffi::OsStr]| {
        rdbkit()
            .arg("verify")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(run(&[good.as_os_str()]).status.code(), Some(0));
    let out = run(&[bad.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let at = |path: &str| json.pointer(path).cloned().unwrap_or_default();
    assert_eq!(at("/ok"), false);
    assert_eq!(at("/problems/0/check"), "duplicate-member");
    assert_eq!(at("/problems/0/key"), "bad");
    assert_eq!(at("/problems/0/db"), 0);
    assert!(at("/problems/0/offset").as_u64().is_some());
    let missing = dir.path().join("missing.rdb");
    assert_eq!(run(&[missing.as_os_str()]).status.code(), Some(2));
}

/// Whether a checker can judge a file at all: it reads the file's format version (and
/// magic), so its verdict is about the contents, not about a format it predates.
fn checker_reads(entry: &servers::Entry, data: &[u8]) -> bool {
    let Ok(v) = rdb_parser::header(data) else {
        return true;
    };
    match v.magic {
        rdb_parser::Magic::Valkey => entry.magic == "VALKEY",
        // RDB 12 types 22-25 mean Redis hash-field TTLs; Valkey reads 12 as "foreign".
        rdb_parser::Magic::Redis if v.number >= 12 => {
            !entry.is_valkey() && u64::from(v.number) <= entry.rdb_version
        }
        rdb_parser::Magic::Redis => u64::from(v.number) <= entry.rdb_version,
    }
}

/// Files where a checker's verdict differs from verify's for a reason outside the file.
fn known_disagreement(checker: &str, file: &str) -> Option<&'static str> {
    match (checker, file) {
        // Redis 5.0's redis-check-rdb does not know the MODULE_AUX opcode (247).
        ("redis-5.0", "redis_60_with_module_aux.rdb") => Some("checker predates opcode 247"),
        // No deep sanitization before 6.2: the ziplist entry is not looked at.
        ("redis-5.0" | "redis-6.0", "corrupt_ziplist.rdb") => {
            Some("checker has no deep sanitization")
        }
        _ => None,
    }
}

#[test]
fn verdicts_agree_with_real_redis_check_rdb() {
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let mut files = fixture_files();
    let peers = peer_files();
    // Without ../shared (a fresh clone) only the committed fixtures are judged.
    let expected = if peers.is_some() { 300 } else { 100 };
    files.extend(peers.unwrap_or_default());
    let mut judged = 0;
    let mut notes = Vec::new();
    for path in &files {
        let data = read(path);
        let ours = verify(&data, |_| {}).ok();
        for entry in &manifest {
            if !checker_reads(entry, &data) {
                continue;
            }
            let (program, args) = entry.check.split_first().unwrap_or_else(|| panic!("argv"));
            let mut cmd = Command::new(program);
            cmd.args(args)
                .arg(path)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in &entry.env {
                cmd.env(k, v);
            }
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            let theirs = out.status.success();
            judged += 1;
            if theirs == ours {
                continue;
            }
            let file = name(path);
            match known_disagreement(&entry.name, &file) {
                Some(why) => notes.push(format!("{} on {file}: {why}", entry.name)),
                None => panic!(
                    "{} says {} for {}, verify says {}:\n{}",
                    entry.name,
                    if theirs { "valid" } else { "invalid" },
                    path.display(),
                    if ours { "valid" } else { "invalid" },
                    String::from_utf8_lossy(&out.stdout)
                ),
            }
        }
    }
    eprintln!("{judged} checker verdicts compared; known disagreements: {notes:#?}");
    assert!(judged > expected, "only {judged} verdicts compared");
}

/// Byte flips in files whose checksum is off (trailer 0), so only the structure can tell:
/// whatever a server's redis-check-rdb (with its deep sanitization) rejects, verify rejects.
/// verify may reject more (it also flags what servers load silently, e.g. duplicates).
#[test]
fn flips_rejected_by_real_redis_check_rdb_are_rejected_by_verify() {
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let dir = servers::TempDir::new("verify-flips");
    let mut compared = 0;
    let mut both_reject = 0;
    for entry in manifest.iter().filter(|e| e.has_deep_sanitization()) {
        let path = fixtures_dir().join(&entry.name).join("types.rdb");
        let Ok(mut data) = std::fs::read(&path) else {
            continue;
        };
        let len = data.len();
        if let Some(trailer) = data.get_mut(len - 8..) {
            trailer.fill(0);
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
        for round in 0..60 {
            // xorshift: positions spread over the body, deterministic per file.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = 9 + (state % (len as u64 - 18)) as usize;
            let bit = (state >> 40) % 8;
            let mut bad = data.clone();
            poke(&mut bad, pos, |b| b ^ (1 << bit));
            let file = dir.path().join(format!("{}-{round}.rdb", entry.name));
            std::fs::write(&file, &bad).unwrap_or_else(|e| panic!("{e}"));
            let (program, args) = entry.check.split_first().unwrap_or_else(|| panic!("argv"));
            let mut cmd = Command::new(program);
            cmd.args(args).arg(&file).stdin(Stdio::null());
            for (k, v) in &entry.env {
                cmd.env(k, v);
            }
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            let ours = verify(&bad, |_| {});
            compared += 1;
            if !out.status.success() {
                both_reject += 1;
                assert!(
                    !ours.ok(),
                    "{} rejects {} (byte {pos}, bit {bit}) but verify accepts it:\n{}",
                    entry.name,
                    path.display(),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
    eprintln!("{compared} flipped files compared, {both_reject} rejected by the checker");
    assert!(
        compared >= 300 && both_reject > 50,
        "{compared} / {both_reject}"
    );
}

// ---------------------------------------------------------------------------------------
// What the loaders refuse, and what they accept

/// A zipmap of `pairs` one-byte fields and values whose header byte says `count`.
fn zipmap(count: u8, pairs: &[(u8, u8)]) -> Vec<u8> {
    let mut z = vec![count];
    for &(field, value) in pairs {
        // field length, field, value length, free bytes after the value, value
        z.extend_from_slice(&[1, field, 1, 0, value]);
    }
    z.push(0xFF);
    z
}

#[test]
fn zipmap_header_count_must_match_its_pairs() {
    let pairs = [(b'a', b'x'), (b'b', b'y')];
    let good = one_key(9, type_id::HASH_ZIPMAP, &blob_value(&zipmap(2, &pairs)));
    assert!(verify(&good, |_| {}).ok());
    let p = fires(
        &one_key(9, type_id::HASH_ZIPMAP, &blob_value(&zipmap(3, &pairs))),
        "zipmap",
    );
    assert!(p.message.contains("counts 3 pairs, it holds 2"), "{p:?}");
    // 254 means "count by walking": any number of pairs.
    let big = one_key(9, type_id::HASH_ZIPMAP, &blob_value(&zipmap(254, &pairs)));
    assert!(verify(&big, |_| {}).ok());
}

#[test]
fn an_empty_plain_quicklist_node_is_refused() {
    let plain = |element: &[u8]| {
        let mut v = Vec::new();
        encode::length(&mut v, 2);
        encode::length(&mut v, 2); // PACKED
        encode::raw_string(&mut v, &listpack(&[b"x"]));
        encode::length(&mut v, 1); // PLAIN
        encode::raw_string(&mut v, element);
        v
    };
    assert!(verify(
        &one_key(11, type_id::LIST_QUICKLIST_2, &plain(b"big")),
        |_| {}
    )
    .ok());
    let p = fires(
        &one_key(11, type_id::LIST_QUICKLIST_2, &plain(b"")),
        "quicklist",
    );
    assert!(p.message.contains("node 1 of 2"), "{p:?}");
}

/// A Valkey 9 file with one SLOT_IMPORT record named `name`, then one key.
fn slot_import(name: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), Version::valkey(80)).unwrap_or_else(|e| panic!("{e}"));
    let mut record = vec![rdb_parser::format::opcode::SLOT_IMPORT];
    encode::raw_string(&mut record, name);
    encode::length(&mut record, 1);
    encode::length(&mut record, 0);
    encode::length(&mut record, 100);
    w.raw(&record).unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    w.key_value(
        type_id::STRING,
        b"k",
        &value::string(b"v", Compression::None),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_slot_import_job_name_is_a_40_byte_node_name() {
    assert!(verify(&slot_import(&[b'f'; 40]), |_| {}).ok());
    for len in [0, 1, 39, 41] {
        let data = slot_import(&vec![b'f'; len]);
        let r = verify(&data, |_| {});
        let found: Vec<_> = errors(&r).into_iter().map(|p| p.check.name()).collect();
        assert_eq!(found, ["slot-import"], "{len} bytes: {:?}", r.problems);
        assert!(r.complete && r.keys == 1, "{r:?}");
        // At the record's opcode, the first byte after the 9-byte header.
        assert_eq!(r.problems.first().map(|p| p.offset), Some(9));
    }
}

/// Something written before a key.
type Before = Box<dyn Fn(&mut Writer<Vec<u8>>)>;

#[test]
fn the_loaders_length_error_marker_is_refused() {
    let marker = {
        let mut v = Vec::new();
        encode::length(&mut v, u64::MAX);
        v
    };
    assert_eq!(
        marker,
        [0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    let key = |w: &mut Writer<Vec<u8>>| {
        w.key_value(
            type_id::STRING,
            b"bad",
            &value::string(b"v", Compression::None),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let cases: [(&str, Before); 4] = [
        (
            "SELECTDB",
            Box::new(|w| w.select_db(u64::MAX).unwrap_or_else(|e| panic!("{e}"))),
        ),
        (
            "RESIZEDB",
            Box::new(|w| w.resize_db(u64::MAX, 0).unwrap_or_else(|e| panic!("{e}"))),
        ),
        (
            "RESIZEDB",
            Box::new(|w| w.resize_db(3, u64::MAX).unwrap_or_else(|e| panic!("{e}"))),
        ),
        (
            "IDLE",
            Box::new(|w| w.idle(u64::MAX).unwrap_or_else(|e| panic!("{e}"))),
        ),
    ];
    for (what, before) in cases {
        let data = snapshot(9, |w| {
            before(w);
            key(w);
        });
        let r = verify(&data, |_| {});
        let found: Vec<_> = errors(&r)
            .into_iter()
            .map(|p| (p.check.name(), p.offset))
            .collect();
        // SELECTDB 0 (2 bytes) after the header, then the marked record.
        assert_eq!(found, [("length-marker", 11)], "{what}: {:?}", r.problems);
        assert!(
            r.problems.iter().any(|p| p.message.contains(what)),
            "{what}"
        );
        assert!(r.complete && r.keys == 1, "{what}: {r:?}");
    }
    // 2^64-2 is only a large number.
    let data = snapshot(9, |w| {
        w.idle(u64::MAX - 1).unwrap_or_else(|e| panic!("{e}"));
        key(w);
    });
    assert!(verify(&data, |_| {}).ok());
}

/// Redis 6.2+ and Valkey load a compressed string declaring length 0 as the empty string
/// (they compare LZF's output length, 0 on any failure, with the declared 0); 6.0 and
/// older refuse it. A warning, not an error.
#[test]
fn an_lzf_string_declaring_length_0_is_accepted() {
    for stream in [&[][..], &[0x00, b'a'][..], &[0x20, 0x00][..]] {
        let mut v = vec![0xC3];
        encode::length(&mut v, stream.len() as u64);
        encode::length(&mut v, 0);
        v.extend_from_slice(stream);
        let r = verify(&one_key(9, type_id::STRING, &v), |_| {});
        assert!(r.ok() && r.complete, "{stream:?}: {:?}", r.problems);
        let p = r.problems.first().unwrap_or_else(|| panic!("no warning"));
        assert_eq!((p.check.name(), p.severity), ("lzf", Severity::Warning));
    }
}

/// The same for a key name and for the elements of plain-encoded collections: each reads
/// as the empty string (the parser decodes it, verify finds nothing wrong).
#[test]
fn an_lzf_key_or_element_declaring_length_0_is_the_empty_string() {
    use rdb_parser::{Item, ParserBuilder, Value};
    // Two compressed bytes that would not expand to anything, declared 0.
    let empty = || {
        let mut v = vec![0xC3];
        encode::length(&mut v, 2);
        encode::length(&mut v, 0);
        v.extend_from_slice(&[0x00, b'x']);
        v
    };
    let raw = blob_value;
    let collection = |items: &[Vec<u8>]| {
        let mut v = Vec::new();
        encode::length(&mut v, items.len() as u64);
        items.iter().for_each(|i| v.extend_from_slice(i));
        v
    };
    let data = snapshot(9, |w| {
        let mut put = |t: u8, key: Vec<u8>, value: Vec<u8>| {
            w.raw_entry(t, &key, &value)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        put(type_id::STRING, empty(), raw(b"value of the empty key"));
        put(
            type_id::LIST,
            raw(b"list"),
            collection(&[empty(), raw(b"a")]),
        );
        put(type_id::SET, raw(b"set"), collection(&[raw(b"a"), empty()]));
        let mut hash = vec![1]; // one field: "" -> "v"
        hash.extend(empty());
        hash.extend(raw(b"v"));
        put(type_id::HASH, raw(b"hash"), hash);
        let mut zset = vec![1];
        zset.extend(empty());
        zset.extend(1.5f64.to_le_bytes());
        put(type_id::ZSET_2, raw(b"zset"), zset);
    });
    let mut empties = 0;
    let items = ParserBuilder::new()
        .parse(&data)
        .and_then(|p| p.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("{e}"));
    for item in &items {
        let Item::Key(k) = item else { continue };
        if k.key.is_empty() {
            empties += 1;
        }
        let mut count = |b: &[u8]| empties += usize::from(b.is_empty());
        fn ok<T>(e: rdb_parser::Error) -> T {
            panic!("{e}")
        }
        match &k.value {
            Value::List(l) => l
                .iter()
                .for_each(|e| count(&e.unwrap_or_else(ok).to_bytes())),
            Value::Set(s) => s
                .iter()
                .for_each(|e| count(&e.unwrap_or_else(ok).to_bytes())),
            Value::Hash(h) => h
                .iter()
                .for_each(|f| count(&f.unwrap_or_else(ok).field.to_bytes())),
            Value::ZSet(z) => z
                .iter()
                .for_each(|m| count(&m.unwrap_or_else(ok).0.to_bytes())),
            _ => {}
        }
    }
    assert_eq!(empties, 5);
    let r = verify(&data, |_| {});
    assert!(r.ok() && r.complete, "{:?}", r.problems);
    assert!(
        r.problems.iter().all(|p| p.severity == Severity::Warning),
        "{:?}",
        r.problems
    );
}

// ---------------------------------------------------------------------------------------
// The JSON contract

/// The rows of the markdown table whose header row starts with `header`: each row's
/// first cell's code spans, and its other cells.
fn doc_table(doc: &str, header: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut lines = doc.lines().skip_while(|l| !l.starts_with(header)).skip(2);
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        let (first, rest) = cells.split_first().unwrap_or((&"", &[]));
        let names = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        rows.push((names, rest.iter().map(|c| c.trim().to_owned()).collect()));
    }
    rows
}

/// docs/verify-json.md names exactly the fields of the report and of a problem, and
/// exactly the checks of `Check`, each with the severities it reports with.
#[test]
fn json_fields_and_checks_are_exactly_the_documented_ones() {
    use rdb_cli::verify::Check;
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/verify-json.md"),
    )
    .unwrap_or_else(|e| panic!("docs/verify-json.md: {e}"));
    // Report fields, `checksum.*` as dotted paths.
    let documented: Vec<String> = doc_table(&doc, "| field | meaning |")
        .into_iter()
        .flat_map(|(names, _)| names)
        .collect();
    let data = snapshot(9, |w| {
        let v = value::set_plain(&["m", "m"], Compression::None);
        w.key_value(type_id::SET, b"bad", &v)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let json = verify(&data, |_| {}).to_json();
    let mut present = Vec::new();
    for (k, v) in json.as_object().into_iter().flatten() {
        match v.as_object() {
            Some(inner) => present.extend(inner.keys().map(|i| format!("{k}.{i}"))),
            None => present.push(k.clone()),
        }
    }
    let problem = json.pointer("/problems/0").and_then(|p| p.as_object());
    let problem_fields: Vec<String> = problem
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    // The second "| field | meaning |" table is a problem's.
    let after_problem = doc.split("A problem:").nth(1).unwrap_or_default();
    let mut problem_documented: Vec<String> = doc_table(after_problem, "| field | meaning |")
        .into_iter()
        .flat_map(|(names, _)| names)
        .collect();
    problem_documented.sort();
    let mut sorted_fields = problem_fields.clone();
    sorted_fields.sort();
    assert_eq!(sorted_fields, problem_documented, "a problem's fields");
    let mut report_documented = documented;
    report_documented.sort();
    present.sort();
    assert_eq!(present, report_documented, "the report's fields");
    // Checks and severities.
    let rows = doc_table(&doc, "| `check` | severity |");
    let documented: Vec<(String, String)> = rows
        .into_iter()
        .map(|(names, cells)| (names.join(","), cells.first().cloned().unwrap_or_default()))
        .collect();
    let ours: Vec<(String, String)> = Check::ALL
        .iter()
        .map(|c| {
            let sev: Vec<&str> = c.severities().iter().map(|s| s.as_str()).collect();
            (c.name().to_owned(), sev.join(" / "))
        })
        .collect();
    assert_eq!(ours, documented);
}

/// The parts form of docs/verify-json.md names exactly the fields of the whole and the
/// fields a part adds to the single-file report.
#[test]
fn parts_json_fields_are_exactly_the_documented_ones() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/verify-json.md"),
    )
    .unwrap_or_else(|e| panic!("docs/verify-json.md: {e}"));
    let names = |header: &str| {
        let mut v: Vec<String> = doc_table(&doc, header)
            .into_iter()
            .flat_map(|(names, _)| names)
            .collect();
        v.sort();
        v
    };
    let whole = two_parts().to_json();
    let mut present: Vec<String> = whole
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    present.sort();
    assert_eq!(
        present,
        names("| whole field | meaning |"),
        "the whole's fields"
    );
    let single: Vec<String> = verify(&snapshot(9, |_| {}), |_| {})
        .to_json()
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    let mut added: Vec<String> = whole
        .pointer("/parts/0")
        .and_then(|p| p.as_object())
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .filter(|k| !single.contains(k))
        .collect();
    added.sort();
    assert_eq!(
        added,
        names("| part field | meaning |"),
        "a part's own fields"
    );
}

/// Two parts: one with a manifest's slot ranges that two of its keys fall outside and a
/// set with a member stored twice, one given alone.
fn two_parts() -> rdb_cli::verify::Whole {
    use rdb_cli::parts::Part;
    use rdb_cli::verify::{verify_part, PartReport};
    // "foo" is slot 12182, "{user1000}.following" 3443.
    let first = snapshot(9, |w| {
        let v = value::string(b"v", Compression::None);
        for key in [&b"{user1000}.following"[..], b"foo", b"bar\x1b"] {
            w.key_value(type_id::STRING, key, &v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let v = value::set_plain(&["m", "m"], Compression::None);
        w.key_value(type_id::SET, b"{user1000}.set", &v)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let second = snapshot(9, |w| {
        let v = value::string(b"v", Compression::None);
        w.key_value(type_id::STRING, b"foo", &v)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let ranged = Part {
        slots: Some(vec![(0, 5460)]),
        ..Part::file("d/shard-0.rdb")
    };
    let alone = Part::file("b.rdb");
    rdb_cli::verify::Whole {
        parts: vec![
            PartReport {
                report: verify_part(&first, &ranged, 100, |_| {}),
                part: ranged,
            },
            PartReport {
                report: verify_part(&second, &alone, 100, |_| {}),
                part: alone,
            },
        ],
    }
}

#[test]
fn parts_are_reported_each_and_as_a_whole() {
    let whole = two_parts();
    let first = &whole.parts[0].report;
    let outside = first.outside_slots.as_ref().map(|o| o.count);
    let bar_outside = rdb_writer::slot::key_slot(b"bar\x1b") > 5460;
    assert_eq!(outside, Some(1 + u64::from(bar_outside)));
    assert_eq!(whole.parts[1].report.outside_slots, None);
    assert_eq!(whole.keys(), 5);
    assert_eq!(whole.errors(), 1, "the duplicate member");
    assert!(!whole.ok());
    let failed: Vec<String> = whole.failed().iter().map(|p| p.name()).collect();
    assert_eq!(failed, vec!["d/shard-0.rdb".to_string()]);
    let warning = first
        .problems
        .iter()
        .find(|p| p.check.name() == "outside-slots")
        .unwrap_or_else(|| panic!("{:?}", first.problems));
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.key.as_deref(), Some(&b"foo"[..]));
    assert!(warning.message.starts_with(&format!(
        "{} keys hash to slots outside this part's ranges in the manifest (0-5460), e.g. \
         \"foo\" (slot 12182)",
        outside.unwrap_or_default()
    )));
    let json = whole.to_json();
    assert_eq!(json["keys_outside_slots"], serde_json::json!(outside));
    assert_eq!(
        json["parts"][1]["keys_outside_slots"],
        serde_json::Value::Null
    );
    assert_eq!(json["parts"][0]["slots"], serde_json::json!([[0, 5460]]));
    let mut text = Vec::new();
    whole
        .write_text(&mut text)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.starts_with("== d/shard-0.rdb (slots 0-5460)\n"),
        "{text}"
    );
    assert!(text.contains("\n== b.rdb\nOK: REDIS0009, "), "{text}");
    assert!(
        text.ends_with("; errors in d/shard-0.rdb\n") && text.contains("CORRUPT: 2 parts, "),
        "{text}"
    );
}

/// The report's streamed JSON is the bytes of its pretty-printed JSON value.
#[test]
fn streamed_json_is_the_pretty_printed_report() {
    let one = snapshot(9, |w| {
        let v = value::set_plain(&["m", "m"], Compression::None);
        w.key_value(type_id::SET, b"bad\x01\xff", &v)
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let reports = [
        verify(&one, |_| {}),
        verify(&many_duplicates(500), |_| {}),
        verify_with(&many_duplicates(500), 3, |_| {}),
        verify_with(&many_duplicates(50), 0, |_| {}),
        verify(
            &one_key(9, type_id::STRING, &value::string(b"v", Compression::None)),
            |_| {},
        ),
        verify(b"REDIS0009\xfe", |_| {}),
    ];
    for r in reports {
        let mut streamed = Vec::new();
        r.write_json(&mut streamed)
            .unwrap_or_else(|e| panic!("{e}"));
        let whole = serde_json::to_string_pretty(&r.to_json()).unwrap_or_default() + "\n";
        assert_eq!(String::from_utf8_lossy(&streamed), whole);
    }
    // And the parts form, parts with problems and without.
    let parts = two_parts();
    let mut streamed = Vec::new();
    parts
        .write_json(&mut streamed)
        .unwrap_or_else(|e| panic!("{e}"));
    let whole = serde_json::to_string_pretty(&parts.to_json()).unwrap_or_default() + "\n";
    assert_eq!(String::from_utf8_lossy(&streamed), whole);
}

/// `copies` copies of one small key, written with the writer.
fn many_duplicates(copies: u32) -> Vec<u8> {
    snapshot(9, |w| {
        let v = value::string(b"v", Compression::None);
        for _ in 0..copies {
            w.key_value(type_id::STRING, b"k", &v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    })
}

/// Runs `rdbkit` with `args`, its output to `out`; returns its exit code and its peak
/// resident memory in KiB, from the kernel's accounting of that one child (`wait4`).
#[allow(unsafe_code)] // wait4: std gives no child's resource usage.
fn run_measured(args: &[&std::ffi::OsStr], out: &Path) -> (i32, i64) {
    let out = std::fs::File::create(out).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; the child is ours and not waited for elsewhere
    // (`child` is dropped without waiting).
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    assert!(libc::WIFEXITED(status), "rdbkit did not exit: {status}");
    drop(child);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

/// 1 M copies of one key (a 5 MB file) in 64 MiB and a little more: the duplicate
/// findings past `--max-problems` are counted as the walk meets them, never built (they
/// all were, then cut: 277 MB here, 526 MB for 2 M copies), and one entry stands for all
/// copies of a key.
#[test]
fn duplicate_keys_past_the_limit_take_no_memory() {
    const COPIES: u32 = 1_000_000;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("dups.rdb");
    std::fs::write(&path, many_duplicates(COPIES)).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out.txt");
    let (code, peak_kib) = run_measured(&["verify".as_ref(), path.as_os_str()], &out);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(code, 1, "{text}");
    // All copies but the first are counted; the first 100 000 are listed.
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("{COPIES} keys"))
            && last.contains(&format!("{} errors", COPIES - 1)),
        "{last}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("[duplicate-key]"))
            .count(),
        100_000
    );
    // The mapped file's pages count in the peak too (5 MB here).
    let bound_kib = (64 + 8) * 1024;
    eprintln!("verify, {COPIES} copies of one key: peak {peak_kib} KiB");
    assert!(
        peak_kib < bound_kib,
        "peak {peak_kib} KiB, bound {bound_kib} KiB"
    );
}

/// The crafted files of the checks above, on each real server's checker (with its deep
/// sanitization): verify reports an error exactly when the checker refuses the file.
#[test]
fn loader_checks_agree_with_real_redis_check_rdb() {
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let dir = servers::TempDir::new("verify-loader-checks");
    let pairs = [(b'a', b'x'), (b'b', b'y')];
    let plain_node = |element: &[u8]| {
        let mut v = Vec::new();
        encode::length(&mut v, 2);
        encode::length(&mut v, 2);
        encode::raw_string(&mut v, &listpack(&[b"x"]));
        encode::length(&mut v, 1);
        encode::raw_string(&mut v, element);
        v
    };
    let lzf_empty = [0xC3, 0x02, 0x00, 0x00, b'a'];
    let mut compared = 0;
    for entry in manifest.iter().filter(|e| e.has_deep_sanitization()) {
        let version = if entry.magic == "VALKEY" {
            Version::valkey(entry.rdb_version as u32)
        } else {
            // Newer servers read older files: no newer than this parser writes.
            Version::redis(entry.rdb_version.min(12) as u32)
        };
        let key = |type_byte: u8, v: &[u8]| {
            let mut w = Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
            w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
            w.key_value(type_byte, b"bad", v)
                .unwrap_or_else(|e| panic!("{e}"));
            w.finish().unwrap_or_else(|e| panic!("{e}"))
        };
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "zipmap count 3 of 2",
                key(type_id::HASH_ZIPMAP, &blob_value(&zipmap(3, &pairs))),
            ),
            (
                "zipmap count 2 of 2",
                key(type_id::HASH_ZIPMAP, &blob_value(&zipmap(2, &pairs))),
            ),
            (
                "zipmap count 254",
                key(type_id::HASH_ZIPMAP, &blob_value(&zipmap(254, &pairs))),
            ),
            ("lzf length 0", key(type_id::STRING, &lzf_empty)),
        ];
        if entry.rdb_version >= 10 {
            cases.push((
                "empty PLAIN node",
                key(type_id::LIST_QUICKLIST_2, &plain_node(b"")),
            ));
            cases.push((
                "PLAIN node",
                key(type_id::LIST_QUICKLIST_2, &plain_node(b"big")),
            ));
        }
        if entry.magic == "VALKEY" {
            cases.push(("slot import 39", slot_import(&[b'f'; 39])));
            cases.push(("slot import 40", slot_import(&[b'f'; 40])));
        }
        // SLOT_INFO (Redis 7.4+ and Valkey 9 write it) and SLOT_IMPORT ranges, marked.
        let record = |head: &[u8], lengths: &[u64]| {
            let mut w = Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
            let mut bytes = head.to_vec();
            lengths.iter().for_each(|&n| encode::length(&mut bytes, n));
            w.raw(&bytes).unwrap_or_else(|e| panic!("{e}"));
            w.finish().unwrap_or_else(|e| panic!("{e}"))
        };
        let slot_info = [rdb_parser::format::opcode::SLOT_INFO];
        if version.number >= 12 && entry.version_tuple() >= (7, 4, 0) {
            cases.push(("SLOT_INFO 2^64-1", record(&slot_info, &[u64::MAX, 1, 0])));
            cases.push(("SLOT_INFO", record(&slot_info, &[5, 1, 0])));
        }
        if entry.magic == "VALKEY" {
            let mut head = vec![rdb_parser::format::opcode::SLOT_IMPORT];
            encode::raw_string(&mut head, &[b'f'; 40]);
            cases.push(("SLOT_IMPORT range 2^64-1", record(&head, &[1, 0, u64::MAX])));
        }
        let mut marked = Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
        marked.select_db(u64::MAX).unwrap_or_else(|e| panic!("{e}"));
        cases.push((
            "SELECTDB 2^64-1",
            marked.finish().unwrap_or_else(|e| panic!("{e}")),
        ));
        for (case, data) in cases {
            let file = dir
                .path()
                .join(format!("{}-{}.rdb", entry.name, case.replace(' ', "_")));
            std::fs::write(&file, &data).unwrap_or_else(|e| panic!("{e}"));
            let (program, args) = entry.check.split_first().unwrap_or_else(|| panic!("argv"));
            let mut cmd = Command::new(program);
            cmd.args(args).arg(&file).stdin(Stdio::null());
            for (k, v) in &entry.env {
                cmd.env(k, v);
            }
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            let ours = verify(&data, |_| {});
            assert_eq!(
                ours.ok(),
                out.status.success(),
                "{} on {case}: verify {:?}; checker:\n{}",
                entry.name,
                ours.problems,
                String::from_utf8_lossy(&out.stdout)
            );
            compared += 1;
        }
    }
    eprintln!("{compared} crafted files compared with the real checkers");
    assert!(compared >= 7, "{compared}");
}
