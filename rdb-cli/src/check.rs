//! `rdbkit check FILE --target PROFILE`: will the target load this snapshot, and if not,
//! what stops it and which flags of `rdbkit convert` deal with it.
//!
//! It runs the conversion pass with every loss accepted into a sink, and tallies the losses:
//! each kind of loss is a reason the file cannot move without it. The file's own version
//! decides whether it loads as is or only after `rdbkit convert`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use rdb_parser::{Function, Item, ParserBuilder, Value};
use rdb_writer::convert::{
    self, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, LossKind, ModulePolicy,
};
use rdb_writer::{ModuleSupport, TargetProfile};

use crate::convert::{remedy, HintFor};
use crate::parts::{KeysOutside, Part};
use serde_json::json;

use crate::Failure;

/// The biggest bulk string a server accepts by default (`proto-max-bulk-len`).
pub const MAX_BULK: u64 = 512 << 20;

/// Problems of the deep walk listed before the rest are only counted.
const MAX_PROBLEMS: usize = 10_000;

/// The module types (and module aux names) of the modules a `Bundled` target has:
/// RedisJSON, RediSearch, RedisBloom (bloom, cuckoo, top-k, count-min, t-digest) and
/// RedisTimeSeries.
pub const BUNDLED_MODULES: &[&str] = &[
    "ReJSON-RL",
    "ft_index0",
    "MBbloom--",
    "MBbloomCF",
    "TopK-TYPE",
    "CMSk-TYPE",
    "TDIS-TYPE",
    "TSDB-TYPE",
];

/// How a finding bears on the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// `rdbkit convert` deals with it and nothing is lost.
    Lossless,
    /// `rdbkit convert` deals with it with a flag that loses something.
    Lossy,
    /// No conversion makes the target load it (corrupt data, or nothing converts it).
    Fatal,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Lossless => "lossless",
            Class::Lossy => "lossy",
            Class::Fatal => "fatal",
        }
    }
}

/// One reason the target will not take the file as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `version`, `field_ttls`, `functions`, `function_format`, `modules`, `dbs`,
    /// `empty_keys`, `duplicate_keys`, `memory`, or for corrupt data the name of the
    /// verify check that fired (`listpack`, `ziplist`, `lzf`, `zipmap-count`, ...).
    pub kind: &'static str,
    pub class: Class,
    pub count: u64,
    pub detail: String,
    /// The first key concerned, if any.
    pub example: Option<Vec<u8>>,
    /// Where the first one is, when known.
    pub offset: Option<u64>,
    /// What fixes it.
    pub fix: String,
}

/// The three answers, with their exit codes, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Exit 0: the target loads the file as it is.
    Loads,
    /// Exit 1: it loads the output of `rdbkit convert` with the flags the findings name.
    AfterConvert,
    /// Exit 3: no conversion makes it load (corrupt data, or something no flag converts).
    CannotLoad,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Loads => 0,
            Outcome::AfterConvert => 1,
            Outcome::CannotLoad => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Loads => "loads",
            Outcome::AfterConvert => "loads_after_convert",
            Outcome::CannotLoad => "cannot_load",
        }
    }
}

/// The pre-flight verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub target: String,
    pub outcome: Outcome,
    /// The file loads on the target exactly as it is.
    pub loads_as_is: bool,
    /// The file loads after `rdbkit convert` with no loss.
    pub loads_after_convert: bool,
    pub findings: Vec<Finding>,
    /// Empty collections, which the target skips on load (Redis 7.0+ and Valkey).
    pub skipped_keys: u64,
    /// Every module the file's module values and module aux data belong to.
    pub modules_required: Vec<String>,
    /// rdbkit's estimate of the memory the data takes once loaded, when `--memory` asked.
    pub memory_estimate: Option<u64>,
}

/// What the caller knows about the target beyond its profile.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The target's memory in bytes.
    pub memory: Option<u64>,
    /// The module types (or module aux names) the target has loaded; `None`: the
    /// profile's (none for self-hosted servers and classic services, [`BUNDLED_MODULES`]
    /// for services with bundled modules).
    pub modules: Option<Vec<String>>,
}

struct Tally {
    findings: BTreeMap<&'static str, Finding>,
}

impl Tally {
    #[allow(clippy::too_many_arguments)]
    fn note(
        &mut self,
        kind: &'static str,
        class: Class,
        key: Option<&[u8]>,
        offset: Option<u64>,
        detail: impl FnOnce() -> String,
        fix: impl FnOnce() -> String,
    ) {
        let f = self.findings.entry(kind).or_insert_with(|| Finding {
            kind,
            class,
            count: 0,
            detail: detail(),
            example: None,
            offset,
            fix: fix(),
        });
        f.count += 1;
        if f.example.is_none() {
            f.example = key.map(<[u8]>::to_vec);
        }
    }
}

/// Whether a target of this version skips empty collections on load (Redis 7.0 and
/// later, Valkey) rather than refusing or mis-loading them.
fn skips_empty_keys(v: rdb_parser::Version) -> bool {
    v.magic == rdb_parser::Magic::Valkey || v.number >= 10
}

/// Checks `data` against `profile`.
pub fn check(
    data: &[u8],
    profile: &TargetProfile,
    options: &CheckOptions,
) -> Result<Verdict, Failure> {
    check_in(data, None, profile, options)
}

/// [`check`] for one part of several: with the slot ranges its manifest gives, keys
/// outside them are an `outside_slots` finding (a cluster node loading the part does not
/// own them).
pub fn check_part(
    data: &[u8],
    part: &Part,
    profile: &TargetProfile,
    options: &CheckOptions,
) -> Result<Verdict, Failure> {
    check_in(data, Some(part), profile, options)
}

fn check_in(
    data: &[u8],
    part: Option<&Part>,
    profile: &TargetProfile,
    options: &CheckOptions,
) -> Result<Verdict, Failure> {
    let source = rdb_parser::header(data)?;
    let mut tally = Tally {
        findings: BTreeMap::new(),
    };
    // 1. What the loader's deep sanitization refuses, as verify finds it.
    let report = match part {
        Some(part) => crate::verify::verify_part(data, part, MAX_PROBLEMS, |_| {}),
        None => crate::verify::verify_with(data, MAX_PROBLEMS, |_| {}),
    };
    tally.sanitizer(&report, profile);
    if let (Some(part), Some(outside)) = (part, &report.outside_slots) {
        tally.outside_slots(part, outside);
    }
    // 2. What the loader checks that the deep walk does not, and module names.
    let mut loaded = loader_pass(data, profile, options, &mut tally);
    // 3. What the target's format cannot hold: a conversion pass with every loss accepted.
    let skipped_keys = if report.complete {
        conversion_losses(data, profile, &mut tally)?
    } else {
        0
    };
    let mut findings: Vec<Finding> = tally.findings.into_values().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.class));
    findings.extend(loaded.bulk_size());
    let memory_estimate = match options.memory {
        Some(mem) => memory_estimate(data).inspect(|&need| {
            findings.extend(memory_finding(need, mem));
        }),
        None => None,
    };
    if !loads_version(source, profile.version) {
        findings.insert(0, version_finding(source, profile));
    }
    Ok(Verdict::new(
        profile,
        findings,
        skipped_keys,
        loaded.required.into_iter().collect(),
        memory_estimate,
    ))
}

impl Tally {
    /// Step 1: the errors of verify's deep walk. Duplicate keys are lossy (a flag keeps
    /// one copy), the rest fatal: corrupt data no conversion mends.
    fn sanitizer(&mut self, report: &crate::verify::Report, profile: &TargetProfile) {
        for p in &report.problems {
            use crate::verify::Check;
            let class = match (p.check, p.severity) {
                // A compressed string declaring length 0: refused by older loaders.
                _ if p.is_empty_lzf() && refuses_empty_lzf(profile) => Class::Fatal,
                (_, crate::verify::Severity::Warning) => continue,
                // A part that is not the file its manifest records still loads; where its
                // keys belong is judged by their slots (outside_slots), not here.
                (Check::Manifest, _) => continue,
                // Skipped by 7.0+, refused by 6.x: the conversion pass counts them.
                (Check::EmptyCollection, _) => continue,
                (Check::DuplicateKey, _) => Class::Lossy,
                _ => Class::Fatal,
            };
            let kind = if p.check == Check::DuplicateKey {
                "duplicate_keys"
            } else {
                p.check.name()
            };
            self.note(
                kind,
                class,
                p.key.as_deref(),
                Some(p.offset),
                || p.message.clone(),
                || match class {
                    Class::Fatal if p.is_empty_lzf() => {
                        "none: this target refuses it; Redis 6.2+ and Valkey load it".into()
                    }
                    Class::Fatal => {
                        "none: the data is corrupt; restore it from a sound copy".into()
                    }
                    _ => format!(
                        "rdbkit convert {}",
                        remedy(LossKind::DuplicateKey, HintFor::Convert)
                    ),
                },
            );
        }
        if report.omitted() > 0 {
            self.note(
                "more_problems",
                Class::Fatal,
                None,
                None,
                || {
                    format!(
                        "{} more problems were counted but not listed",
                        report.omitted()
                    )
                },
                || "see rdbkit verify".into(),
            );
        }
    }

    /// Keys outside the part's slot ranges: a cluster import of the parts as they are
    /// would put them on nodes that do not own them. Re-splitting places every key, and
    /// loses nothing.
    fn outside_slots(&mut self, part: &Part, outside: &KeysOutside) {
        let (Some(first), Some(ranges)) = (outside.examples.first(), &part.slots) else {
            return;
        };
        self.findings.insert(
            "outside_slots",
            Finding {
                kind: "outside_slots",
                class: Class::Lossless,
                count: outside.count,
                detail: format!(
                    "keys that hash to slots outside this part's ranges in the manifest ({}), \
                     which the node loading it does not own: {}",
                    crate::parts::ranges_text(ranges),
                    outside.examples_text()
                ),
                example: Some(first.key.clone()),
                offset: Some(first.offset),
                fix: "rdbkit merge the parts into one file, then rdbkit convert --shards (or \
                      rdbkit restore --cluster, which sends each key to its slot's node)"
                    .into(),
            },
        );
    }
}

/// What the loader pass found besides its findings.
struct Loaded {
    /// Every module the file's module values and aux data belong to.
    required: BTreeSet<String>,
    /// String values over [`MAX_BULK`]: how many, and the first key.
    big: (u64, Option<Vec<u8>>),
}

impl Loaded {
    /// Not a load problem (RDB loading has no bulk limit), but RESTORE and
    /// redis-cli --pipe imports of these keys hit it.
    fn bulk_size(&mut self) -> Option<Finding> {
        let (count, example) = std::mem::take(&mut self.big);
        (count > 0).then(|| Finding {
            kind: "bulk_size",
            class: Class::Lossless,
            count,
            detail: format!(
                "string values over {MAX_BULK} bytes, the default proto-max-bulk-len: an RDB load \
                 takes them, a RESTORE or command import does not"
            ),
            example,
            offset: None,
            fix: "load the RDB file, or raise proto-max-bulk-len on the target".into(),
        })
    }
}

/// Step 2: the loader rules the deep walk does not apply, module names, and strings over
/// the bulk limit, in one pass; modules the target lacks become a finding.
fn loader_pass(
    data: &[u8],
    profile: &TargetProfile,
    options: &CheckOptions,
    tally: &mut Tally,
) -> Loaded {
    let mut target_modules: Vec<String> = match (&options.modules, profile.modules) {
        (Some(m), _) => m.clone(),
        (None, ModuleSupport::Bundled) => BUNDLED_MODULES.iter().map(|s| s.to_string()).collect(),
        (None, _) => Vec::new(),
    };
    // Vector sets are built into Redis 8.0+, whatever modules the operator loads.
    if profile.vector_sets.is_some() {
        target_modules.push("vectorset".into());
    }
    let mut required = BTreeSet::new();
    let mut big = (0u64, None::<Vec<u8>>);
    let mut loader = LoaderRules {
        tally,
        target_modules: &target_modules,
        required: &mut required,
        target_functions: profile.functions(),
        reads_pre_ga: profile.version == rdb_parser::Version::redis(10),
        missing: MissingModules::default(),
    };
    if let Ok(items) = lenient_reader().parse(data) {
        for item in items {
            // A broken extent was reported by the deep walk.
            let Ok(item) = item else { break };
            loader.item(&item);
            if let Item::Key(e) = &item {
                if let Value::String(s) = &e.value {
                    if s.len() as u64 > MAX_BULK {
                        big.0 += 1;
                        big.1.get_or_insert_with(|| e.key.to_vec());
                    }
                }
            }
        }
    }
    let missing = loader.missing;
    if let Some(f) = missing.finding(profile.name) {
        tally.findings.insert("modules", f);
    }
    Loaded { required, big }
}

/// The parser of the loader and conversion passes: the deep walk reports checksums and
/// empty collections, so these passes read past them.
fn lenient_reader() -> ParserBuilder {
    let mut reader = ParserBuilder::new();
    reader.verify_checksum(false).allow_empty_keys(true);
    reader
}

/// Step 3: a conversion pass with every loss accepted, each kind of loss a finding.
/// Returns the empty collections the target skips on load (Redis 7.0+ and Valkey), which
/// are no finding.
fn conversion_losses(
    data: &[u8],
    profile: &TargetProfile,
    tally: &mut Tally,
) -> Result<u64, Failure> {
    let single_db = profile.databases == Some(1);
    let mut opts = ConvertOptions::new(profile.clone());
    opts.field_ttls = FieldTtlPolicy::Drop;
    opts.stream_idmp = rdb_writer::convert::StreamIdmpPolicy::Drop;
    opts.functions = FunctionPolicy::Drop;
    // Modules are judged by name in the loader pass.
    opts.modules = ModulePolicy::Keep;
    opts.dbs = if single_db {
        DbPolicy::DropOthers
    } else {
        DbPolicy::Keep
    };
    let mut losses: BTreeMap<LossKind, (u64, Option<Vec<u8>>, String)> = BTreeMap::new();
    let mut note = |kind: LossKind, key: Option<&[u8]>, reason: &str| {
        let e = losses.entry(kind).or_insert((0, None, reason.to_string()));
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
        &lenient_reader(),
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
        // Reported by the deep walk.
        Err(convert::ConvertError::Parse(_)) => {}
        Err(convert::ConvertError::Io(e)) => return Err(Failure::Io(e)),
    }
    let mut skipped_keys = 0u64;
    for (kind, (count, example, reason)) in losses {
        if kind == LossKind::EmptyKey && skips_empty_keys(profile.version) {
            skipped_keys += count;
            continue;
        }
        let class = match kind {
            LossKind::EmptyKey | LossKind::Databases if !single_db => Class::Lossless,
            LossKind::EmptyKey => Class::Lossless,
            LossKind::Type | LossKind::FieldExpiryRange => Class::Fatal,
            _ => Class::Lossy,
        };
        let detail = describe(kind, reason, profile.name, single_db);
        let f = tally.findings.entry(finding_kind(kind)).or_insert(Finding {
            kind: finding_kind(kind),
            class,
            count: 0,
            detail,
            example: None,
            offset: None,
            fix: format!("rdbkit convert {}", remedy(kind, HintFor::Convert)),
        });
        f.count += count;
        if f.example.is_none() {
            f.example = example;
        }
    }
    Ok(skipped_keys)
}

/// rdbkit's estimate of the memory the data takes once loaded (the model of `stats`);
/// `None` when the file cannot be read to its end.
fn memory_estimate(data: &[u8]) -> Option<u64> {
    let stats = crate::stats::collect::collect(
        data,
        &lenient_reader(),
        &crate::stats::collect::Options::default(),
        |_| {},
    );
    stats.ok().map(|s| s.memory())
}

/// The memory finding when the estimate `need` exceeds the target's `mem`.
fn memory_finding(need: u64, mem: u64) -> Option<Finding> {
    (need > mem).then(|| Finding {
        kind: "memory",
        class: Class::Fatal,
        count: 1,
        detail: format!(
            "rdbkit estimates the data at {need} bytes of memory once loaded, and the \
             target has {mem}"
        ),
        example: None,
        offset: None,
        fix: "a bigger target, or rdbkit convert with filters (--exclude, --db, \
              --expired drop) that leave keys out"
            .into(),
    })
}

/// The file's format is newer than (or foreign to) what the target reads.
fn version_finding(source: rdb_parser::Version, profile: &TargetProfile) -> Finding {
    Finding {
        kind: "version",
        class: Class::Lossless,
        count: 1,
        detail: format!(
            "the file is {source}, and {} reads up to {}",
            profile.name, profile.version
        ),
        example: None,
        offset: None,
        fix: format!("rdbkit convert --target {}", profile.name),
    }
}

impl Verdict {
    /// The verdict of `findings`: the worst blocking one decides (`bulk_size` does not
    /// block an RDB load).
    fn new(
        profile: &TargetProfile,
        findings: Vec<Finding>,
        skipped_keys: u64,
        modules_required: Vec<String>,
        memory_estimate: Option<u64>,
    ) -> Verdict {
        let blocking = |f: &&Finding| f.kind != "bulk_size";
        let worst = findings.iter().filter(blocking).map(|f| f.class).max();
        let outcome = match worst {
            None => Outcome::Loads,
            Some(Class::Fatal) => Outcome::CannotLoad,
            Some(_) => Outcome::AfterConvert,
        };
        Verdict {
            target: profile.name.to_string(),
            outcome,
            loads_as_is: outcome == Outcome::Loads,
            loads_after_convert: worst.is_none_or(|c| c == Class::Lossless),
            findings,
            skipped_keys,
            modules_required,
            memory_estimate,
        }
    }
}

fn describe(kind: LossKind, reason: String, name: &str, single_db: bool) -> String {
    match kind {
        LossKind::FieldTtls | LossKind::ExpiredFields => {
            format!("hashes whose fields have their own TTL, which {name} cannot store")
        }
        LossKind::Functions => format!("function libraries, which {name} cannot hold"),
        LossKind::Databases if single_db => {
            format!("keys outside db 0, and {name} keeps only db 0")
        }
        LossKind::EmptyKey => {
            format!("empty collections, which {name} refuses or loads broken")
        }
        LossKind::StreamIdmp => {
            format!("streams with idempotent-producer (IDMP) state, which {name} cannot store")
        }
        _ => reason,
    }
}

/// The loader rules the deep walk does not apply, item by item.
struct LoaderRules<'a> {
    tally: &'a mut Tally,
    target_modules: &'a [String],
    required: &'a mut BTreeSet<String>,
    target_functions: bool,
    /// The target is Redis 7.0 (RDB 10), whose loader still reads release-candidate
    /// function libraries (checked against 7.0.15: docs/check-oracle.md).
    reads_pre_ga: bool,
    missing: MissingModules,
}

impl LoaderRules<'_> {
    fn item(&mut self, item: &Item<'_>) {
        match item {
            Item::Function(Function::PreGa { .. })
                if self.target_functions && !self.reads_pre_ga =>
            {
                // Redis 7.0 reads the release-candidate form; 7.2+ and Valkey refuse it.
                self.tally.note(
                    "function_format",
                    Class::Lossless,
                    None,
                    None,
                    || {
                        "function libraries in the Redis 7.0 release-candidate format, which \
                         servers after 7.0 refuse"
                            .into()
                    },
                    || "rdbkit convert rewrites them as libraries".into(),
                );
            }
            Item::ModuleAux(m) => self.module(m.id.name(), None, true),
            Item::Key(e) => {
                if let Value::Module(m) = &e.value {
                    self.module(m.id.name(), Some(&e.key), false);
                }
                if let Some(problem) = loader_problem(e) {
                    let (kind, message) = problem;
                    self.tally.note(
                        kind,
                        Class::Fatal,
                        Some(&e.key),
                        Some(e.offset),
                        || format!("{message} (key at byte {})", e.offset),
                        || "none: the data is corrupt; restore it from a sound copy".into(),
                    );
                }
            }
            _ => {}
        }
    }

    fn module(&mut self, module: String, key: Option<&[u8]>, aux: bool) {
        if !self.target_modules.contains(&module) {
            let m = &mut self.missing;
            m.count += 1;
            m.aux |= aux;
            if m.example.is_none() {
                m.example = key.map(<[u8]>::to_vec);
            }
            m.names.insert(module.clone());
        }
        self.required.insert(module);
    }
}

/// Module values and aux data no module of the target claims.
#[derive(Default)]
struct MissingModules {
    names: BTreeSet<String>,
    count: u64,
    aux: bool,
    example: Option<Vec<u8>>,
}

impl MissingModules {
    /// The `modules` finding, when the target lacks some module (`target`: its name).
    fn finding(self, target: &str) -> Option<Finding> {
        if self.names.is_empty() {
            return None;
        }
        let names: Vec<String> = self.names.into_iter().collect();
        Some(Finding {
            kind: "modules",
            class: Class::Lossy,
            count: self.count,
            detail: format!(
                "module values or module aux data of {}, and {target} has no such module (its \
                 loader refuses what no loaded module claims)",
                names.join(", ")
            ),
            example: self.example,
            offset: None,
            fix: format!(
                "rdbkit convert {}",
                remedy(
                    if self.aux {
                        LossKind::ModuleAux
                    } else {
                        LossKind::ModuleValue
                    },
                    HintFor::Convert
                )
            ),
        })
    }
}

/// What loaders refuse in a value that the deep walk of verify lets through: a check name
/// and a message.
pub fn loader_problem(e: &rdb_parser::Entry<'_>) -> Option<(&'static str, String)> {
    zipmap_count(e).or_else(|| empty_plain_node(e))
}

/// A zipmap whose header count (below 254) is not its number of pairs: Redis 6.2+ refuse it.
fn zipmap_count(e: &rdb_parser::Entry<'_>) -> Option<(&'static str, String)> {
    if e.type_id != rdb_parser::format::type_id::HASH_ZIPMAP {
        return None;
    }
    let (s, _) = rdb_parser::RdbString::read(e.raw_value)?;
    let zm = s.to_bytes().ok()?;
    let (&declared, mut rest) = zm.split_first()?;
    // Each entry: length, bytes (key); length, free byte, bytes, free bytes (value).
    let len = |r: &mut &[u8]| -> Option<usize> {
        let (&b, tail) = r.split_first()?;
        *r = tail;
        match b {
            0..=253 => Some(b as usize),
            254 => {
                let (n, tail) = r.split_first_chunk::<4>()?;
                *r = tail;
                Some(u32::from_le_bytes(*n) as usize)
            }
            _ => None,
        }
    };
    let mut pairs = 0usize;
    loop {
        if rest.first() == Some(&0xFF) {
            break;
        }
        let k = len(&mut rest)?;
        rest = rest.get(k..)?;
        let v = len(&mut rest)?;
        let (&free, tail) = rest.split_first()?;
        rest = tail.get(v + free as usize..)?;
        pairs += 1;
    }
    (declared < 254 && declared as usize != pairs).then(|| {
        (
            "zipmap-count",
            format!("a zipmap declares {declared} pairs and holds {pairs}"),
        )
    })
}

/// A quicklist v2 node stored as PLAIN with no bytes.
fn empty_plain_node(e: &rdb_parser::Entry<'_>) -> Option<(&'static str, String)> {
    if e.type_id != rdb_parser::format::type_id::LIST_QUICKLIST_2 {
        return None;
    }
    let mut rest = e.raw_value;
    let nodes = read_len(&mut rest)?;
    for i in 0..nodes {
        let container = read_len(&mut rest)?;
        let (s, tail) = rdb_parser::RdbString::read(rest)?;
        rest = tail;
        if container == 1 && s.is_empty() {
            return Some((
                "quicklist-plain-node",
                format!("quicklist node {i} is a PLAIN node of 0 bytes"),
            ));
        }
    }
    None
}

/// An RDB length (not a special encoding).
fn read_len(r: &mut &[u8]) -> Option<u64> {
    let (&b, tail) = r.split_first()?;
    *r = tail;
    match b >> 6 {
        0 => Some(u64::from(b & 0x3F)),
        1 => {
            let (&b2, tail) = r.split_first()?;
            *r = tail;
            Some((u64::from(b & 0x3F) << 8) | u64::from(b2))
        }
        2 if b == 0x80 => {
            let (n, tail) = r.split_first_chunk::<4>()?;
            *r = tail;
            Some(u64::from(u32::from_be_bytes(*n)))
        }
        2 if b == 0x81 => {
            let (n, tail) = r.split_first_chunk::<8>()?;
            *r = tail;
            Some(u64::from_be_bytes(*n))
        }
        _ => None,
    }
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
            "verdict": self.outcome.as_str(),
            "exit_code": self.outcome.exit_code(),
            "loads_as_is": self.loads_as_is,
            "loads_after_convert": self.loads_after_convert,
            "skipped_keys": self.skipped_keys,
            "modules_required": self.modules_required,
            "memory_estimate": self.memory_estimate,
            "findings": self.findings.iter().map(|f| json!({
                "kind": f.kind,
                "class": f.class.as_str(),
                "count": f.count,
                "detail": f.detail,
                "example_key": f.example.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "offset": f.offset,
                "fix": f.fix,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let verdict = phrase(self.outcome, self.loads_after_convert);
        writeln!(out, "{}: {verdict}", self.target)?;
        if self.skipped_keys > 0 {
            writeln!(
                out,
                "- keys the target skips on load: {} empty collections",
                self.skipped_keys
            )?;
        }
        // Vector sets are built into the targets that have them: no module to load there.
        let built_in = TargetProfile::named(&self.target).is_some_and(|p| p.vector_sets.is_some());
        let to_load: Vec<&str> = self
            .modules_required
            .iter()
            .map(String::as_str)
            .filter(|m| !(built_in && *m == "vectorset"))
            .collect();
        if !to_load.is_empty() {
            writeln!(
                out,
                "- the target must have these modules: {}",
                to_load.join(", ")
            )?;
        }
        if let Some(m) = self.memory_estimate {
            writeln!(out, "- memory once loaded (rdbkit's estimate): {m} bytes")?;
        }
        for f in &self.findings {
            write!(out, "- {} ({}, {}): ", f.kind, f.class.as_str(), f.count)?;
            write!(out, "{}", f.detail)?;
            if let Some(k) = &f.example {
                let mut shown = String::new();
                let _ = rdb_parser::error::write_escaped(&mut shown, k.get(..64).unwrap_or(k));
                write!(out, "; e.g. key \"{shown}\"")?;
            }
            writeln!(out, "\n  fix: {}", f.fix)?;
        }
        Ok(())
    }
}

/// The verdict in words.
fn phrase(outcome: Outcome, loads_after_convert: bool) -> &'static str {
    match outcome {
        Outcome::Loads => "loads as it is",
        Outcome::AfterConvert if loads_after_convert => {
            "loads after `rdbkit convert`, with nothing lost"
        }
        Outcome::AfterConvert => {
            "loads after `rdbkit convert` with the flags below, which lose data"
        }
        Outcome::CannotLoad => "cannot load, and no conversion changes that",
    }
}

/// [`check_part`], for a run over several files: a part whose header cannot be read is
/// a `structure` finding of its verdict (it cannot load), not the end of the run.
pub fn check_one_of_several(
    data: &[u8],
    part: &Part,
    profile: &TargetProfile,
    options: &CheckOptions,
) -> Result<PartVerdict, Failure> {
    let verdict = match check_part(data, part, profile, options) {
        Err(Failure::Data(e)) => {
            let unreadable = Finding {
                kind: "structure",
                class: Class::Fatal,
                count: 1,
                detail: e.to_string(),
                example: None,
                offset: Some(e.offset()),
                fix: "none: the data is corrupt; restore it from a sound copy".into(),
            };
            Verdict::new(profile, vec![unreadable], 0, Vec::new(), None)
        }
        other => other?,
    };
    Ok(PartVerdict {
        part: part.clone(),
        verdict,
    })
}

/// One part and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartVerdict {
    pub part: Part,
    pub verdict: Verdict,
}

/// The verdicts of several parts for one target: the whole's is the worst part's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    pub target: String,
    pub parts: Vec<PartVerdict>,
}

impl Verdicts {
    /// The worst part's outcome (its exit code is the command's).
    pub fn outcome(&self) -> Outcome {
        self.parts
            .iter()
            .map(|p| p.verdict.outcome)
            .max()
            .unwrap_or(Outcome::Loads)
    }

    pub fn loads_after_convert(&self) -> bool {
        self.parts.iter().all(|p| p.verdict.loads_after_convert)
    }

    /// The parts whose outcome is the whole's, when it is not `loads`.
    pub fn deciding(&self) -> Vec<&Part> {
        let worst = self.outcome();
        if worst == Outcome::Loads {
            return Vec::new();
        }
        self.parts
            .iter()
            .filter(|p| p.verdict.outcome == worst)
            .map(|p| &p.part)
            .collect()
    }

    /// Keys outside their part's slot ranges, over all parts.
    pub fn keys_outside_slots(&self) -> u64 {
        let outside = |p: &PartVerdict| {
            p.verdict
                .findings
                .iter()
                .filter(|f| f.kind == "outside_slots")
                .map(|f| f.count)
                .sum::<u64>()
        };
        self.parts.iter().map(outside).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        let outcome = self.outcome();
        let modules: BTreeSet<&String> = self
            .parts
            .iter()
            .flat_map(|p| &p.verdict.modules_required)
            .collect();
        let memory: Option<u64> = self.parts.iter().map(|p| p.verdict.memory_estimate).sum();
        let parts: Vec<serde_json::Value> = self
            .parts
            .iter()
            .map(|p| {
                let mut v = p.verdict.to_json();
                if let Some(map) = v.as_object_mut() {
                    map.insert("file".into(), p.part.name().into());
                    map.insert("slots".into(), p.part.slots_json());
                }
                v
            })
            .collect();
        json!({
            "target": self.target,
            "verdict": outcome.as_str(),
            "exit_code": outcome.exit_code(),
            "loads_as_is": outcome == Outcome::Loads,
            "loads_after_convert": self.loads_after_convert(),
            "skipped_keys": self.parts.iter().map(|p| p.verdict.skipped_keys).sum::<u64>(),
            "modules_required": modules,
            "memory_estimate": memory,
            "keys_outside_slots": self.keys_outside_slots(),
            "deciding_parts": self.deciding().iter().map(|p| p.name()).collect::<Vec<_>>(),
            "parts": parts,
        })
    }

    /// Each part's verdict under its name, then the whole's, naming the parts that decide
    /// it.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for p in &self.parts {
            writeln!(out, "{}", p.part.heading())?;
            p.verdict.write_text(out)?;
        }
        let deciding: Vec<String> = self.deciding().iter().map(|p| p.shown()).collect();
        let which = if deciding.is_empty() {
            String::new()
        } else if deciding.len() == self.parts.len() {
            " (every part)".to_string()
        } else {
            format!(" (because of {})", deciding.join(", "))
        };
        writeln!(
            out,
            "{} parts, {}: {}{which}",
            self.parts.len(),
            self.target,
            phrase(self.outcome(), self.loads_after_convert())
        )
    }
}

/// Whether the target's loader refuses an LZF string declaring length 0 (Redis 6.0 and
/// older, and the services running them); 6.2+ and Valkey load it as the empty string.
pub fn refuses_empty_lzf(profile: &TargetProfile) -> bool {
    profile.before_redis_6_2()
}
