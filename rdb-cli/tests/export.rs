//! `export jsonl` formats a value larger than a batch on the writing thread, written out
//! in pieces (so memory holds a piece, not the escaped line): its lines must be exactly
//! the lines of the in-memory formatter; `--format resp` writes such a value's commands one
//! by one. Peak memory is measured by benches/memory.sh.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use rdb_cli::export::CommandsOptions;
use rdb_cli::resp::NativeOptions;
use rdb_parser::{Item, ParserBuilder};
use rdb_writer::convert::ConvertOptions;
use rdb_writer::{value, Compression, TargetProfile, Writer};

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
