//! Lists converted for RDB 9 node for node: a quicklist 2 becomes a quicklist of ziplists
//! with the same node count and the same elements, whether the value is encoded whole (a
//! RESTORE payload, a small list) or in pieces on all cores as it is written (a large
//! list); the output does not depend on the number of threads.

#![allow(clippy::indexing_slicing, clippy::panic, clippy::unwrap_used)]

use rdb_parser::format::{quicklist_container, type_id};
use rdb_parser::{Item, ParserBuilder, Value, Version};
use rdb_writer::convert::{convert, dump_payload, ConvertOptions};
use rdb_writer::{encode, value, Compression, ListpackBuilder, TargetProfile, Writer};

/// A quicklist 2 value of every kind of node: listpacks stored plain and LZF-compressed,
/// PLAIN nodes of one large element (also compressed), an empty listpack, and integers.
/// Returns the value bytes, the elements in order, and the node count.
fn quicklist2(nodes: usize) -> (Vec<u8>, Vec<Vec<u8>>, u64) {
    let mut body = Vec::new();
    let mut elements = Vec::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    };
    for i in 0..nodes {
        match i % 7 {
            5 => {
                // One large element, compressible when i is even.
                let e = if i % 2 == 0 {
                    format!("plain-{i}-").repeat(2000).into_bytes()
                } else {
                    noise(9000)
                };
                encode::length(&mut body, quicklist_container::PLAIN);
                encode::string(&mut body, &e, Compression::Lzf);
                elements.push(e);
            }
            6 if i % 3 == 0 => {
                // An empty node: loaders skip it.
                encode::length(&mut body, quicklist_container::PACKED);
                encode::string(
                    &mut body,
                    &ListpackBuilder::new().finish().unwrap(),
                    Compression::None,
                );
            }
            k => {
                let mut lp = ListpackBuilder::new();
                for j in 0..60 {
                    let e = match (k + j) % 3 {
                        0 => format!("{}", (i * 1000 + j) as i64 - 30_000).into_bytes(),
                        1 => format!("text {i} {j} ").repeat(3).into_bytes(),
                        _ => noise(90),
                    };
                    lp.push(&e);
                    elements.push(e);
                }
                encode::length(&mut body, quicklist_container::PACKED);
                // Text nodes compress, noise nodes stay plain.
                encode::string(&mut body, &lp.finish().unwrap(), Compression::Lzf);
            }
        }
    }
    let mut out = Vec::new();
    encode::length(&mut out, nodes as u64);
    out.extend_from_slice(&body);
    (out, elements, nodes as u64)
}

fn file(lists: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), Version::redis(11)).unwrap();
    w.select_db(0).unwrap();
    for (key, v) in lists {
        w.key_value(type_id::LIST_QUICKLIST_2, key, v).unwrap();
    }
    w.key_value(
        type_id::STRING,
        b"after",
        &value::string(b"x", Compression::None),
    )
    .unwrap();
    w.finish().unwrap()
}

fn to_rdb9(data: &[u8], threads: usize) -> Vec<u8> {
    let opts = ConvertOptions::new(TargetProfile::named("redis-6.2").unwrap().clone());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        convert(
            data,
            &ParserBuilder::new(),
            &opts,
            Vec::new(),
            &mut |_| Ok(()),
            &mut |_| {},
        )
        .unwrap()
        .0
    })
}

/// Each list of the file: key, type, node count, elements, and the value's bytes.
type Lists = Vec<(Vec<u8>, u8, Option<u64>, Vec<Vec<u8>>, Vec<u8>)>;

fn lists(data: &[u8]) -> Lists {
    let mut out = Vec::new();
    for item in ParserBuilder::new().parse(data).unwrap() {
        if let Item::Key(e) = item.unwrap() {
            if let Value::List(l) = &e.value {
                let elements = l.iter().map(|x| x.unwrap().to_bytes().to_vec()).collect();
                out.push((
                    e.key.to_vec(),
                    e.type_id,
                    l.node_count(),
                    elements,
                    e.raw_value.to_vec(),
                ));
            }
        }
    }
    out
}

#[test]
fn lists_become_ziplist_nodes_one_for_one_whole_or_in_pieces() {
    // About 6 MB stored: above the size the writing thread encodes in pieces.
    let (large, large_elements, large_nodes) = quicklist2(2500);
    let (small, small_elements, small_nodes) = quicklist2(20);
    assert!(large.len() > 4 << 20, "{}", large.len());
    let data = file(&[(b"large", &large), (b"small", &small)]);
    let one = to_rdb9(&data, 1);
    for threads in [2, 3] {
        assert!(to_rdb9(&data, threads) == one, "{threads} threads");
    }
    let got = lists(&one);
    assert_eq!(got.len(), 2);
    for ((key, t, nodes, elements, _), (want_key, want, want_nodes)) in got.iter().zip([
        (&b"large"[..], &large_elements, large_nodes),
        (b"small", &small_elements, small_nodes),
    ]) {
        assert_eq!(key, want_key);
        assert_eq!(*t, type_id::LIST_QUICKLIST);
        assert_eq!(*nodes, Some(want_nodes));
        assert!(
            elements == want,
            "{}: elements",
            String::from_utf8_lossy(key)
        );
    }
    // A RESTORE payload holds the same value bytes as the file written in pieces.
    let opts = ConvertOptions::new(TargetProfile::named("redis-6.2").unwrap().clone());
    for item in ParserBuilder::new().parse(&data).unwrap() {
        let Item::Key(e) = item.unwrap() else {
            continue;
        };
        let Some((_, _, _, _, in_file)) = got.iter().find(|l| l.0 == *e.key) else {
            continue;
        };
        let payload = dump_payload(&e, Version::redis(11), &opts)
            .unwrap()
            .unwrap();
        assert_eq!(payload[0], type_id::LIST_QUICKLIST);
        assert!(
            payload[1..payload.len() - 10] == in_file[..],
            "{}: payload",
            String::from_utf8_lossy(&e.key)
        );
    }
}
