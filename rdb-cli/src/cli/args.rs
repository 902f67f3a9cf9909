//! The arguments several subcommands share (reading, filters, conversion policies,
//! cluster split) and their resolution into the library's option structs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rdb_cli::Failure;
use rdb_parser::ParserBuilder;

use super::values::{parse_db_map, parse_duration_ms, resolve_now};
use super::{unknown_target, usage};

/// `--format resp|restore` options.
#[derive(Args)]
#[command(next_help_heading = "RESP output (--format resp|restore)")]
pub struct CommandArgs {
    /// The server that will run the commands: payload version for --format restore, and
    /// which commands exist (HPEXPIREAT, XSETID ENTRIESADDED) for --format resp.
    /// Default: the snapshot's own version.
    #[arg(long, conflicts_with = "rdb_version")]
    pub target: Option<String>,
    /// A bare format version instead of a profile: 9, 10, 11, 12, 13 or 80.
    #[arg(long)]
    pub rdb_version: Option<u32>,
    /// RESTORE ... REPLACE, or DEL before each key's plain commands.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub losses: LossArgs,
}

/// What to do with what the target cannot hold: the loss policies of every command that
/// writes values for a target (convert, merge, export's RESP formats, restore), declared
/// once. Each refusal names the flag that allows the loss.
#[derive(Args)]
pub struct LossArgs {
    /// Hash fields with their own TTL, for a target without field TTLs (Redis < 7.4,
    /// Valkey < 9): stop with an error, make them persistent, or also leave out the
    /// fields already expired.
    #[arg(long, value_enum, default_value_t = FieldTtls::Error)]
    pub field_ttls: FieldTtls,
    /// Streams with idempotent-producer (IDMP) state (Redis 8.6), for a target without it:
    /// stop with an error naming the key, or write the stream without that state (each
    /// such stream is reported).
    #[arg(long, value_enum, default_value_t = StreamIdmp::Error)]
    pub stream_idmp: StreamIdmp,
    /// Function libraries, for a target without functions (Redis < 7.0).
    #[arg(long, value_enum, default_value_t = Functions::Error)]
    pub functions: Functions,
}

impl LossArgs {
    /// Sets these policies in `opts`.
    pub fn apply(&self, opts: &mut rdb_writer::convert::ConvertOptions) {
        opts.field_ttls = self.field_ttls.policy();
        opts.stream_idmp = self.stream_idmp.policy();
        opts.functions = self.functions.policy();
    }
}

/// Options shared by convert and merge.
#[derive(Args)]
pub struct CommonArgs {
    /// The file to write; it appears only when the conversion succeeds. With --shards,
    /// --slots or --cluster-nodes: a directory that receives shard-N.rdb files and
    /// manifest.json, all together or none.
    #[arg(short, long)]
    pub output: PathBuf,
    /// The server or service that will load the output (see `rdbkit targets`).
    #[arg(
        long,
        required_unless_present = "rdb_version",
        conflicts_with = "rdb_version"
    )]
    pub target: Option<String>,
    /// A bare format version instead of a profile: 9, 10, 11, 12, 13 or 80 (VALKEY080).
    #[arg(long)]
    pub rdb_version: Option<u32>,
    #[command(flatten)]
    pub losses: LossArgs,
    /// With --functions drop: also save the libraries here as FUNCTION LOAD commands
    /// (RESP, for `redis-cli --pipe`).
    #[arg(long, value_name = "FILE")]
    pub functions_file: Option<PathBuf>,
    /// Module values and module aux data: auto keeps them for services whose profile
    /// bundles the modules, and stops for self-hosted servers (whose modules the profile
    /// cannot know) unless `keep` says the target loads them; drop leaves them out.
    #[arg(long, value_enum, default_value_t = Modules::Auto)]
    pub modules: Modules,
    /// Databases other than 0: keep them (an error on single-db targets), move every key
    /// into db 0 (an error if a key name is in two dbs), or leave them out.
    #[arg(long, value_enum, default_value_t = Dbs::Keep)]
    pub dbs: Dbs,
    /// "Now" for --expired drop, TTL bounds and --field-ttls drop-expired: Unix
    /// milliseconds, `ctime` (the end of the second the snapshot's ctime AUX field names,
    /// as `stats` takes it) or `clock` (the default).
    #[arg(long, value_name = "UNIX_MS|ctime|clock")]
    pub now: Option<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Write every loss as a JSON line {"db","key","action","reason"} to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print the summary as JSON on standard output instead of text on standard error.
    #[arg(long)]
    pub json: bool,
    /// Do not LZF-compress re-encoded values (faster, bigger output).
    #[arg(long)]
    pub no_compression: bool,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Which keys to keep: every test below must pass.
#[derive(Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Keep only keys matching this glob (`*`, `?`, `[a-z]`, `\` escapes; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out keys matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Keep only keys matching this regular expression over the key bytes (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub include_regex: Vec<String>,
    /// Leave out keys matching this regular expression (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub exclude_regex: Vec<String>,
    /// Keep only keys of this source database (repeatable).
    #[arg(long = "db", id = "only_db", value_name = "N")]
    pub only_dbs: Vec<u64>,
    /// Write the keys of source db FROM into db TO (repeatable), e.g. --db-map 3:0.
    #[arg(long, value_name = "FROM:TO", value_parser = parse_db_map)]
    pub db_map: Vec<(u64, u64)>,
    /// Keep only keys of this type: string, list, set, zset, hash, stream, module (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Keep only keys stored in this encoding, as `rdbkit info` names them (repeatable).
    #[arg(long = "encoding", value_name = "ENCODING")]
    pub encodings: Vec<String>,
    /// Keys already expired at --now: keep them, or leave them out.
    #[arg(long, value_enum, default_value_t = Expired::Keep)]
    pub expired: Expired,
    /// Keep only keys with an expiry.
    #[arg(long, conflicts_with = "no_ttl")]
    pub has_ttl: bool,
    /// Keep only keys without an expiry.
    #[arg(long)]
    pub no_ttl: bool,
    /// Keep only keys with at least this much time to live (e.g. 90s, 15m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub min_ttl: Option<i64>,
    /// Keep only keys with at most this much time to live.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub max_ttl: Option<i64>,
    /// Keep only values stored in at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub min_bytes: Option<u64>,
    /// Keep only values stored in at most this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_bytes: Option<u64>,
    /// Keep only collections with at least this many elements.
    #[arg(long, value_name = "N")]
    pub min_elements: Option<u64>,
    /// Keep only collections with at most this many elements.
    #[arg(long, value_name = "N")]
    pub max_elements: Option<u64>,
    /// Keep only module values of this module type, e.g. ReJSON-RL (repeatable).
    #[arg(long, value_name = "NAME")]
    pub include_module: Vec<String>,
    /// Leave out module values of this module type (repeatable).
    #[arg(long, value_name = "NAME")]
    pub exclude_module: Vec<String>,
}

/// Splitting by cluster hash slot, one complete snapshot per shard.
#[derive(Args)]
#[command(next_help_heading = "Cluster split")]
pub struct SplitArgs {
    /// N shards with contiguous slot ranges, as `redis-cli --cluster create` assigns them.
    #[arg(long, value_name = "N", conflicts_with_all = ["slots", "cluster_nodes"])]
    pub shards: Option<usize>,
    /// Explicit ranges: shards separated by commas, ranges of one shard joined by `+`,
    /// e.g. 0-5460,5461-10922,10923-16383.
    #[arg(long, value_name = "SPEC", conflicts_with = "cluster_nodes")]
    pub slots: Option<String>,
    /// The target's `CLUSTER NODES` output (or `CLUSTER SHARDS` as JSON): one shard per master.
    #[arg(long, value_name = "FILE")]
    pub cluster_nodes: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expired {
    Keep,
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FieldTtls {
    Error,
    Drop,
    DropExpired,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamIdmp {
    Error,
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Functions {
    Error,
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Modules {
    Auto,
    Keep,
    Drop,
    Error,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dbs {
    Keep,
    #[value(name = "merge-into-0")]
    MergeInto0,
    DropOthers,
}

#[derive(Args)]
pub struct ReadOptions {
    /// Do not verify the CRC64 trailer (it is verified by default).
    #[arg(long)]
    pub no_verify_checksum: bool,
    /// Read keys whose collection is empty (written by old server bugs) instead of failing.
    #[arg(long)]
    pub allow_empty_keys: bool,
}

impl ReadOptions {
    pub fn builder(&self) -> ParserBuilder {
        let mut b = ParserBuilder::new();
        b.verify_checksum(!self.no_verify_checksum)
            .allow_empty_keys(self.allow_empty_keys);
        b
    }
}

impl FieldTtls {
    pub fn policy(self) -> rdb_writer::convert::FieldTtlPolicy {
        use rdb_writer::convert::FieldTtlPolicy;
        match self {
            FieldTtls::Error => FieldTtlPolicy::Error,
            FieldTtls::Drop => FieldTtlPolicy::Drop,
            FieldTtls::DropExpired => FieldTtlPolicy::DropExpired,
        }
    }
}

impl StreamIdmp {
    pub fn policy(self) -> rdb_writer::convert::StreamIdmpPolicy {
        use rdb_writer::convert::StreamIdmpPolicy;
        match self {
            StreamIdmp::Error => StreamIdmpPolicy::Error,
            StreamIdmp::Drop => StreamIdmpPolicy::Drop,
        }
    }
}

impl Functions {
    pub fn policy(self) -> rdb_writer::convert::FunctionPolicy {
        use rdb_writer::convert::FunctionPolicy;
        match self {
            Functions::Error => FunctionPolicy::Error,
            Functions::Drop => FunctionPolicy::Drop,
        }
    }
}

impl Modules {
    pub fn policy(self) -> rdb_writer::convert::ModulePolicy {
        use rdb_writer::convert::ModulePolicy;
        match self {
            Modules::Auto => ModulePolicy::Auto,
            Modules::Keep => ModulePolicy::Keep,
            Modules::Drop => ModulePolicy::Drop,
            Modules::Error => ModulePolicy::Error,
        }
    }
}

impl Dbs {
    pub fn policy(self) -> rdb_writer::convert::DbPolicy {
        use rdb_writer::convert::DbPolicy;
        match self {
            Dbs::Keep => DbPolicy::Keep,
            Dbs::MergeInto0 => DbPolicy::MergeInto0,
            Dbs::DropOthers => DbPolicy::DropOthers,
        }
    }
}

/// The one profile lookup: `--target NAME`, else `--rdb-version N`, else `default_version`
/// (the snapshot's own) when the command has one.
pub fn target_profile(
    target: Option<&str>,
    rdb_version: Option<u32>,
    default_version: Option<u32>,
) -> Result<rdb_writer::TargetProfile, Failure> {
    if let Some(name) = target {
        return rdb_writer::TargetProfile::named(name)
            .cloned()
            .ok_or_else(|| unknown_target(name));
    }
    let n = rdb_version
        .or(default_version)
        .ok_or_else(|| usage("give --target or --rdb-version".into()))?;
    rdb_writer::TargetProfile::for_version(n).ok_or_else(|| {
        usage(format!(
            "--rdb-version {n}: rdbkit writes 9, 10, 11, 12, 13 or 80"
        ))
    })
}

/// The conversion options the flags of convert and merge describe; `first_input` gives
/// `--now ctime` its meaning.
pub fn convert_options(
    args: &CommonArgs,
    first_input: &[u8],
) -> Result<rdb_writer::convert::ConvertOptions, Failure> {
    let profile = target_profile(args.target.as_deref(), args.rdb_version, None)?;
    if args.functions_file.is_some() && args.losses.functions != Functions::Drop {
        return Err(usage("--functions-file goes with --functions drop".into()));
    }
    let mut opts = rdb_writer::convert::ConvertOptions::new(profile);
    args.losses.apply(&mut opts);
    opts.modules = args.modules.policy();
    opts.dbs = args.dbs.policy();
    if args.no_compression {
        opts.compression = rdb_writer::Compression::None;
    }
    opts.now_ms = resolve_now(args.now.as_deref(), first_input).map_err(usage)?;
    opts.db_map = args.filter.db_map.iter().copied().collect();
    opts.filter = filter(&args.filter, opts.now_ms)?;
    Ok(opts)
}

/// The key filter the filter flags describe, at `now_ms`.
pub fn filter(a: &FilterArgs, now_ms: i64) -> Result<rdb_writer::filter::Filter, Failure> {
    use rdb_writer::filter::{Filter, KeyPattern, TtlPresence};
    let patterns = |globs: &[String], regexes: &[String]| -> Result<Vec<KeyPattern>, Failure> {
        let mut out = Vec::new();
        for g in globs {
            out.push(KeyPattern::glob(g).map_err(usage)?);
        }
        for r in regexes {
            out.push(KeyPattern::regex(r).map_err(usage)?);
        }
        Ok(out)
    };
    let set = |v: &[String]| (!v.is_empty()).then(|| v.iter().cloned().collect());
    const TYPES: [&str; 7] = ["string", "list", "set", "zset", "hash", "stream", "module"];
    if let Some(t) = a.types.iter().find(|t| !TYPES.contains(&t.as_str())) {
        return Err(usage(format!(
            "--type {t}: use one of {}",
            TYPES.join(", ")
        )));
    }
    Ok(Filter {
        include: patterns(&a.include, &a.include_regex)?,
        exclude: patterns(&a.exclude, &a.exclude_regex)?,
        dbs: (!a.only_dbs.is_empty()).then(|| a.only_dbs.iter().copied().collect()),
        types: set(&a.types),
        encodings: set(&a.encodings),
        drop_expired: a.expired == Expired::Drop,
        ttl: if a.has_ttl {
            TtlPresence::With
        } else if a.no_ttl {
            TtlPresence::Without
        } else {
            TtlPresence::Any
        },
        min_ttl_ms: a.min_ttl,
        max_ttl_ms: a.max_ttl,
        min_bytes: a.min_bytes,
        max_bytes: a.max_bytes,
        min_elements: a.min_elements,
        max_elements: a.max_elements,
        include_modules: set(&a.include_module),
        exclude_modules: a.exclude_module.iter().cloned().collect(),
        now_ms,
    })
}

/// The slot ranges of a cluster split, when one is asked for.
pub fn slot_map(a: &SplitArgs) -> Result<Option<rdb_writer::slot::SlotMap>, Failure> {
    use rdb_writer::slot::SlotMap;
    let map = match (a.shards, &a.slots, &a.cluster_nodes) {
        (Some(n), _, _) => SlotMap::even(n).map_err(|e| format!("--shards: {e}")),
        (_, Some(spec), _) => SlotMap::parse(spec).map_err(|e| format!("--slots: {e}")),
        (_, _, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| super::input::io_context(e, path))?;
            SlotMap::from_cluster_nodes(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        _ => return Ok(None),
    };
    map.map(Some).map_err(usage)
}
