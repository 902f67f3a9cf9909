//! Vector sets (the built-in `vectorset` module type, type-7 values): the committed Redis
//! 8.6 fixture decoded and compared with what the generator added, vector sets built here
//! byte by byte, and corruptions of each: every truncation and a set of byte flips and
//! lies stop with an error (with its offset), never a panic.
//!
//! The comparison with the live server (`VEMB`, `VGETATTR`, `VCARD`, `VDIM`) is in
//! rdb-cli/tests/vectorsets.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdb_parser::{
    Error, ErrorKind, Item, ModuleId, ParserBuilder, Quantization, Structure, Value, VectorSet,
};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/servers/redis-8.6")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the fixture generator added: `vecs[i][j] = (i * 7 + j * 3) % 11 / 10 - 0.5`.
fn generator_vector(i: usize) -> Vec<f32> {
    (0..4)
        .map(|j| ((i * 7 + j * 3) % 11) as f32 / 10.0 - 0.5)
        .collect()
}

/// One decoded element: name, attributes, de-quantized vector.
type Decoded = (Vec<u8>, Option<Vec<u8>>, Vec<f32>);
/// A set's elements by name: attributes, vector.
type ByName = BTreeMap<Vec<u8>, (Option<Vec<u8>>, Vec<f32>)>;

struct Set {
    dim: u32,
    quant: Quantization,
    projection: Option<(u32, Vec<f32>)>,
    elements: Vec<Decoded>,
}

fn decode_set(v: &VectorSet<'_>) -> Result<Set, Error> {
    let mut elements = Vec::new();
    for e in v.elements() {
        let e = e?;
        elements.push((
            e.name().to_vec(),
            e.attributes().map(<[u8]>::to_vec),
            e.vector().to_f32(),
        ));
    }
    v.validate()?;
    let projection = match v.projection() {
        Some(p) => Some((p.input_dim(), p.matrix()?)),
        None => None,
    };
    Ok(Set {
        dim: v.dim(),
        quant: v.quantization(),
        projection,
        elements,
    })
}

/// Every vector set of a file, decoded and validated (other module values are left out).
fn vector_sets(data: &[u8]) -> Result<BTreeMap<Vec<u8>, Set>, Error> {
    let mut out = BTreeMap::new();
    for item in ParserBuilder::new().verify_checksum(false).parse(data)? {
        if let Item::Key(k) = item? {
            if let Value::Module(m) = &k.value {
                if let Some(set) = m.vector_set() {
                    out.insert(k.key.to_vec(), decode_set(&set?)?);
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn the_8_6_fixture_decodes_to_what_the_generator_added() {
    let data = fixture("vectorsets.rdb");
    let sets = vector_sets(&data).unwrap();
    let names: Vec<&[u8]> = sets.keys().map(Vec::as_slice).collect();
    assert_eq!(
        names,
        [
            &b"vset:attrs"[..],
            b"vset:bin",
            b"vset:binary\xff",
            b"vset:deleted",
            b"vset:noquant",
            b"vset:q8",
            b"vset:reduce"
        ]
    );
    let by_name = |key: &[u8]| -> ByName {
        sets[key]
            .elements
            .iter()
            .map(|(n, a, v)| (n.clone(), (a.clone(), v.clone())))
            .collect()
    };

    // NOQUANT: the stored, normalized floats times the norm give the input back.
    let nq = &sets[&b"vset:noquant"[..]];
    assert_eq!(
        (nq.dim, nq.quant, nq.elements.len()),
        (4, Quantization::NoQuant, 5)
    );
    for (name, (attrs, v)) in by_name(b"vset:noquant") {
        let i: usize = std::str::from_utf8(&name[1..]).unwrap().parse().unwrap();
        assert_eq!(attrs, None);
        for (got, want) in v.iter().zip(generator_vector(i)) {
            assert!((got - want).abs() < 1e-6, "e{i}: {v:?}");
        }
    }
    // Q8: within one quantization step of the input.
    let q8 = &sets[&b"vset:q8"[..]];
    assert_eq!(
        (q8.dim, q8.quant, q8.elements.len()),
        (4, Quantization::Q8, 5)
    );
    for (name, (_, v)) in by_name(b"vset:q8") {
        let i: usize = std::str::from_utf8(&name[1..]).unwrap().parse().unwrap();
        for (got, want) in v.iter().zip(generator_vector(i)) {
            assert!((got - want).abs() < 0.01, "e{i}: {v:?}");
        }
    }
    // BIN: the signs (0 counts as negative).
    let bin = &sets[&b"vset:bin"[..]];
    assert_eq!((bin.quant, bin.elements.len()), (Quantization::Bin, 5));
    for (name, (_, v)) in by_name(b"vset:bin") {
        let i: usize = std::str::from_utf8(&name[1..]).unwrap().parse().unwrap();
        let signs: Vec<f32> = generator_vector(i)
            .iter()
            .map(|x| if *x > 0.0 { 1.0 } else { -1.0 })
            .collect();
        assert_eq!(v, signs, "e{i}");
    }
    // REDUCE 2: 4 -> 2 dimensions, the Hadamard matrix Redis stores, vectors projected.
    let red = &sets[&b"vset:reduce"[..]];
    assert_eq!(
        (red.dim, red.quant, red.elements.len()),
        (2, Quantization::Q8, 4)
    );
    let (input, matrix) = red.projection.clone().unwrap();
    assert_eq!(input, 4);
    assert_eq!(matrix, [0.5, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, -0.5]);
    for (name, (_, v)) in by_name(b"vset:reduce") {
        let i: usize = std::str::from_utf8(&name[1..]).unwrap().parse().unwrap();
        let x = generator_vector(i);
        for (row, got) in v.iter().enumerate() {
            let want: f32 = (0..4).map(|j| matrix[row * 4 + j] * x[j]).sum();
            assert!((got - want).abs() < 0.01, "r{i}: {v:?}");
        }
    }
    // Attributes, one of them emptied with VSETATTR (stored as "", read as none).
    let attrs = by_name(b"vset:attrs");
    for i in 0..3 {
        let want = format!("{{\"n\": {i}, \"tag\": \"t{}\"}}", i % 2);
        assert_eq!(
            attrs[format!("a{i}").as_bytes()].0.as_deref(),
            Some(want.as_bytes())
        );
    }
    assert_eq!(attrs[&b"a3"[..]].0, None);
    // VREM'd elements are gone, the others' links still resolve (validate ran).
    let deleted: Vec<Vec<u8>> = by_name(b"vset:deleted").into_keys().collect();
    assert_eq!(
        deleted,
        [b"d0", b"d2", b"d3", b"d4", b"d6", b"d7"].map(|n| n.to_vec())
    );
    // A binary element name.
    assert_eq!(sets[&b"vset:binary\xff"[..]].elements[0].0, b"elem\x00\xff");
}

#[test]
fn vector_set_values_report_their_size_and_validate_in_decode_all() {
    let data = fixture("vectorsets.rdb");
    for item in ParserBuilder::new().parse(&data).unwrap() {
        if let Item::Key(k) = item.unwrap() {
            if let Value::Module(m) = &k.value {
                let set = m.vector_set().unwrap().unwrap();
                assert_eq!(k.value.len_hint(), Some(set.len()));
                assert_eq!(k.value.decode_all().unwrap(), set.len());
                assert_eq!(m.id.name(), "vectorset");
                assert_eq!(set.m(), 16);
                let links: u64 = set.elements().map(|e| e.unwrap().link_count()).sum();
                assert!(links > 0 || set.len() == 1);
                assert!(set.elements().all(|e| e.unwrap().node_version() == 1));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Vector sets built here

/// An RDB length.
fn rdb_len(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=63 => out.push(n as u8),
        64..=16383 => out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
        16384..=0xffff_ffff => {
            out.push(0x80);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0x81);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn op_uint(out: &mut Vec<u8>, n: u64) {
    rdb_len(out, 2);
    rdb_len(out, n);
}

fn op_string(out: &mut Vec<u8>, s: &[u8]) {
    rdb_len(out, 5);
    rdb_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// One node: name, attributes, stored vector, (id, version, layers of link ids), l2, range.
struct Node {
    name: Vec<u8>,
    attrs: Option<Vec<u8>>,
    vector: Vec<u8>,
    id: u64,
    layers: Vec<Vec<u64>>,
    l2: f32,
    range: f32,
}

/// A type-7 `vectorset` value (module id, opcodes, EOF) in the 8.6 layout (node version 1).
fn vset_value(dim: u64, quant: u64, projection: Option<(u64, &[f32])>, nodes: &[Node]) -> Vec<u8> {
    let mut v = Vec::new();
    rdb_len(&mut v, ModuleId::from_name("vectorset", 0).unwrap().0);
    op_uint(&mut v, dim);
    op_uint(&mut v, nodes.len() as u64);
    op_uint(&mut v, quant | 16 << 8);
    let attrs = nodes.iter().any(|n| n.attrs.is_some());
    op_uint(
        &mut v,
        u64::from(projection.is_some()) | u64::from(attrs) << 1,
    );
    if let Some((input, matrix)) = projection {
        op_uint(&mut v, input);
        let bytes: Vec<u8> = matrix.iter().flat_map(|x| x.to_le_bytes()).collect();
        op_string(&mut v, &bytes);
    }
    for n in nodes {
        op_string(&mut v, &n.name);
        if attrs {
            op_string(&mut v, n.attrs.as_deref().unwrap_or(b""));
        }
        op_string(&mut v, &n.vector);
        let mut params = vec![n.id, 1 << 24 | (n.layers.len() as u64 - 1)];
        for links in &n.layers {
            params.extend([links.len() as u64, 32]);
            params.extend(links);
            params.push(0); // worst link: index 0, distance 0.0
        }
        params.push(u64::from(n.range.to_bits()) << 32 | u64::from(n.l2.to_bits()));
        op_uint(&mut v, params.len() as u64);
        for p in params {
            op_uint(&mut v, p);
        }
    }
    rdb_len(&mut v, 0);
    v
}

/// A whole RDB 13 file holding `key` = `value` (type 7), no checksum.
fn file_with(key: &[u8], value: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
    let mut f = b"REDIS0013".to_vec();
    f.extend_from_slice(&[0xFE, 0, 7]);
    rdb_len(&mut f, key.len() as u64);
    f.extend_from_slice(key);
    let start = f.len();
    f.extend_from_slice(value);
    let span = start..f.len();
    f.push(0xFF);
    f.extend_from_slice(&[0; 8]);
    (f, span)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Three mutually linked NOQUANT nodes in 3 dimensions, one with attributes; node 3 on
/// two levels with node 2.
fn three_nodes() -> Vec<Node> {
    let node = |name: &str, id, layers: Vec<Vec<u64>>, v: [f32; 3], attrs: Option<&str>| Node {
        name: name.as_bytes().to_vec(),
        attrs: attrs.map(|a| a.as_bytes().to_vec()),
        vector: f32_bytes(&v),
        id,
        layers,
        l2: 2.0,
        range: 0.0,
    };
    vec![
        node("c", 3, vec![vec![1, 2], vec![2]], [0.0, 0.0, 1.0], None),
        node(
            "b",
            2,
            vec![vec![1, 3], vec![3]],
            [0.0, 1.0, 0.0],
            Some("{\"x\":1}"),
        ),
        node("a", 1, vec![vec![2, 3]], [1.0, 0.0, 0.0], None),
    ]
}

#[test]
fn a_built_set_decodes_exactly() {
    let value = vset_value(3, 0, None, &three_nodes());
    let (file, _) = file_with(b"v", &value);
    let sets = vector_sets(&file).unwrap();
    let s = &sets[&b"v"[..]];
    assert_eq!((s.dim, s.quant), (3, Quantization::NoQuant));
    assert_eq!(
        s.elements,
        [
            (b"c".to_vec(), None, vec![0.0, 0.0, 2.0]),
            (
                b"b".to_vec(),
                Some(b"{\"x\":1}".to_vec()),
                vec![0.0, 2.0, 0.0]
            ),
            (b"a".to_vec(), None, vec![2.0, 0.0, 0.0]),
        ]
    );
}

#[test]
fn q8_bin_and_projection_dequantize_as_vemb() {
    // Q8: q * range / 127 * l2.
    let q8 = Node {
        name: b"q".to_vec(),
        attrs: None,
        vector: vec![127, 0x81, 0],
        id: 1,
        layers: vec![vec![]],
        l2: 2.0,
        range: 0.5,
    };
    let (file, _) = file_with(b"k", &vset_value(3, 1, None, &[q8]));
    let s = &vector_sets(&file).unwrap()[&b"k"[..]];
    assert_eq!(s.elements[0].2, [1.0, -1.0, 0.0]);
    // BIN: 70 dimensions in two 64-bit words; bit j set = +1, unscaled.
    let mut bits = vec![0u8; 16];
    bits[0] = 0b101;
    bits[8] = 0b10; // dimension 65
    let bin = Node {
        name: b"b".to_vec(),
        attrs: None,
        vector: bits,
        id: 1,
        layers: vec![vec![]],
        l2: 3.0,
        range: 0.0,
    };
    let (file, _) = file_with(b"k", &vset_value(70, 2, None, &[bin]));
    let v = &vector_sets(&file).unwrap()[&b"k"[..]].elements[0].2;
    let plus: Vec<usize> = (0..70).filter(|&j| v[j] == 1.0).collect();
    assert_eq!(plus, [0, 2, 65]);
    assert!(v.iter().all(|x| *x == 1.0 || *x == -1.0));
    // REDUCE: the matrix is kept as stored.
    let one = Node {
        name: b"r".to_vec(),
        attrs: None,
        vector: f32_bytes(&[1.0]),
        id: 9,
        layers: vec![vec![]],
        l2: 1.0,
        range: 0.0,
    };
    let (file, _) = file_with(
        b"k",
        &vset_value(1, 0, Some((3, &[0.25, -0.5, 1.0])), &[one]),
    );
    let s = &vector_sets(&file).unwrap()[&b"k"[..]];
    assert_eq!(s.projection, Some((3, vec![0.25, -0.5, 1.0])));
}

/// The error of decoding `file` whole, vector sets validated.
fn error_of(file: &[u8]) -> Error {
    match vector_sets(file) {
        Ok(_) => panic!("decoded"),
        Err(e) => e,
    }
}

#[test]
fn lies_in_a_built_set_are_errors_at_their_byte() {
    let nodes = three_nodes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dimension 0", vset_value(0, 0, None, &nodes), "dimension 0"),
        (
            "quantization 7",
            vset_value(3, 7, None, &nodes),
            "unknown quantization 7",
        ),
        (
            "vector too short for the dimension",
            vset_value(4, 0, None, &nodes),
            "a vector of 12 bytes, 16 expected",
        ),
        (
            "projection that widens",
            vset_value(3, 0, Some((2, &[0.0; 6])), &nodes),
            "projection from 2 to 3 dimensions",
        ),
        (
            "projection matrix of the wrong size",
            vset_value(3, 0, Some((4, &[0.0; 6])), &nodes),
            "projection matrix of 24 bytes, 48 expected",
        ),
        (
            "a link to a node not in the set",
            {
                let mut n = three_nodes();
                n[2].layers[0] = vec![2, 9];
                vset_value(3, 0, None, &n)
            },
            "links to node 9, which is not in the set",
        ),
        (
            "a link above the linked node's level",
            {
                let mut n = three_nodes();
                n[0].layers[1] = vec![1];
                vset_value(3, 0, None, &n)
            },
            "which has only levels 0..=0",
        ),
        (
            "a one-way link",
            {
                let mut n = three_nodes();
                n[2].layers[0] = vec![2];
                vset_value(3, 0, None, &n)
            },
            "without its reverse link",
        ),
        (
            "a link to itself",
            {
                let mut n = three_nodes();
                n[2].layers[0] = vec![1, 2, 3];
                vset_value(3, 0, None, &n)
            },
            "links to itself",
        ),
        (
            "a duplicate link",
            {
                let mut n = three_nodes();
                n[2].layers[0] = vec![2, 3, 2];
                vset_value(3, 0, None, &n)
            },
            "duplicate link",
        ),
        (
            "a duplicate element",
            {
                let mut n = three_nodes();
                n[2].name = b"b".to_vec();
                vset_value(3, 0, None, &n)
            },
            "element \"b\" appears twice",
        ),
    ];
    for (what, value, words) in cases {
        let (file, span) = file_with(b"vkey", &value);
        let e = error_of(&file);
        let text = e.to_string();
        assert!(text.contains(words), "{what}: {text}");
        assert!(text.contains("in key \"vkey\""), "{what}: {text}");
        assert_eq!(e.structure(), Structure::Module, "{what}: {text}");
        assert!(
            span.contains(&(e.offset() as usize)),
            "{what}: {text} not in {span:?}"
        );
    }
}

#[test]
fn a_count_or_parameter_count_that_lies_is_an_error() {
    let good = vset_value(3, 0, None, &three_nodes());
    let id_len = {
        let mut v = Vec::new();
        rdb_len(&mut v, ModuleId::from_name("vectorset", 0).unwrap().0);
        v.len()
    };
    // The element count is the second unsigned: opcode 2 at id_len + 2, its value after.
    let count_at = id_len + 3;
    assert_eq!(good[count_at], 3);
    for (count, words) in [
        (
            4u8,
            "expected an element name as a string (opcode 5), found the value's end",
        ),
        (2, "opcode 5 after the last declared element"),
    ] {
        let mut v = good.clone();
        v[count_at] = count;
        let (file, _) = file_with(b"k", &v);
        let text = error_of(&file).to_string();
        assert!(text.contains(words), "count {count}: {text}");
    }
    // The first node's parameter count, one short: its norm word is missing.
    let (file, _) = file_with(b"k", &good);
    let pos = find_param_count(&file);
    let mut short = file.clone();
    short[pos] -= 1;
    let text = error_of(&short).to_string();
    assert!(
        text.contains("found opcode 2") || text.contains("parameters end"),
        "{text}"
    );
}

/// The offset of the first node's parameter count in a [`file_with`] file: after the
/// first vector (3 NOQUANT floats: opcode 5, length 12, 12 bytes), opcode 2, then it.
fn find_param_count(file: &[u8]) -> usize {
    let vec_at = file
        .windows(2)
        .position(|w| w == [5, 12])
        .expect("the first vector");
    vec_at + 2 + 12 + 1
}

#[test]
fn a_node_version_or_level_no_redis_writes_is_an_error() {
    let (file, _) = file_with(b"k", &vset_value(3, 0, None, &three_nodes()));
    // The level word of node 1 follows its id: params are opcode 2 + value each.
    let count_at = find_param_count(&file);
    let id_at = count_at + 2; // opcode 2, id 3
    assert_eq!(file[id_at], 3);
    let word_at = id_at + 2; // opcode 2, then the word as a 32-bit length (0x80 + 4 bytes)
    assert_eq!(file[word_at], 0x80);
    let mut v2 = file.clone();
    v2[word_at + 1] = 2; // version 2
    assert!(error_of(&v2)
        .to_string()
        .contains("node serialization version 2"));
    let mut deep = file.clone();
    deep[word_at + 4] = 40; // level 40
    assert!(error_of(&deep).to_string().contains("node level 40"));
}

#[test]
fn every_truncation_of_the_fixture_sets_is_an_error_never_a_panic() {
    let data = fixture("vectorsets.rdb");
    // Each vector set value's span, from the parser.
    let mut spans = Vec::new();
    for item in ParserBuilder::new().parse(&data).unwrap() {
        if let Item::Key(k) = item.unwrap() {
            if let Value::Module(_) = k.value {
                let start = k.raw_value.as_ptr() as usize - data.as_ptr() as usize;
                spans.push(start..start + k.raw_value.len());
            }
        }
    }
    assert_eq!(spans.len(), 7);
    for span in &spans {
        let value = &data[span.clone()];
        for cut in 0..value.len() {
            let (file, _) = file_with(b"k", &value[..cut]);
            assert!(
                vector_sets(&file).is_err(),
                "cut at {cut} of {}",
                value.len()
            );
        }
    }
}

#[test]
fn byte_flips_in_the_fixture_sets_never_panic_and_structural_ones_are_errors() {
    let data = fixture("vectorsets.rdb");
    let mut values = Vec::new();
    for item in ParserBuilder::new().parse(&data).unwrap() {
        if let Item::Key(k) = item.unwrap() {
            if let Value::Module(_) = k.value {
                values.push(k.raw_value.to_vec());
            }
        }
    }
    let (mut flips, mut errors) = (0, 0);
    for value in &values {
        for pos in 0..value.len() {
            for mask in [0x01u8, 0x10, 0x80, 0xff] {
                let mut v = value.clone();
                v[pos] ^= mask;
                let (file, _) = file_with(b"k", &v);
                flips += 1;
                match vector_sets(&file) {
                    Err(e) => {
                        errors += 1;
                        assert!(!e.to_string().is_empty());
                    }
                    // A flip in a vector, a name or an attribute is still a valid set
                    // (one in the module id makes it another module's opaque value).
                    Ok(sets) => assert!(sets.len() <= 1),
                }
            }
        }
    }
    // Most bytes are structure (opcodes, lengths, graph links): most flips must be caught.
    eprintln!("{errors} of {flips} byte flips are errors");
    assert!(errors * 2 > flips, "{errors} errors of {flips} flips");
}

#[test]
fn other_module_values_stay_opaque() {
    let mut v = Vec::new();
    rdb_len(&mut v, ModuleId::from_name("ReJSON-RL", 3).unwrap().0);
    op_string(&mut v, b"{}");
    rdb_len(&mut v, 0);
    let (file, _) = file_with(b"j", &v);
    for item in ParserBuilder::new()
        .verify_checksum(false)
        .parse(&file)
        .unwrap()
    {
        if let Item::Key(k) = item.unwrap() {
            let Value::Module(m) = &k.value else {
                panic!("not a module")
            };
            assert!(!m.is_vector_set());
            assert!(m.vector_set().is_none());
            assert_eq!(k.value.decode_all().unwrap(), 1);
        }
    }
    // A vectorset id with another encoding version is refused, as loaders refuse it.
    let mut v = Vec::new();
    rdb_len(&mut v, ModuleId::from_name("vectorset", 1).unwrap().0);
    rdb_len(&mut v, 0);
    let (file, _) = file_with(b"j", &v);
    let e = error_of(&file);
    assert_eq!(*e.kind(), ErrorKind::Unsupported, "{e}");
}

/// Redis compresses module strings longer than 20 bytes with LZF when that saves space:
/// names, attributes, vectors and the projection matrix are read through it.
#[test]
fn lzf_compressed_strings_are_decoded() {
    let lzf_string = |out: &mut Vec<u8>, s: &[u8]| {
        let packed = lzf::compress(s).unwrap();
        rdb_len(out, 5);
        out.push(0xC3);
        rdb_len(out, packed.len() as u64);
        rdb_len(out, s.len() as u64);
        out.extend_from_slice(&packed);
    };
    let dim = 16u64;
    let name = vec![b'n'; 40];
    let attrs = format!("{{\"pad\":\"{}\"}}", "x".repeat(40));
    let mut vector = vec![0u8; 64];
    vector[0..4].copy_from_slice(&1.0f32.to_le_bytes());
    let mut v = Vec::new();
    rdb_len(&mut v, ModuleId::from_name("vectorset", 0).unwrap().0);
    op_uint(&mut v, dim);
    op_uint(&mut v, 1);
    op_uint(&mut v, 16 << 8); // NOQUANT, M 16
    op_uint(&mut v, 3); // projection and attributes
    op_uint(&mut v, 16);
    lzf_string(&mut v, &f32_bytes(&[0.25; 256]));
    lzf_string(&mut v, &name);
    lzf_string(&mut v, attrs.as_bytes());
    lzf_string(&mut v, &vector);
    let params = [7u64, 1 << 24, 0, 32, 0, u64::from(3.0f32.to_bits())];
    op_uint(&mut v, params.len() as u64);
    for p in params {
        op_uint(&mut v, p);
    }
    rdb_len(&mut v, 0);
    let (file, _) = file_with(b"z", &v);
    let s = &vector_sets(&file).unwrap()[&b"z"[..]];
    assert_eq!(s.projection, Some((16, vec![0.25; 256])));
    let (n, a, vec) = &s.elements[0];
    assert_eq!(n, &name);
    assert_eq!(a.as_deref(), Some(attrs.as_bytes()));
    let mut want = vec![0.0f32; 16];
    want[0] = 3.0;
    assert_eq!(vec, &want);
    // A compressed vector that expands to the wrong size is an error at the string.
    let mut short = v.clone();
    let at = short.windows(2).rposition(|w| w == [5, 0xC3]).unwrap();
    let (bad_file, span) = file_with(b"z", &{
        // Declare 60 bytes instead of 64 (original length follows the compressed one).
        let clen_at = at + 2;
        let olen_at = clen_at + 1;
        assert_eq!(short[olen_at], 64);
        short[olen_at] = 60;
        short
    });
    let e = error_of(&bad_file);
    assert!(span.contains(&(e.offset() as usize)), "{e}");
}
