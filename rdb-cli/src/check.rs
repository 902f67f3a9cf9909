//! `rdbkit check FILE --target PROFILE`: will the target load this snapshot, and if not,
//! what stops it and which flags of `rdbkit convert` deal with it.
//!
//! It runs the conversion pass with every loss accepted into a sink, and tallies the losses:
//! each kind of loss is a reason the file cannot move without it. The file's own version
//! decides whether it loads as is or only after `rdbkit convert`.

use std::collections::BTreeMap;
use std::io::Write;

use rdb_parser::{Item, ParserBuilder, Value};
use rdb_writer::convert::{
    self, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, LossKind, ModulePolicy,
};
use rdb_writer::TargetProfile;
use serde_json::json;

use crate::Failure;

/// The biggest bulk string a server accepts by default (`proto-max-bulk-len`).
pub const MAX_BULK: u64 = 512 << 20;

/// One reason the target will not take the file as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `version`, `field_ttls`, `functions`, `modules`, `dbs`, `empty_keys`, `bulk_size`,
    /// `memory`.
    pub kind: &'static str,
    pub count: u64,
    pub detail: String,
    /// The first key concerned, if any.
    pub example: Option<Vec<u8>>,
    /// What fixes it.
    pub fix: String,
}

/// The pre-flight verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub target: String,
    /// The file loads on the target exactly as it is.
    pub loads_as_is: bool,
    /// The file loads after `rdbkit convert` with no loss.
    pub loads_after_convert: bool,
    pub findings: Vec<Finding>,
}

/// Checks `data` against `profile`; `memory` is the target's memory in bytes, if known.
pub fn check(
    data: &[u8],
    parser: &ParserBuilder,
    profile: &TargetProfile,
    memory: Option<u64>,
) -> Result<Verdict, Failure> {
    let source = rdb_parser::header(data)?;
    let mut opts = ConvertOptions::new(profile.clone());
    opts.field_ttls = FieldTtlPolicy::Drop;
    opts.functions = FunctionPolicy::Drop;
    opts.modules = match profile.modules {
        rdb_writer::ModuleSupport::None => ModulePolicy::Drop,
        _ => ModulePolicy::Keep,
    };
    let single_db = profile.databases == Some(1);
    opts.dbs = if single_db {
        DbPolicy::DropOthers
    } else {
        DbPolicy::Keep
    };
    let mut tally: BTreeMap<LossKind, (u64, Option<Vec<u8>>, String)> = BTreeMap::new();
    let mut note = |kind: LossKind, key: Option<&[u8]>, reason: &str| {
        let e = tally.entry(kind).or_insert((0, None, reason.to_string()));
        e.0 += 1;
        if e.1.is_none() {
            e.1 = key.map(<[u8]>::to_vec);
        }
    };
    let mut on_loss = |l: &convert::Loss<'_>| -> std::io::Result<()> {
        note(l.kind, l.key, &l.reason);
        Ok(())
    };
    let result = convert::convert(
        data,
        parser,
        &opts,
        std::io::sink(),
        &mut on_loss,
        &mut |_| {},
    );
    match result {
        Ok(_) => {}
        // A database beyond the target's count stops the pass: a finding, not a failure.
        Err(convert::ConvertError::Unrepresentable {
            key, reason, kind, ..
        }) => note(kind, key.as_deref(), &reason),
        Err(convert::ConvertError::Parse(e)) => return Err(Failure::Data(e)),
        Err(convert::ConvertError::Io(e)) => return Err(Failure::Io(e)),
    }
    // Values larger than a bulk string the target accepts.
    let mut big = (0u64, None::<Vec<u8>>);
    for item in ParserBuilder::new().verify_checksum(false).parse(data)? {
        if let Item::Key(e) = item? {
            if let Value::String(s) = &e.value {
                if s.len() as u64 > MAX_BULK {
                    big.0 += 1;
                    big.1.get_or_insert_with(|| e.key.to_vec());
                }
            }
        }
    }
    let name = profile.name;
    let describe = |kind: LossKind, reason: String| -> String {
        match kind {
            LossKind::FieldTtls | LossKind::ExpiredFields => {
                format!("hashes whose fields have their own TTL, which {name} cannot store")
            }
            LossKind::Functions => format!("function libraries, which {name} cannot hold"),
            LossKind::ModuleValue | LossKind::ModuleAux => {
                format!("module values or module data, and {name} has no modules")
            }
            LossKind::Databases if single_db => {
                format!("keys outside db 0, and {name} keeps only db 0")
            }
            LossKind::EmptyKey => "empty collections, which servers skip or refuse".into(),
            _ => reason,
        }
    };
    let mut findings: Vec<Finding> = tally
        .into_iter()
        .map(|(kind, (count, example, reason))| Finding {
            kind: finding_kind(kind),
            count,
            detail: describe(kind, reason),
            example,
            fix: format!("rdbkit convert {}", crate::convert::remedy(kind)),
        })
        .collect();
    if big.0 > 0 {
        findings.push(Finding {
            kind: "bulk_size",
            count: big.0,
            detail: format!("string values over {MAX_BULK} bytes, the default proto-max-bulk-len"),
            example: big.1,
            fix: "raise proto-max-bulk-len on the target, or leave the keys out with --max-bytes"
                .into(),
        });
    }
    if let Some(mem) = memory.filter(|&m| (data.len() as u64) > m) {
        findings.push(Finding {
            kind: "memory",
            count: 1,
            detail: format!(
                "the snapshot is {} bytes and the target has {mem}: its data takes more memory than the file",
                data.len()
            ),
            example: None,
            fix: "a bigger target, or filters that leave keys out".into(),
        });
    }
    let version_ok = loads_version(source, profile.version);
    let convertible = findings.is_empty();
    if !version_ok {
        findings.insert(
            0,
            Finding {
                kind: "version",
                count: 1,
                detail: format!(
                    "the file is {source}, and {} reads up to {}",
                    profile.name, profile.version
                ),
                example: None,
                fix: format!("rdbkit convert --target {}", profile.name),
            },
        );
    }
    Ok(Verdict {
        target: profile.name.to_string(),
        loads_as_is: version_ok && convertible,
        loads_after_convert: convertible,
        findings,
    })
}

/// The finding names of the JSON contract, per loss kind.
fn finding_kind(kind: LossKind) -> &'static str {
    match kind {
        LossKind::FieldTtls | LossKind::ExpiredFields => "field_ttls",
        LossKind::ModuleValue | LossKind::ModuleAux => "modules",
        LossKind::Databases | LossKind::ClusterDatabases => "dbs",
        other => other.as_str(),
    }
}

/// Whether a server reading `target` loads a file written as `source`: Redis reads its
/// own versions up to its own; Valkey 9 also reads `REDIS` files up to 11 (and, strictly,
/// not Redis 7.4's 12); no Redis reads `VALKEY` files.
pub fn loads_version(source: rdb_parser::Version, target: rdb_parser::Version) -> bool {
    use rdb_parser::Magic::{Redis, Valkey};
    match (source.magic, target.magic) {
        (Redis, Redis) | (Valkey, Valkey) => source.number <= target.number,
        (Redis, Valkey) => source.number <= 11,
        (Valkey, Redis) => false,
    }
}

impl Verdict {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "target": self.target,
            "loads_as_is": self.loads_as_is,
            "loads_after_convert": self.loads_after_convert,
            "findings": self.findings.iter().map(|f| json!({
                "kind": f.kind,
                "count": f.count,
                "detail": f.detail,
                "example_key": f.example.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "fix": f.fix,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let verdict = if self.loads_as_is {
            "loads as it is"
        } else if self.loads_after_convert {
            "loads after `rdbkit convert`, with nothing lost"
        } else {
            "does not load without losses"
        };
        writeln!(out, "{}: {verdict}", self.target)?;
        for f in &self.findings {
            write!(out, "- {} ({}): {}", f.kind, f.count, f.detail)?;
            if let Some(k) = &f.example {
                write!(out, "; e.g. key \"{}\"", String::from_utf8_lossy(k))?;
            }
            writeln!(out, "\n  fix: {}", f.fix)?;
        }
        Ok(())
    }
}
