//! `export jsonl` formats a value larger than a batch on the writing thread, written out
//! in pieces (so memory holds a piece, not the escaped line): its lines must be exactly
//! the lines of the in-memory formatter; `--format resp` writes such a value's commands one
//! by one. Peak memory is measured by benches/memory.sh.
//!
//! Redis 8.6 data against the real 8.6 server (`RDBKIT_SERVERS=redis-8.6`): RESTORE
//! payloads equal the server's DUMP, IDMP state re-created by plain commands, KEY_META in
//! payloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod servers;

use std::time::Duration;

use rdb_cli::export::{CommandsOptions, Job, Summary, TargetOptions};
use rdb_cli::resp::NativeOptions;
use rdb_parser::{Item, ParserBuilder};
use rdb_writer::convert::ConvertOptions;
use rdb_writer::{value, Compression, TargetProfile, Writer};
use servers::{Reply, Resp, Server, TempDir};

/// Elements summing to more than the 8 MB threshold.
fn big_items(prefix: &str) -> Vec<Vec<u8>> {
    (0..260_000)
        .map(|i| format!("{prefix}-\"é用户\\-{i:08}-{}", "x".repeat(i % 40)).into_bytes())
        .collect()
}

/// One small key and six whose stored values pass the 8 MB threshold.
fn huge_values_file() -> Vec<u8> {
    let items = big_items("member");
    let scores: Vec<(Vec<u8>, f64)> = items
        .iter()
        .map(|m| (m.clone(), m.len() as f64 / 3.0))
        .collect();
    let fields: Vec<(Vec<u8>, Vec<u8>)> =
        items.iter().map(|m| (m.clone(), m[..5].to_vec())).collect();
    let mut binary: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    binary[7] = 0xff; // never UTF-8
    let text = "line \"one\"\n用户 ".repeat(700_000);

    let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
    w.select_db(0).unwrap();
    w.key_value(0, b"small", &value::string(b"v", Compression::None))
        .unwrap();
    w.key_value(0, b"binary", &value::string(&binary, Compression::None))
        .unwrap();
    w.key_value(
        0,
        b"text",
        &value::string(text.as_bytes(), Compression::None),
    )
    .unwrap();
    w.key_value(
        18,
        b"list",
        &value::list_quicklist2(&items, Compression::None).unwrap(),
    )
    .unwrap();
    w.key_value(2, b"set", &value::set_plain(&items, Compression::None))
        .unwrap();
    w.key_value(5, b"zset", &value::zset_2(&scores, Compression::None))
        .unwrap();
    w.key_value(4, b"hash", &value::hash_plain(&fields, Compression::None))
        .unwrap();
    w.finish().unwrap()
}

#[test]
fn a_huge_value_exports_in_pieces_exactly_as_whole() {
    let data = huge_values_file();
    let parser = ParserBuilder::new();
    let mut out = Vec::new();
    let summary = rdb_cli::export::jsonl(&data, &parser, &mut out, |_| ()).unwrap();
    assert_eq!(summary.keys, 7);

    // The same keys formatted whole, in memory.
    let mut expected = Vec::new();
    let mut huge = 0;
    for item in parser.parse(&data).unwrap() {
        if let Item::Key(entry) = item.unwrap() {
            huge += usize::from(entry.raw_value.len() > 8 << 20);
            let mut line = Vec::new();
            rdb_cli::export::write_key(&mut line, &entry).unwrap();
            line.push(b'\n');
            expected.push(line);
        }
    }
    assert_eq!(huge, 6, "every value but one is above the threshold");
    let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
    // The header line, then the keys.
    assert_eq!(lines.len(), 1 + expected.len());
    for (got, want) in lines[1..].iter().zip(&expected) {
        assert!(
            *got == &want[..],
            "a line differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
        serde_json::from_slice::<serde_json::Value>(got).expect("each line is JSON");
    }
}

/// `--format resp` writes a huge value's plain commands one by one from the sink: the
/// stream equals SELECT plus each key's commands built in memory.
#[test]
fn a_huge_values_commands_are_written_one_by_one_exactly() {
    let data = huge_values_file();
    let target = TargetProfile::for_version(11).unwrap();
    let o = CommandsOptions {
        restore: false,
        replace: true,
        convert: ConvertOptions::new(target.clone()),
    };
    let parser = ParserBuilder::new();
    let mut out = Vec::new();
    let summary = rdb_cli::export::commands(&data, &parser, &o, &mut out, |_| ()).unwrap();
    assert_eq!(summary.keys, 7);
    assert_eq!(summary.bytes, out.len() as u64);

    let native = NativeOptions {
        delete_first: true,
        now_ms: o.convert.now_ms,
        field_ttl_policy: o.convert.field_ttls,
        ..NativeOptions::for_target(&target)
    };
    let mut expected = rdb_cli::resp::select(0);
    let mut commands = 1;
    for item in parser.parse(&data).unwrap() {
        if let Item::Key(entry) = item.unwrap() {
            rdb_cli::resp::native_commands(&entry, &native, &mut |c| {
                expected.extend_from_slice(&c);
                commands += 1;
            })
            .unwrap();
        }
    }
    assert_eq!(summary.commands, commands);
    assert!(out == expected, "{} vs {} bytes", out.len(), expected.len());
}

// ---------------------------------------------------------------------------------------
// Redis 8.6 (RDB 13): IDMP streams and KEY_META, against the real server

/// `export --format NAME` of `data` as the library runs it for the CLI.
fn export(
    data: &[u8],
    format: &str,
    target: &str,
    tweak: impl FnOnce(&mut TargetOptions),
) -> Result<(Vec<u8>, Summary), rdb_cli::Failure> {
    let spec = rdb_cli::export::FormatSpec::named(format).unwrap();
    let mut o = TargetOptions {
        replace: false,
        convert: ConvertOptions::new(TargetProfile::named(target).unwrap().clone()),
    };
    tweak(&mut o);
    let mut out = Vec::new();
    let summary = (spec.run)(&mut Job {
        data,
        parser: &ParserBuilder::new(),
        target: Some(&o),
        out: &mut out,
        progress: &mut |_| (),
    })?;
    Ok((out, summary))
}

/// The requests of a RESP command stream, as argument lists.
fn requests(mut bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").expect("a CRLF");
        let (l, rest) = b.split_at(end);
        *b = &rest[2..];
        l
    }
    let number = |l: &[u8]| -> usize { std::str::from_utf8(&l[1..]).unwrap().parse().unwrap() };
    let mut all = Vec::new();
    while !bytes.is_empty() {
        let n = number(line(&mut bytes));
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let len = number(line(&mut bytes));
            args.push(bytes[..len].to_vec());
            assert_eq!(&bytes[len..len + 2], b"\r\n");
            bytes = &bytes[len + 2..];
        }
        all.push(args);
    }
    all
}

/// Sends every request; the replies that are errors, with their command's name.
fn run_all(c: &mut Resp, stream: &[u8]) -> Vec<String> {
    let mut errors = Vec::new();
    for args in requests(stream) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        if let Reply::Error(e) = c.command(&refs).unwrap() {
            errors.push(format!("{}: {e}", String::from_utf8_lossy(&args[0])));
        }
    }
    errors
}

/// The redis-8.6 server of the manifest, if installed and selected.
fn redis_8_6() -> Option<servers::Entry> {
    let found = servers::manifest()?
        .into_iter()
        .find(|e| e.name == "redis-8.6");
    if found.is_none() {
        eprintln!("redis-8.6 is not among the servers; skipping");
    }
    found
}

/// A server that loaded `fixture` (or nothing), and a connection to it.
fn start(
    entry: &servers::Entry,
    label: &str,
    fixture: Option<&std::path::Path>,
) -> (TempDir, Server, Resp) {
    let dir = TempDir::new(label);
    if let Some(f) = fixture {
        std::fs::copy(f, dir.path().join("dump.rdb")).unwrap();
    }
    let server = Server::start(entry, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let c = Resp::connect(server.port(), Duration::from_secs(20)).unwrap();
    (dir, server, c)
}

fn fixture_8_6(name: &str) -> std::path::PathBuf {
    common::fixtures_dir().join("redis-8.6").join(name)
}

/// Every key of a snapshot: database, name, and whether its DUMP has a fixed order (not a
/// hash table, which each server iterates in its own order).
fn keys_of(data: &[u8]) -> Vec<(u64, Vec<u8>, bool)> {
    use rdb_parser::format::type_id as t;
    let hash_table = [t::SET, t::HASH, t::ZSET, t::ZSET_2, t::HASH_METADATA];
    ParserBuilder::new()
        .parse(data)
        .unwrap()
        .filter_map(|i| match i.unwrap() {
            Item::Key(e) => Some((e.db, e.key.to_vec(), !hash_table.contains(&e.type_id))),
            _ => None,
        })
        .collect()
}

fn dump(c: &mut Resp, db: u64, key: &[u8]) -> Reply {
    c.command(&[b"SELECT", db.to_string().as_bytes()]).unwrap();
    c.command(&[b"DUMP", key]).unwrap()
}

/// Every RESTORE of `export --format restore --target redis-8.6` is accepted by the real
/// 8.6 server, and each key then dumps exactly as the server that loaded the fixture dumps
/// it (IDMP streams with their producers, vector sets, every plain type; a hash table,
/// dumped in each server's own order, reads back the same instead).
#[test]
fn restore_payloads_of_8_6_fixtures_equal_the_servers_dump() {
    let Some(entry) = redis_8_6() else { return };
    for name in ["idmp.rdb", "vectorsets.rdb", "types.rdb"] {
        let path = fixture_8_6(name);
        let data = std::fs::read(&path).unwrap();
        let (out, summary) = export(&data, "restore", "redis-8.6", |_| ()).unwrap();
        assert_eq!(
            summary.keys_left_out + summary.streams_idmp_left_out,
            0,
            "{name}"
        );
        let (_a_dir, a, mut original) = start(&entry, "export-86-src", Some(&path));
        let (_b_dir, b, mut restored) = start(&entry, "export-86-dst", None);
        let errors = run_all(&mut restored, &out);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let keys = keys_of(&data);
        assert_eq!(keys.len() as u64, summary.keys, "{name}");
        let mut dumped = 0;
        for (db, key, ordered) in keys {
            let want = dump(&mut original, db, &key);
            let got = dump(&mut restored, db, &key);
            // An expired key is gone from both; a hash table's order is each server's own.
            if ordered || want == Reply::Bulk(None) {
                let shown = String::from_utf8_lossy(&key);
                assert!(got == want, "{name}: key {shown:?} dumps differently");
                dumped += usize::from(want != Reply::Bulk(None));
            }
        }
        assert!(dumped > 0, "{name}");
        let same = servers::compare(&a.readback(), &b.readback(), &servers::Expect::default());
        same.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `XINFO STREAM` as field -> reply.
fn xinfo(c: &mut Resp, key: &[u8]) -> std::collections::BTreeMap<String, Reply> {
    let Reply::Array(Some(items)) = c.command(&[b"XINFO", b"STREAM", key]).unwrap() else {
        panic!("XINFO STREAM {key:?}");
    };
    items
        .chunks(2)
        .map(|kv| (kv[0].text().unwrap(), kv[1].clone()))
        .collect()
}

/// `export --format resp --target redis-8.6` re-creates each stream's IDMP state with
/// XCFGSET and XIDMPRECORD: the same settings and remembered iids (an `XADD ... IDMP` of
/// every stored iid is refused as a duplicate of the same entry on both servers, also one
/// whose entry was deleted). Only the
/// all-time iids-added / iids-duplicates counts restart, as after the server's own AOF
/// rewrite.
#[test]
fn resp_commands_recreate_idmp_state_on_8_6() {
    let Some(entry) = redis_8_6() else { return };
    let path = fixture_8_6("idmp.rdb");
    let (a_dir, _a, mut original) = start(&entry, "export-86-idmp-src", Some(&path));
    // The entry that `orders o2` added is deleted; its iid stays remembered, and the
    // commands have to record it on a placeholder entry.
    let deleted = original.command(&[b"XDEL", b"stream:idmp", b"4102444800000-2"]);
    assert_eq!(deleted.unwrap(), Reply::Int(1));
    assert_eq!(
        original.command(&[b"SAVE"]).unwrap(),
        Reply::Status("OK".into())
    );
    let data = std::fs::read(a_dir.path().join("dump.rdb")).unwrap();
    let (out, summary) = export(&data, "resp", "redis-8.6", |_| ()).unwrap();
    assert_eq!(summary.streams_idmp_left_out, 0);
    let (_b_dir, _b, mut rebuilt) = start(&entry, "export-86-idmp-dst", None);
    let errors = run_all(&mut rebuilt, &out);
    assert!(errors.is_empty(), "{errors:?}");

    let mut producers = 0;
    for item in ParserBuilder::new().parse(&data).unwrap() {
        let Item::Key(e) = item.unwrap() else {
            continue;
        };
        let rdb_parser::Value::Stream(s) = &e.value else {
            continue;
        };
        let mut want = xinfo(&mut original, &e.key);
        let mut got = xinfo(&mut rebuilt, &e.key);
        let recorded: u64 = s.idmp.iter().map(|m| m.iid_count()).sum();
        assert_eq!(
            got.remove("iids-added"),
            Some(Reply::Int(recorded as i64)),
            "{:?}",
            e.key
        );
        assert_eq!(got.remove("iids-duplicates"), Some(Reply::Int(0)));
        want.remove("iids-added");
        want.remove("iids-duplicates");
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&e.key));
        // The remembered iids answer alike: each XADD is a duplicate of its entry.
        for p in s.idmp.iter().flat_map(|m| m.producers()) {
            producers += 1;
            for iid in p.entries() {
                let add = |c: &mut Resp| {
                    c.command(&[b"XADD", &e.key, b"IDMP", &p.pid, &iid.iid, b"*", b"f", b"v"])
                        .unwrap()
                };
                let (a, b) = (add(&mut original), add(&mut rebuilt));
                assert_eq!(a, b, "{:?} {:?}", p.pid, iid.iid);
                assert_eq!(a.text(), Some(format!("{}-{}", iid.id.ms, iid.id.seq)));
            }
        }
    }
    assert!(
        producers >= 6,
        "the fixture's producers were all checked ({producers})"
    );
}

/// On a target without XIDMPRECORD the IDMP state stops the export with the key named,
/// unless `--stream-idmp drop` allows writing the streams without it (then counted).
#[test]
fn idmp_state_on_an_older_target_is_refused_or_dropped_when_asked() {
    let data = std::fs::read(fixture_8_6("idmp.rdb")).unwrap();
    for format in ["resp", "restore"] {
        let Err(rdb_cli::Failure::Refused(why)) = export(&data, format, "redis-8.0", |_| ()) else {
            panic!("{format}: an IDMP stream was written for redis-8.0");
        };
        assert!(
            why.contains("\"stream:idmp\"") && why.contains("--stream-idmp drop"),
            "{why}"
        );
        let (_, summary) = export(&data, format, "redis-8.0", |o| {
            o.convert.stream_idmp = rdb_writer::convert::StreamIdmpPolicy::Drop;
        })
        .unwrap();
        // stream:idmp, stream:idmp-xcfgset, stream:idmp-cleared; not stream:plain.
        assert_eq!(summary.streams_idmp_left_out, 3, "{format}");
        assert_eq!(summary.keys, 4, "{format}");
    }
}

/// A REDIS0013 file whose one key `k` = "v" carries KEY_META: one class (spec 0x01020304,
/// value UINT 5).
fn key_meta_file() -> Vec<u8> {
    let mut f = b"REDIS0013".to_vec();
    f.extend_from_slice(&[0xFE, 0]);
    f.extend_from_slice(&[0xF3, 1, 4, 3, 2, 1, 2, 5, 0]);
    f.extend_from_slice(&[0, 1, b'k', 1, b'v', 0xFF]);
    f.extend_from_slice(&[0; 8]);
    f
}

/// RESTORE payloads carry KEY_META as DUMP writes it on 8.6 (opcode 243 and the classes
/// before the type byte, under the CRC); older targets get the value alone and the
/// metadata counted as left out. Checked on the real 8.6 server: it verifies the CRC over
/// the metadata, then reads the record and refuses the class, which no module registered.
#[test]
fn key_meta_goes_into_8_6_payloads_and_is_reported_elsewhere() {
    let data = key_meta_file();
    let (with, summary) = export(&data, "restore", "redis-8.6", |_| ()).unwrap();
    assert_eq!(summary.key_meta_left_out, 0);
    let payload = |stream: &[u8]| requests(stream).pop().unwrap()[3].clone();
    let p86 = payload(&with);
    assert_eq!(&p86[..9], &[0xF3, 1, 4, 3, 2, 1, 2, 5, 0]);
    assert_eq!(&p86[9..12], &[0, 1, b'v']);
    assert_eq!(&p86[12..14], &13u16.to_le_bytes());
    let crc = rdb_parser::crc64(0, &p86[..14]);
    assert_eq!(&p86[14..], &crc.to_le_bytes());

    let (without, summary) = export(&data, "restore", "redis-8.0", |_| ()).unwrap();
    assert_eq!(summary.key_meta_left_out, 1);
    assert_eq!(&payload(&without)[..3], &[0, 1, b'v']);
    let (_, summary) = export(&data, "resp", "redis-8.6", |_| ()).unwrap();
    assert_eq!(
        summary.key_meta_left_out, 1,
        "plain commands carry no key metadata"
    );

    let Some(entry) = redis_8_6() else { return };
    let (_dir, server, mut c) = start(&entry, "export-86-keymeta", None);
    let restore = |c: &mut Resp, p: &[u8]| c.command(&[b"RESTORE", b"k", b"0", p]).unwrap();
    let mut corrupt = p86.clone();
    corrupt[6] ^= 1;
    let Reply::Error(e) = restore(&mut c, &corrupt) else {
        panic!("a corrupt payload loaded")
    };
    assert!(e.contains("checksum"), "{e}");
    let Reply::Error(e) = restore(&mut c, &p86) else {
        panic!("an unregistered class loaded")
    };
    assert!(e.contains("Bad data format"), "{e}");
    assert!(
        server.log_tail(20).contains("key metadata"),
        "{}",
        server.log_tail(20)
    );
}

// ---------------------------------------------------------------------------------------
// Vector sets too large to format whole

/// A module opcode stream's unsigned field (opcode 2).
fn module_uint(out: &mut Vec<u8>, n: u64) {
    rdb_writer::encode::length(out, 2);
    rdb_writer::encode::length(out, n);
}

/// A module opcode stream's string field (opcode 5).
fn module_string(out: &mut Vec<u8>, s: &[u8], compression: Compression) {
    rdb_writer::encode::length(out, 2 + 3);
    rdb_writer::encode::string(out, s, compression);
}

/// A Redis 8.6 file holding one NOQUANT vector set `key` of `elements` elements of `dim`
/// dimensions, a chain graph (node n linked both ways to n - 1 and n + 1), element n named
/// `e{n}` and stored n-th (the file holds the newest first, so `e1` was added last), with
/// attributes on every third one. Vectors are each element's own (constant,
/// so LZF packs them when `compression` allows).
fn vector_set_file(key: &[u8], elements: u64, dim: usize, compression: Compression) -> Vec<u8> {
    let mut v = Vec::new();
    let id = rdb_parser::ModuleId::from_name("vectorset", 0).unwrap();
    rdb_writer::encode::length(&mut v, id.0);
    module_uint(&mut v, dim as u64);
    module_uint(&mut v, elements);
    module_uint(&mut v, 16 << 8); // NOQUANT, M 16
    module_uint(&mut v, 2); // attributes, no projection
    for n in 1..=elements {
        module_string(&mut v, format!("e{n:07}").as_bytes(), compression);
        let attrs = if n % 3 == 0 {
            format!("{{\"n\":{n},\"s\":\"é\"}}")
        } else {
            String::new()
        };
        module_string(&mut v, attrs.as_bytes(), compression);
        let component = (n as f32 / elements as f32 - 0.5).to_le_bytes();
        module_string(&mut v, &component.repeat(dim), compression);
        let links: Vec<u64> = [n - 1, n + 1]
            .into_iter()
            .filter(|l| (1..=elements).contains(l))
            .collect();
        // id, version 1 and level 0, one layer (links, capacity, ids, worst link), l2.
        let mut params = vec![n, 1 << 24, links.len() as u64, 32];
        params.extend(&links);
        params.extend([0, u64::from(3.0f32.to_bits())]);
        module_uint(&mut v, params.len() as u64);
        for p in params {
            module_uint(&mut v, p);
        }
    }
    rdb_writer::encode::length(&mut v, 0); // EOF opcode
    let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(13)).unwrap();
    w.select_db(0).unwrap();
    w.key_value(rdb_parser::format::type_id::MODULE_2, key, &v)
        .unwrap();
    w.finish().unwrap()
}

/// Two vector sets that cannot be formatted whole: one whose stored value passes the 8 MB
/// threshold (formatted on the writing thread from the start), and one small in the file
/// (LZF) whose JSON and commands pass it (a worker gives up, the writing thread redoes
/// it). Their jsonl lines equal the in-memory formatter's, and their VADDs go out oldest
/// first (the reverse of the file), across the blocks the backward walk decodes.
#[test]
fn huge_vector_sets_export_in_pieces_exactly_as_whole() {
    let cases = [
        (
            vector_set_file(b"stored-big", 150_000, 8, Compression::None),
            150_000,
            true,
        ),
        (
            vector_set_file(b"formatted-big", 40_000, 64, Compression::Lzf),
            40_000,
            false,
        ),
    ];
    for (data, elements, stored_big) in &cases {
        let parser = ParserBuilder::new();
        let entry = parser
            .parse(data)
            .unwrap()
            .find_map(|i| match i.unwrap() {
                Item::Key(e) => Some(e),
                _ => None,
            })
            .unwrap();
        let stored = entry.raw_value.len();
        assert_eq!(stored > 8 << 20, *stored_big, "{stored} stored bytes");
        let mut whole = Vec::new();
        rdb_cli::export::write_key(&mut whole, &entry).unwrap();
        whole.push(b'\n');
        assert!(whole.len() > 8 << 20, "{} bytes of JSON", whole.len());

        let mut out = Vec::new();
        rdb_cli::export::jsonl(data, &parser, &mut out, |_| ()).unwrap();
        let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 2, "the header and the key");
        assert!(
            lines[1] == &whole[..],
            "{stored} stored bytes: the line differs ({} vs {} bytes)",
            lines[1].len(),
            whole.len()
        );
        let json: serde_json::Value = serde_json::from_slice(lines[1]).unwrap();
        let set = &json["value"]["vector_set"];
        assert_eq!(set["elements"].as_array().unwrap().len(), *elements);
        assert_eq!(set["elements"][0]["element"], "e0000001", "in file order");

        let (commands, summary) = export(data, "resp", "redis-8.6", |_| ()).unwrap();
        assert_eq!(summary.bytes, commands.len() as u64);
        let vadds: Vec<Vec<Vec<u8>>> = requests(&commands)
            .into_iter()
            .filter(|c| c[0] == b"VADD")
            .collect();
        assert_eq!(
            summary.records,
            1 + *elements as u64,
            "SELECT and the VADDs"
        );
        assert_eq!(vadds.len(), *elements);
        // VADD key VALUES n v1..vn element NOQUANT [SETATTR json]
        let names: Vec<u64> = vadds
            .iter()
            .map(|c| {
                let n: usize = std::str::from_utf8(&c[3]).unwrap().parse().unwrap();
                let name = std::str::from_utf8(&c[4 + n]).unwrap();
                let at: u64 = name.strip_prefix('e').unwrap().parse().unwrap();
                assert_eq!(c.len() > 6 + n, at % 3 == 0, "SETATTR on every third");
                at
            })
            .collect();
        let oldest_first: Vec<u64> = (1..=*elements as u64).rev().collect();
        assert!(names == oldest_first, "VADDs out of order");

        // The same commands built in memory.
        let mut whole = rdb_cli::resp::select(0);
        let native = NativeOptions::for_target(TargetProfile::named("redis-8.6").unwrap());
        rdb_cli::resp::native_commands(&entry, &native, &mut |c| whole.extend_from_slice(&c))
            .unwrap();
        assert!(
            commands == whole,
            "{} vs {} bytes",
            commands.len(),
            whole.len()
        );
    }
}
