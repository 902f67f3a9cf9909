//! A file that parses and decodes converts to every target version, and the output holds
//! the same keys with equal values, except what the conversion declared as lost.
#![no_main]

mod common;

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{
    convert, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, Loss, ModulePolicy,
};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false).allow_empty_keys(true);
    // Only inputs whose every value decodes have a meaning to preserve.
    let source = common::keys(data, &builder);
    for version in [9, 10, 11, 12, 80] {
        let Some(profile) = TargetProfile::for_version(version) else {
            continue;
        };
        let mut opts = ConvertOptions::new(profile);
        opts.field_ttls = FieldTtlPolicy::Drop;
        opts.functions = FunctionPolicy::Drop;
        opts.modules = ModulePolicy::Keep;
        opts.dbs = DbPolicy::Keep;
        let mut dropped = HashSet::new();
        let mut ttls_dropped = HashSet::new();
        let mut on_loss = |loss: &Loss<'_>| {
            let id = (loss.db, loss.key.map(<[u8]>::to_vec));
            match loss.action {
                "dropped" => {
                    dropped.insert(id);
                }
                "field_ttls_dropped" => {
                    ttls_dropped.insert(id);
                }
                _ => {}
            }
            Ok(())
        };
        let Ok((out, summary)) =
            convert(data, &builder, &opts, Vec::new(), &mut on_loss, &mut |_| {})
        else {
            continue;
        };
        let Ok(source) = &source else { continue };
        // A key twice in one db is no snapshot a server writes or loads; losses name keys
        // by (db, key), so such inputs cannot be compared.
        let mut ids = HashSet::new();
        if !source.iter().all(|k| ids.insert((k.db, k.key.clone()))) {
            continue;
        }
        let got = common::keys(&out, &builder)
            .unwrap_or_else(|e| panic!("output of {version} parses: {e}"));
        let want: Vec<common::Key> = source
            .iter()
            .filter(|k| !dropped.contains(&(Some(k.db), Some(k.key.clone()))))
            .cloned()
            .map(|mut k| {
                if ttls_dropped.contains(&(Some(k.db), Some(k.key.clone()))) {
                    if let common::Model::Hash(fields) = &mut k.value {
                        fields.iter_mut().for_each(|f| f.2 = None);
                    }
                }
                k
            })
            .collect();
        assert_eq!(got.len() as u64, summary.keys_written);
        assert_eq!(got, want, "converted to {version}");
    }
});
