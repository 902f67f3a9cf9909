//! Vector sets (`VADD`) in a conversion: kept for targets with vector sets built in
//! (Redis 8.0+), their HNSW nodes re-serialized when the target's loader reads only an
//! older node format; elsewhere refused, or dropped under `--modules drop`, or written as
//! they are under `--modules keep` (for a server that loads the vectorset module).
//!
//! Redis 8.6 writes nodes in version 1 (each layer's worst link stored); Redis 8.0.2
//! refuses those ("Vector set node index loading error") and reads version 0, which is
//! the same graph without the worst-link words. Everything else (header, projection,
//! names, attributes, vectors) is copied as stored.

use rdb_parser::{Module, VectorSet};

use crate::convert::ModulePolicy;
use crate::encode;
use crate::profile::TargetProfile;

/// What a conversion does with one vector set.
#[derive(Debug)]
pub(crate) enum VectorSetStep {
    /// The target loads the stored bytes.
    Keep,
    /// The value re-encoded for the target (module id, opcodes, EOF).
    Rewrite(Vec<u8>),
    /// Left out, with the reason for the report.
    Drop(String),
    /// Stops the conversion, with the reason.
    Refuse(String),
}

/// Decides, and re-encodes where needed. A corrupt vector set is an error.
pub(crate) fn plan(
    m: &Module<'_>,
    policy: ModulePolicy,
    target: &TargetProfile,
) -> Result<VectorSetStep, rdb_parser::Error> {
    let Some(node_version) = target.vector_sets else {
        return Ok(match policy {
            ModulePolicy::Keep => VectorSetStep::Keep,
            ModulePolicy::Drop => VectorSetStep::Drop(format!(
                "a vector set: {} has no vector sets (built into Redis 8.0 and later)",
                target.name
            )),
            ModulePolicy::Auto | ModulePolicy::Error => VectorSetStep::Refuse(format!(
                "a vector set, and {} has no vector sets (they are built into Redis 8.0 and \
                 later); --modules drop leaves vector sets out, --modules keep writes them \
                 for a server that loads the vectorset module",
                target.name
            )),
        });
    };
    let Some(set) = m.vector_set() else {
        return Ok(VectorSetStep::Keep);
    };
    let set = set?;
    // Checked whole first: a corrupt value is never copied under a fresh checksum.
    set.validate()?;
    let mut newest = 0;
    for e in set.elements() {
        newest = newest.max(e?.node_version());
    }
    if newest <= node_version {
        return Ok(VectorSetStep::Keep);
    }
    Ok(VectorSetStep::Rewrite(rewrite(m, &set, node_version)?))
}

/// The value with every node re-serialized in `node_version`.
fn rewrite(
    m: &Module<'_>,
    set: &VectorSet<'_>,
    node_version: u8,
) -> Result<Vec<u8>, rdb_parser::Error> {
    let mut out = Vec::with_capacity(m.raw.len() + 16);
    encode::length(&mut out, m.id.0);
    out.extend_from_slice(set.head_raw());
    for e in set.elements() {
        let e = e?;
        out.extend_from_slice(e.strings_raw());
        // Never None here: the target's version is older than the node's.
        let params = e.hnsw_params(node_version).unwrap_or_default();
        module_uint(&mut out, params.len() as u64);
        for p in params {
            module_uint(&mut out, p);
        }
    }
    encode::length(&mut out, rdb_parser::format::module_opcode::EOF);
    Ok(out)
}

/// A module unsigned: opcode 2 and the value as an RDB length.
fn module_uint(out: &mut Vec<u8>, v: u64) {
    encode::length(out, rdb_parser::format::module_opcode::UINT);
    encode::length(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdb_parser::{Item, ParserBuilder, Value};

    fn fixture() -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/servers/redis-8.6/vectorsets.rdb");
        std::fs::read(&p).unwrap_or_default()
    }

    /// Version-0 rewrites of the 8.6 sets decode to the same elements and vectors, with
    /// the same links, and are kept as they are for an 8.6 target.
    #[test]
    fn rewritten_sets_keep_every_element_and_link() {
        let data = fixture();
        let r80 = TargetProfile::named("redis-8.0").cloned();
        let r86 = TargetProfile::named("redis-8.6").cloned();
        let (Some(r80), Some(r86)) = (r80, r86) else {
            panic!("profiles");
        };
        let mut rewritten = 0;
        for item in ParserBuilder::new().parse(&data).into_iter().flatten() {
            let Ok(Item::Key(k)) = item else { continue };
            let Value::Module(m) = &k.value else { continue };
            assert!(matches!(
                plan(m, ModulePolicy::Auto, &r86),
                Ok(VectorSetStep::Keep)
            ));
            let Ok(VectorSetStep::Rewrite(bytes)) = plan(m, ModulePolicy::Drop, &r80) else {
                panic!("not rewritten for 8.0");
            };
            // The rewritten value as a key of a file of its own.
            let mut file = b"REDIS0012\xfe\x00\x07\x01k".to_vec();
            file.extend_from_slice(&bytes);
            file.push(0xff);
            file.extend_from_slice(&[0; 8]);
            let mut p = ParserBuilder::new();
            p.verify_checksum(false);
            let items: Vec<_> = p.parse(&file).into_iter().flatten().collect();
            let Some(Ok(Item::Key(k2))) = items
                .iter()
                .find(|i| !matches!(i, Ok(Item::Header(_)) | Ok(Item::SelectDb(_))))
            else {
                panic!("rewritten value does not parse: {items:?}");
            };
            let Value::Module(m2) = &k2.value else {
                panic!("not a module")
            };
            let (Some(Ok(a)), Some(Ok(b))) = (m.vector_set(), m2.vector_set()) else {
                panic!("not vector sets");
            };
            assert_eq!(b.validate().ok(), Some(a.len()));
            for (x, y) in a.elements().zip(b.elements()) {
                let (Ok(x), Ok(y)) = (x, y) else {
                    panic!("elements")
                };
                assert_eq!(x.name(), y.name());
                assert_eq!(x.attributes(), y.attributes());
                assert_eq!(x.vector().stored(), y.vector().stored());
                assert_eq!(x.vector().to_f32(), y.vector().to_f32());
                assert_eq!((x.level(), x.link_count()), (y.level(), y.link_count()));
                assert_eq!((x.node_version(), y.node_version()), (1, 0));
            }
            // Version 0 is read as it is by an 8.0 target.
            assert!(matches!(
                plan(m2, ModulePolicy::Auto, &r80),
                Ok(VectorSetStep::Keep)
            ));
            rewritten += 1;
        }
        assert_eq!(rewritten, 7);
    }

    #[test]
    fn targets_without_vector_sets_refuse_drop_or_keep_by_policy() {
        let data = fixture();
        let Some(r74) = TargetProfile::named("redis-7.4").cloned() else {
            panic!("profile");
        };
        let mut seen = 0;
        for item in ParserBuilder::new().parse(&data).into_iter().flatten() {
            let Ok(Item::Key(k)) = item else { continue };
            let Value::Module(m) = &k.value else { continue };
            for policy in [ModulePolicy::Auto, ModulePolicy::Error] {
                let step = plan(m, policy, &r74);
                assert!(
                    matches!(&step, Ok(VectorSetStep::Refuse(r)) if r.contains("--modules drop")),
                    "{step:?}"
                );
            }
            assert!(matches!(
                plan(m, ModulePolicy::Drop, &r74),
                Ok(VectorSetStep::Drop(_))
            ));
            assert!(matches!(
                plan(m, ModulePolicy::Keep, &r74),
                Ok(VectorSetStep::Keep)
            ));
            seen += 1;
        }
        assert_eq!(seen, 7);
    }
}
