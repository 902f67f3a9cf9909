//! `rdbkit`: argument parsing, file mapping and exit codes. The work happens in the
//! library modules.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rdb_cli::output::AtomicFile;
use rdb_cli::{export, info, Failure};
use rdb_parser::ParserBuilder;

#[derive(Parser)]
#[command(
    name = "rdbkit",
    version,
    about = "Inspect, convert, split, verify and move Redis / Valkey RDB snapshot files (dump.rdb).",
    long_about = "Inspect, convert, split, verify and move Redis / Valkey RDB snapshot files (dump.rdb).\n\n\
        A migration, step by step: stats (assess), check --target (will it load?), convert \
        (re-encode, filter, --shards split), verify, upload + import (Azure) or restore (live \
        server), diff (prove nothing was lost).\n\n\
        Reads every format a released server writes: REDIS0001-REDIS0012 (Redis 2.x to 8.x, \
        Valkey 7.2/8.x) and VALKEY080 (Valkey 9). The file is memory-mapped and never modified.",
    after_help = "Examples:\n  \
        rdbkit info dump.rdb                      version, aux fields, keys per db/type/encoding\n  \
        rdbkit info dump.rdb --json               the same, for scripts\n  \
        rdbkit stats dump.rdb --html report.html  sizes, memory, biggest keys, prefixes, TTLs, slots\n  \
        rdbkit export dump.rdb > dump.jsonl       every key and value as JSON Lines\n  \
        rdbkit export dump.rdb -o dump.jsonl      written atomically: whole file or none\n  \
        rdbkit convert dump.rdb -o for-6.rdb --target azure-cache-premium\n  \
        rdbkit restore dump.rdb --to redis://127.0.0.1:6379   RESTORE into a live server\n  \
        rdbkit export dump.rdb --format resp | redis-cli --pipe\n  \
        rdbkit targets                            the target profiles convert knows\n\n\
        Exit codes: 0 success; 1 the snapshot is malformed, a check found problems, the files differ\n\
        or the target refused; 2 usage, I/O or network error; 130 interrupted (SIGINT, SIGTERM or\n\
        SIGHUP: unfinished outputs are removed, finished ones stay whole)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads (default: RAYON_NUM_THREADS, else one per core). 1 runs everything
    /// in sequence.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize a snapshot: format version, aux fields, checksum, keys per db, type and encoding.
    Info {
        /// The RDB file to read.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Assess a snapshot: sizes, estimated memory, biggest keys, prefixes, TTLs, slots.
    Stats {
        #[command(flatten)]
        args: rdb_cli::stats::StatsArgs,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Write every item of a snapshot in a line-oriented format (schema: docs/export-jsonl.md).
    #[command(after_help = "Examples:\n  \
        rdbkit export dump.rdb -o dump.jsonl\n  \
        rdbkit export dump.rdb --format resp | redis-cli -h HOST --pipe\n  \
        rdbkit export dump.rdb --format resp --target redis-6.2 --field-ttls drop -o cmds.resp\n  \
        rdbkit export dump.rdb --format restore --target redis-7.0 | redis-cli -h HOST --pipe\n\n\
        Exit codes: 0 written, 1 the snapshot is malformed or holds what the target cannot \
        (named; --field-ttls / --functions allow leaving it out), 2 usage or I/O error.")]
    Export {
        /// The RDB file to read.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here (atomically) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        commands: CommandArgs,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Send every key to a live server (or cluster) as RESTORE commands, with payloads
    /// for the server's own version; values above its proto-max-bulk-len go as plain
    /// commands in batches. Filters and --db-map as for convert.
    #[command(after_help = "Examples:\n  \
        rdbkit restore dump.rdb --to redis://127.0.0.1:6379\n  \
        rdbkit restore dump.rdb --to rediss://:PASSWORD@cache.example.net:6380 --on-exists skip\n  \
        RDBKIT_REDIS_PASSWORD=... rdbkit restore dump.rdb --to rediss://host:10000 --cluster\n  \
        rdbkit restore dump.rdb --to redis://h:6379 --checkpoint ck.json   (interrupted? add --resume)\n\n\
        The password is never printed: URLs are shown as redis://user:***@host:port/db.\n\
        Exit codes: 0 every key restored or skipped as asked, 1 the target refused a key \
        or the snapshot is malformed, 2 usage, connection or I/O error.")]
    Restore(Box<RestoreArgs>),
    /// Re-encode a snapshot so a given (older or newer) server can load it. Whatever the
    /// target cannot hold stops the conversion with an error naming the key, unless a flag
    /// chooses the loss; every loss is counted, and listed per key with --report.
    Convert(Box<ConvertArgs>),
    /// Join several snapshots (e.g. a cluster's per-shard backups) into one, with the same
    /// target, filters and loss flags as convert. AUX fields come from the first file.
    Merge(Box<MergeArgs>),
    /// Pre-flight: will a target server or service load this file? Lists what stops it
    /// (format version, field TTLs, functions, modules, databases, oversized values,
    /// memory) and the convert flags that deal with each. Exit 0: loads as it is; 1: not.
    Check {
        /// The RDB file to check.
        file: PathBuf,
        /// The server or service that will load it (see `rdbkit targets`).
        #[arg(long)]
        target: String,
        /// The target's memory, e.g. 6GB or 13000MB, to compare with the file's size.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory: Option<u64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// List the target profiles `convert` knows.
    Targets,
    /// Upload snapshot(s) to Azure Blob Storage with a SAS URL: parallel, resumable block
    /// blob (or --page-blob), per-block MD5, verified; optionally --then-import.
    Upload(Box<rdb_cli::azure::upload::UploadArgs>),
    /// Import uploaded blob(s) into Azure Managed Redis (--cluster) or Azure Cache for
    /// Redis Premium (--cache) and follow the operation to its end. Deletes the cache's data.
    Import(Box<rdb_cli::azure::import::ImportArgs>),
    /// Compare two snapshots key by key, whatever their versions and encodings: keys only
    /// in A or only in B, type, value and TTL differences. Works on files larger than
    /// memory (temporary bucket files, removed on exit). Exit 0: equal; 1: different.
    #[command(after_help = "Examples:\n  \
        rdbkit diff source.rdb target.rdb                     summary and the first differences\n  \
        rdbkit diff a.rdb b.rdb --jsonl diff.jsonl             every difference (docs/diff-jsonl.md)\n  \
        rdbkit diff src.rdb exported.rdb --ttl-tolerance 5s    TTLs within 5 s are equal\n  \
        rdbkit diff src.rdb dst.rdb --db-map 3:0 --include 'user:*'\n\n\
        Filters apply to both files (--db names A's databases; B is filtered on their mapped \
        numbers); --db-map renumbers A's databases (A is the source). --encoding, --min-bytes \
        and --max-bytes are refused: they depend on how each file stores a value.\n\
        A key twice in one db of one side (servers refuse such a file) stops the comparison, \
        naming it.\n\
        Exit codes: 0 equal, 1 different, 2 usage, I/O or unreadable snapshot.")]
    Diff(Box<DiffArgs>),
    /// Check a snapshot in depth, as redis-check-rdb and sanitize-dump-payload do: the
    /// CRC64, every inner encoding, intset order, NaN scores, duplicate members, fields and
    /// keys, stream IDs and consumer groups, empty collections, stray opcodes. Every
    /// problem is listed with its byte offset, db and key. Exit 0: no errors; 1: errors.
    #[command(after_help = "Examples:\n  \
        rdbkit verify dump.rdb                 one line per problem, then a verdict\n  \
        rdbkit verify dump.rdb --json          the same as JSON (docs/verify-json.md)\n  \
        rdbkit verify dump.rdb --json | jq -r '.problems[] | select(.severity == \"error\") | .key'\n\n\
        A problem line reads:\n  \
        error at byte 4211, db 0, key \"user:7\" [duplicate-member]: 1 duplicate members: \"a\"\n\
        [name] is the check (docs/verify-json.md lists them). An error is what a server refuses \
        or loads wrongly; a warning is what servers load but a healthy server does not write \
        (empty quicklist nodes, bytes after the trailer, ...). A value that is corrupt inside \
        its known extent is reported and the walk goes on; a broken length ends it (the verdict \
        then says the walk stopped before EOF).\n\
        Memory: the duplicate-key check keeps 8 to 16 bytes per key (100 M keys: 0.8 to 1.6 GB); \
        a file with duplicate keys is walked once more to name them, with about 40 bytes more \
        for each key stored twice.\n\
        Shallower and nearly twice as fast: `rdbkit info` checks the CRC64 and the file's framing \
        (every key and value length), not what is inside the values.\n\n\
        Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 the file cannot be read.")]
    Verify {
        /// The RDB file to verify.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// List at most this many problems; the rest are counted (errors and warnings stay
        /// exact), so a file broken in every key does not fill memory.
        #[arg(long, value_name = "N", default_value_t = rdb_cli::verify::DEFAULT_MAX_PROBLEMS)]
        max_problems: usize,
    },
}

#[derive(Args)]
struct ConvertArgs {
    /// The RDB file to read (never modified).
    file: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    split: SplitArgs,
}

/// `--format resp|restore` options.
#[derive(Args)]
#[command(next_help_heading = "RESP output (--format resp|restore)")]
struct CommandArgs {
    /// The server that will run the commands: payload version for --format restore, and
    /// which commands exist (HPEXPIREAT, XSETID ENTRIESADDED) for --format resp.
    /// Default: the snapshot's own version.
    #[arg(long, conflicts_with = "rdb_version")]
    target: Option<String>,
    /// A bare format version instead of a profile: 9, 10, 11, 12, or 80.
    #[arg(long)]
    rdb_version: Option<u32>,
    /// RESTORE ... REPLACE, or DEL before each key's plain commands.
    #[arg(long)]
    replace: bool,
    /// Hash-field TTLs for a target without them (both formats; with resp, drop-expired
    /// leaves out the fields already expired now).
    #[arg(long, value_enum, default_value_t = FieldTtls::Error)]
    field_ttls: FieldTtls,
    /// Function libraries, for a target without functions (before Redis 7.0).
    #[arg(long, value_enum, default_value_t = Functions::Error)]
    functions: Functions,
}

#[derive(Args)]
struct RestoreArgs {
    /// The RDB file to read (never modified).
    file: PathBuf,
    /// The target: redis://[user:pass@]host:port[/db] or rediss:// for TLS. Source db 0
    /// goes into /db (default 0). Without a password in the URL, $RDBKIT_REDIS_PASSWORD.
    #[arg(long, value_name = "URL")]
    to: String,
    /// The target is a Redis Cluster: route each key to its slot's master (CLUSTER SLOTS),
    /// following MOVED and ASK.
    #[arg(long)]
    cluster: bool,
    /// TLS: trust the certificates in this PEM file (besides the Mozilla roots).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// TLS: accept any certificate (self-signed test servers only).
    #[arg(long)]
    tls_insecure: bool,
    /// Overwrite keys that exist on the target (same as --on-exists replace).
    #[arg(long, conflicts_with = "on_exists")]
    replace: bool,
    /// A key that exists on the target: stop with an error naming it, leave it, or
    /// overwrite it.
    #[arg(long, value_enum)]
    on_exists: Option<OnExistsArg>,
    /// Most commands in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 256)]
    window: usize,
    /// Most bytes in flight per connection (e.g. 64M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64M")]
    window_bytes: u64,
    /// The target's proto-max-bulk-len, where CONFIG GET is refused (managed services);
    /// payloads above it are sent as plain commands.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_bulk: Option<u64>,
    /// Build payloads for this profile instead of the one the server's version maps to.
    #[arg(long)]
    target: Option<String>,
    /// Record progress here (atomically): the last key acknowledged, in file order.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Write the checkpoint after every N acknowledged keys.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Continue after the key the checkpoint names (keys the interrupted run may have
    /// sent after it are restored with REPLACE).
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Seconds to wait for the server (connect, each reply).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Hash fields with their own TTL, for a target without field TTLs.
    #[arg(long, value_enum, default_value_t = FieldTtls::Error)]
    field_ttls: FieldTtls,
    /// Function libraries, for a target without functions.
    #[arg(long, value_enum, default_value_t = Functions::Error)]
    functions: Functions,
    /// "Now" for skipping expired keys and TTL filters: Unix ms or `ctime`.
    #[arg(long, value_name = "UNIX_MS|ctime")]
    now: Option<String>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    read: ReadOptions,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnExistsArg {
    Error,
    Skip,
    Replace,
}

#[derive(Args)]
struct MergeArgs {
    /// The RDB files to join (e.g. one per cluster shard), in order.
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// A key in more than one input: stop with an error naming it, or keep the copy of the
    /// first or of the last input holding it (each dropped copy is reported).
    #[arg(long, value_enum, default_value_t = OnConflict::Error)]
    on_conflict: OnConflict,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnConflict {
    Error,
    First,
    Last,
}

#[derive(Args)]
struct DiffArgs {
    /// The first snapshot (for a migration: the source).
    a: PathBuf,
    /// The second snapshot (for a migration: the target's export).
    b: PathBuf,
    /// Expiry times at most this far apart count as equal, e.g. 5s or 500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms, default_value = "0")]
    ttl_tolerance: i64,
    /// Do not compare expiry times at all.
    #[arg(long)]
    ignore_ttl: bool,
    /// Write every difference as a JSON line to this file (docs/diff-jsonl.md), atomically.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Memory for the records of one bucket, e.g. 256MB or 2GB: the input is split into as
    /// many temporary bucket files as this needs.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MB")]
    memory_limit: u64,
    /// Directory for the temporary bucket files (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Force this many buckets per side (1 keeps everything in memory).
    #[arg(long, value_name = "N", hide = true)]
    buckets: Option<usize>,
    /// "Now" for --expired drop and TTL bounds, in Unix milliseconds (default: the clock).
    #[arg(long, value_name = "UNIX_MS")]
    now: Option<i64>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    read: ReadOptions,
}

/// Options shared by convert and merge.
#[derive(Args)]
struct CommonArgs {
    /// The file to write; it appears only when the conversion succeeds. With --shards,
    /// --slots or --cluster-nodes: a directory that receives shard-<i>.rdb files and
    /// manifest.json, all together or none.
    #[arg(short, long)]
    output: PathBuf,
    /// The server or service that will load the output (see `rdbkit targets`).
    #[arg(
        long,
        required_unless_present = "rdb_version",
        conflicts_with = "rdb_version"
    )]
    target: Option<String>,
    /// A bare format version instead of a profile: 9, 10, 11, 12, or 80 (VALKEY080).
    #[arg(long)]
    rdb_version: Option<u32>,
    /// Hash fields with their own TTL, for a target without field TTLs (Redis < 7.4,
    /// Valkey < 9): stop with an error, make them persistent, or also delete fields
    /// that already expired (at --now).
    #[arg(long, value_enum, default_value_t = FieldTtls::Error)]
    field_ttls: FieldTtls,
    /// Function libraries, for a target without functions (Redis < 7.0).
    #[arg(long, value_enum, default_value_t = Functions::Error)]
    functions: Functions,
    /// With --functions drop: also save the libraries here as FUNCTION LOAD commands
    /// (RESP, for `redis-cli --pipe`).
    #[arg(long, value_name = "FILE")]
    functions_file: Option<PathBuf>,
    /// Module values and module aux data: auto keeps them where the target has modules
    /// and stops where it has none.
    #[arg(long, value_enum, default_value_t = Modules::Auto)]
    modules: Modules,
    /// Databases other than 0: keep them (an error on single-db targets), move every key
    /// into db 0 (an error if a key name is in two dbs), or leave them out.
    #[arg(long, value_enum, default_value_t = Dbs::Keep)]
    dbs: Dbs,
    /// "Now" for --expired drop, TTL bounds and --field-ttls drop-expired: Unix
    /// milliseconds, or `ctime` for the moment the snapshot was taken (default: the clock).
    #[arg(long, value_name = "UNIX_MS|ctime")]
    now: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Write every loss as a JSON line {"db","key","action","reason"} to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Do not LZF-compress re-encoded values (faster, bigger output).
    #[arg(long)]
    no_compression: bool,
    #[command(flatten)]
    read: ReadOptions,
}

/// Which keys to keep: every test below must pass.
#[derive(Args)]
#[command(next_help_heading = "Filters")]
struct FilterArgs {
    /// Keep only keys matching this glob (`*`, `?`, `[a-z]`, `\` escapes; repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out keys matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Keep only keys matching this regular expression over the key bytes (repeatable).
    #[arg(long, value_name = "REGEX")]
    include_regex: Vec<String>,
    /// Leave out keys matching this regular expression (repeatable).
    #[arg(long, value_name = "REGEX")]
    exclude_regex: Vec<String>,
    /// Keep only keys of this source database (repeatable).
    #[arg(long = "db", id = "only_db", value_name = "N")]
    only_dbs: Vec<u64>,
    /// Write the keys of source db FROM into db TO (repeatable), e.g. --db-map 3:0.
    #[arg(long, value_name = "FROM:TO", value_parser = parse_db_map)]
    db_map: Vec<(u64, u64)>,
    /// Keep only keys of this type: string, list, set, zset, hash, stream, module (repeatable).
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Keep only keys stored in this encoding, as `rdbkit info` names them (repeatable).
    #[arg(long = "encoding", value_name = "ENCODING")]
    encodings: Vec<String>,
    /// Keys already expired at --now: keep them, or leave them out.
    #[arg(long, value_enum, default_value_t = Expired::Keep)]
    expired: Expired,
    /// Keep only keys with an expiry.
    #[arg(long, conflicts_with = "no_ttl")]
    has_ttl: bool,
    /// Keep only keys without an expiry.
    #[arg(long)]
    no_ttl: bool,
    /// Keep only keys with at least this much time to live (e.g. 90s, 15m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    min_ttl: Option<i64>,
    /// Keep only keys with at most this much time to live.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    max_ttl: Option<i64>,
    /// Keep only values stored in at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    min_bytes: Option<u64>,
    /// Keep only values stored in at most this many bytes.
    #[arg(long, value_name = "BYTES")]
    max_bytes: Option<u64>,
    /// Keep only collections with at least this many elements.
    #[arg(long, value_name = "N")]
    min_elements: Option<u64>,
    /// Keep only collections with at most this many elements.
    #[arg(long, value_name = "N")]
    max_elements: Option<u64>,
    /// Keep only module values of this module type, e.g. ReJSON-RL (repeatable).
    #[arg(long, value_name = "NAME")]
    include_module: Vec<String>,
    /// Leave out module values of this module type (repeatable).
    #[arg(long, value_name = "NAME")]
    exclude_module: Vec<String>,
}

/// Splitting by cluster hash slot, one complete snapshot per shard.
#[derive(Args)]
#[command(next_help_heading = "Cluster split")]
struct SplitArgs {
    /// N shards with contiguous slot ranges, as `redis-cli --cluster create` assigns them.
    #[arg(long, value_name = "N", conflicts_with_all = ["slots", "cluster_nodes"])]
    shards: Option<usize>,
    /// Explicit ranges: shards separated by commas, ranges of one shard joined by `+`,
    /// e.g. 0-5460,5461-10922,10923-16383.
    #[arg(long, value_name = "SPEC", conflicts_with = "cluster_nodes")]
    slots: Option<String>,
    /// The target's `CLUSTER NODES` output (or `CLUSTER SHARDS` as JSON): one shard per master.
    #[arg(long, value_name = "FILE")]
    cluster_nodes: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expired {
    Keep,
    Drop,
}

fn parse_db_map(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once(':').ok_or("expected FROM:TO, e.g. 3:0")?;
    let n = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("{x:?} is not a db number"))
    };
    Ok((n(a)?, n(b)?))
}

/// `6GB`, `13000MB`, `512K`, `1073741824` -> bytes (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 6GB"))?;
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(format!("unknown unit {other:?}: use K, M, G or T")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `90`, `90s`, `15m`, `2h`, `7d`, `500ms` -> milliseconds.
fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s or 2h"))?;
    let scale = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FieldTtls {
    Error,
    Drop,
    DropExpired,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Functions {
    Error,
    Drop,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Modules {
    Auto,
    Keep,
    Drop,
    Error,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dbs {
    Keep,
    #[value(name = "merge-into-0")]
    MergeInto0,
    DropOthers,
}

#[derive(Args)]
struct ReadOptions {
    /// Do not verify the CRC64 trailer (it is verified by default).
    #[arg(long)]
    no_verify_checksum: bool,
    /// Read keys whose collection is empty (written by old server bugs) instead of failing.
    #[arg(long)]
    allow_empty_keys: bool,
}

impl ReadOptions {
    fn builder(&self) -> ParserBuilder {
        let mut b = ParserBuilder::new();
        b.verify_checksum(!self.no_verify_checksum)
            .allow_empty_keys(self.allow_empty_keys);
        b
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line, binary-safe.
    Jsonl,
    /// Plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD, PEXPIREAT...) for `redis-cli --pipe`.
    Resp,
    /// RESTORE commands with DUMP payloads for --target / --rdb-version, for `redis-cli --pipe`.
    Restore,
}

/// The input file's bytes: memory-mapped when possible, read otherwise.
enum Input {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Input {
    fn open(path: &Path) -> std::io::Result<Input> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only and lives as long as `Input`. If another process
        // truncates the file while we read it, the kernel may raise SIGBUS; rdbkit is meant
        // for snapshots that are no longer being written (a finished SAVE/BGSAVE output).
        #[allow(unsafe_code)]
        let mapped = unsafe { memmap2::Mmap::map(&file) };
        match mapped {
            Ok(m) => Ok(Input::Mapped(m)),
            // Pipes and some special files cannot be mapped.
            Err(_) => std::fs::read(path).map(Input::Read),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Read(v) => v,
        }
    }
}

/// A progress bar on stderr when it is a terminal and the file is big enough to wait for.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 64 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Updates the bar at most every 4 MiB of input, so the hot loop stays cheap.
fn tick(bar: &Option<indicatif::ProgressBar>) -> impl FnMut(u64) + '_ {
    let mut next = 0u64;
    move |offset| {
        if let Some(bar) = bar {
            if offset >= next {
                bar.set_position(offset);
                next = offset + (4 << 20);
            }
        }
    }
}

/// Prints a report on stdout: pretty JSON with `--json`, else its text form.
fn print_report(
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&as_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(out, "{text}").map_err(Failure::Io)
    } else {
        as_text(&mut out).map_err(Failure::Io)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Info { file, json, read } => {
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let info = info::collect(input.bytes(), &read.builder(), tick(&bar))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            print_report(json, || info.to_json(), |out| info.write_text(out))?;
            Ok(())
        }
        Command::Export {
            file,
            format: format @ (Format::Resp | Format::Restore),
            output,
            commands,
            read,
        } => export_commands(&file, format, output.as_deref(), &commands, &read),
        Command::Restore(args) => restore(&args),
        Command::Export {
            file,
            format: Format::Jsonl,
            output,
            commands: _,
            read,
        } => {
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let summary = match output {
                Some(path) => {
                    let mut out = AtomicFile::create(&path).map_err(|e| io_context(e, &path))?;
                    let s = export::jsonl(input.bytes(), &read.builder(), &mut out, tick(&bar))?;
                    out.commit().map_err(|e| io_context(e, &path))?;
                    s
                }
                None => {
                    let stdout = std::io::stdout().lock();
                    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
                    export::jsonl(input.bytes(), &read.builder(), &mut out, tick(&bar))?
                }
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
                eprintln!("exported {} keys ({} lines)", summary.keys, summary.lines);
            }
            Ok(())
        }
        Command::Stats { args, read } => {
            let input = Input::open(&args.file).map_err(|e| io_context(e, &args.file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let mut out = std::io::stdout().lock();
            rdb_cli::stats::run(input.bytes(), &read.builder(), &args, &mut out, tick(&bar))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            Ok(())
        }
        Command::Convert(args) => convert(&args),
        Command::Merge(args) => merge(&args),
        Command::Check {
            file,
            target,
            memory,
            json,
            read,
        } => {
            let profile = rdb_writer::TargetProfile::named(&target).ok_or_else(|| {
                usage(format!(
                    "unknown target {target:?}; `rdbkit targets` lists the profiles"
                ))
            })?;
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let verdict = rdb_cli::check::check(input.bytes(), &read.builder(), profile, memory)?;
            print_report(json, || verdict.to_json(), |out| verdict.write_text(out))?;
            if verdict.loads_as_is {
                Ok(())
            } else {
                Err(Failure::Refused(String::new()))
            }
        }
        Command::Upload(args) => upload(&args),
        Command::Import(args) => import(&args),
        Command::Diff(args) => diff(&args),
        Command::Verify {
            file,
            json,
            max_problems,
        } => {
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let report = rdb_cli::verify::verify_with(input.bytes(), max_problems, tick(&bar));
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            print_report(json, || report.to_json(), |out| report.write_text(out))?;
            if report.ok() {
                Ok(())
            } else {
                Err(Failure::Refused(String::new()))
            }
        }
        Command::Targets => {
            let mut out = std::io::stdout().lock();
            for p in rdb_writer::PROFILES {
                writeln!(out, "{:<30} {}  {}", p.name, p.version, p.description)
                    .map_err(Failure::Io)?;
            }
            Ok(())
        }
    }
}

/// The conversion options the flags describe; `first_input` supplies the default "now"
/// (its ctime).
fn options(
    args: &CommonArgs,
    first_input: &[u8],
) -> Result<rdb_writer::convert::ConvertOptions, Failure> {
    use rdb_writer::convert::{DbPolicy, FieldTtlPolicy, FunctionPolicy, ModulePolicy};
    let profile = match (&args.target, args.rdb_version) {
        (Some(name), _) => rdb_writer::TargetProfile::named(name)
            .cloned()
            .ok_or_else(|| {
                usage(format!(
                    "unknown target {name:?}; `rdbkit targets` lists the profiles"
                ))
            })?,
        (None, Some(n)) => rdb_writer::TargetProfile::for_version(n).ok_or_else(|| {
            usage(format!(
                "--rdb-version {n}: rdbkit writes 9, 10, 11, 12 or 80"
            ))
        })?,
        (None, None) => return Err(usage("give --target or --rdb-version".into())),
    };
    if args.functions_file.is_some() && args.functions != Functions::Drop {
        return Err(usage("--functions-file goes with --functions drop".into()));
    }
    let mut opts = rdb_writer::convert::ConvertOptions::new(profile);
    opts.field_ttls = match args.field_ttls {
        FieldTtls::Error => FieldTtlPolicy::Error,
        FieldTtls::Drop => FieldTtlPolicy::Drop,
        FieldTtls::DropExpired => FieldTtlPolicy::DropExpired,
    };
    opts.functions = match args.functions {
        Functions::Error => FunctionPolicy::Error,
        Functions::Drop => FunctionPolicy::Drop,
    };
    opts.modules = match args.modules {
        Modules::Auto => ModulePolicy::Auto,
        Modules::Keep => ModulePolicy::Keep,
        Modules::Drop => ModulePolicy::Drop,
        Modules::Error => ModulePolicy::Error,
    };
    opts.dbs = match args.dbs {
        Dbs::Keep => DbPolicy::Keep,
        Dbs::MergeInto0 => DbPolicy::MergeInto0,
        Dbs::DropOthers => DbPolicy::DropOthers,
    };
    if args.no_compression {
        opts.compression = rdb_writer::Compression::None;
    }
    opts.now_ms = match args.now.as_deref() {
        Some("ctime") => rdb_cli::convert::ctime_ms(first_input)
            .ok_or_else(|| usage("--now ctime: the snapshot has no ctime AUX field".into()))?,
        Some(ms) => ms
            .parse::<i64>()
            .map_err(|_| usage(format!("--now {ms:?}: give Unix milliseconds or ctime")))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };
    opts.db_map = args.filter.db_map.iter().copied().collect();
    opts.filter = filter(&args.filter, opts.now_ms)?;
    Ok(opts)
}

fn now_ms(now: Option<&str>, input: &[u8]) -> Result<i64, Failure> {
    Ok(match now {
        Some("ctime") => rdb_cli::convert::ctime_ms(input)
            .ok_or_else(|| usage("--now ctime: the snapshot has no ctime AUX field".into()))?,
        Some(ms) => ms
            .parse::<i64>()
            .map_err(|_| usage(format!("--now {ms:?}: give Unix milliseconds or ctime")))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    })
}

fn field_ttl_policy(f: FieldTtls) -> rdb_writer::convert::FieldTtlPolicy {
    use rdb_writer::convert::FieldTtlPolicy;
    match f {
        FieldTtls::Error => FieldTtlPolicy::Error,
        FieldTtls::Drop => FieldTtlPolicy::Drop,
        FieldTtls::DropExpired => FieldTtlPolicy::DropExpired,
    }
}

fn export_commands(
    file: &Path,
    format: Format,
    output: Option<&Path>,
    a: &CommandArgs,
    read: &ReadOptions,
) -> Result<(), Failure> {
    let input = Input::open(file).map_err(|e| io_context(e, file))?;
    let source = rdb_parser::Parser::new(input.bytes())?.version();
    let profile = match (&a.target, a.rdb_version) {
        (Some(name), _) => rdb_writer::TargetProfile::named(name)
            .cloned()
            .ok_or_else(|| {
                usage(format!(
                    "unknown target {name:?}; `rdbkit targets` lists the profiles"
                ))
            })?,
        (None, n) => {
            let n = n.unwrap_or(source.number);
            rdb_writer::TargetProfile::for_version(n).ok_or_else(|| {
                usage(format!(
                    "--rdb-version {n}: rdbkit writes 9, 10, 11, 12 or 80"
                ))
            })?
        }
    };
    let mut convert = rdb_writer::convert::ConvertOptions::new(profile);
    convert.field_ttls = field_ttl_policy(a.field_ttls);
    convert.functions = match a.functions {
        Functions::Error => rdb_writer::convert::FunctionPolicy::Error,
        Functions::Drop => rdb_writer::convert::FunctionPolicy::Drop,
    };
    convert.now_ms = now_ms(None, input.bytes())?;
    let o = export::CommandsOptions {
        restore: matches!(format, Format::Restore),
        replace: a.replace,
        convert,
    };
    let bar = progress_bar(input.bytes().len() as u64);
    let summary = match output {
        Some(path) => {
            let mut out = AtomicFile::create(path).map_err(|e| io_context(e, path))?;
            let s = export::commands(input.bytes(), &read.builder(), &o, &mut out, tick(&bar))?;
            out.commit().map_err(|e| io_context(e, path))?;
            s
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
            export::commands(input.bytes(), &read.builder(), &o, &mut out, tick(&bar))?
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if summary.dropped > 0 || summary.field_ttls_dropped > 0 || summary.functions_dropped > 0 {
        eprintln!(
            "rdbkit: {} keys left out (the target cannot hold them), {} hash-field TTLs left \
             out, {} function libraries left out",
            summary.dropped, summary.field_ttls_dropped, summary.functions_dropped
        );
    }
    Ok(())
}

fn restore(a: &RestoreArgs) -> Result<(), Failure> {
    use rdb_cli::restore::{OnExists, RestoreOptions, TargetUrl, TlsOptions};
    let url = TargetUrl::parse(&a.to).map_err(usage)?;
    let input = Input::open(&a.file).map_err(|e| io_context(e, &a.file))?;
    let target_override =
        match &a.target {
            Some(name) => Some(rdb_writer::TargetProfile::named(name).cloned().ok_or_else(
                || {
                    usage(format!(
                        "unknown target {name:?}; `rdbkit targets` lists the profiles"
                    ))
                },
            )?),
            None => None,
        };
    // The target profile is set from the server's version once connected.
    let placeholder = rdb_writer::TargetProfile::for_version(9)
        .ok_or_else(|| usage("no RDB 9 profile".into()))?;
    let mut convert =
        rdb_writer::convert::ConvertOptions::new(target_override.clone().unwrap_or(placeholder));
    convert.field_ttls = field_ttl_policy(a.field_ttls);
    convert.functions = match a.functions {
        Functions::Error => rdb_writer::convert::FunctionPolicy::Error,
        Functions::Drop => rdb_writer::convert::FunctionPolicy::Drop,
    };
    convert.modules = rdb_writer::convert::ModulePolicy::Keep;
    convert.now_ms = now_ms(a.now.as_deref(), input.bytes())?;
    convert.db_map = a.filter.db_map.iter().copied().collect();
    convert.filter = filter(&a.filter, convert.now_ms)?;
    let on_exists = match (a.replace, a.on_exists) {
        (true, _) | (_, Some(OnExistsArg::Replace)) => OnExists::Replace,
        (_, Some(OnExistsArg::Skip)) => OnExists::Skip,
        _ => OnExists::Error,
    };
    let o = RestoreOptions {
        url,
        tls: TlsOptions {
            ca: a.tls_ca.clone(),
            insecure: a.tls_insecure,
        },
        on_exists,
        window_commands: a.window.max(1),
        window_bytes: usize::try_from(a.window_bytes).unwrap_or(usize::MAX),
        cluster: a.cluster,
        max_bulk: a.max_bulk,
        checkpoint: a.checkpoint.clone(),
        checkpoint_every: a.checkpoint_every.max(1),
        resume: a.resume,
        convert,
        target_override,
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
    };
    let bar = progress_bar(input.bytes().len() as u64);
    let mut tick = tick(&bar);
    let result = rdb_cli::restore::restore(input.bytes(), &a.read.builder(), &o, &mut tick);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = result?;
    if a.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        println!("{text}");
    } else {
        summary
            .write_text(&mut std::io::stderr(), &o.url)
            .map_err(Failure::Io)?;
    }
    Ok(())
}

fn convert_failure(e: rdb_writer::convert::ConvertError, output: &Path) -> Failure {
    match e {
        rdb_writer::convert::ConvertError::Parse(p) => Failure::Data(p),
        rdb_writer::convert::ConvertError::Io(io) => io_context(io, output),
        refused => Failure::Refused(refused.to_string()),
    }
}

fn convert(args: &ConvertArgs) -> Result<(), Failure> {
    let c = &args.common;
    let input = Input::open(&args.file).map_err(|e| io_context(e, &args.file))?;
    let opts = options(c, input.bytes())?;
    let slots = slot_map(&args.split)?;
    let bar = progress_bar(input.bytes().len() as u64);
    let mut tick = tick(&bar);
    let files = rdb_cli::convert::SideFiles {
        report: c.report.as_deref(),
        functions: c.functions_file.as_deref(),
    };
    let result = match &slots {
        Some(slots) => rdb_cli::convert::run_split(
            input.bytes(),
            &c.read.builder(),
            &opts,
            slots,
            &c.output,
            &files,
            &mut tick,
        ),
        None => rdb_cli::convert::run(
            input.bytes(),
            &c.read.builder(),
            &opts,
            &c.output,
            &files,
            &mut tick,
        ),
    };
    let summary = result.map_err(|e| convert_failure(e, &c.output))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    rdb_cli::convert::write_summary(&mut std::io::stderr(), &summary, opts.target.name)
        .map_err(Failure::Io)
}

fn merge(args: &MergeArgs) -> Result<(), Failure> {
    use rdb_writer::convert::ConflictPolicy;
    let c = &args.common;
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open(f).map_err(|e| io_context(e, f)))
        .collect::<Result<Vec<_>, _>>()?;
    let datas: Vec<&[u8]> = inputs.iter().map(Input::bytes).collect();
    let opts = options(c, datas.first().copied().unwrap_or_default())?;
    let conflict = match args.on_conflict {
        OnConflict::Error => ConflictPolicy::Error,
        OnConflict::First => ConflictPolicy::First,
        OnConflict::Last => ConflictPolicy::Last,
    };
    let bar = progress_bar(datas.iter().map(|d| d.len() as u64).sum());
    let mut tick = tick(&bar);
    let files = rdb_cli::convert::SideFiles {
        report: c.report.as_deref(),
        functions: c.functions_file.as_deref(),
    };
    let summary = rdb_cli::convert::run_merge(
        &datas,
        &c.read.builder(),
        &opts,
        conflict,
        &c.output,
        &files,
        &mut tick,
    )
    .map_err(|e| convert_failure(e, &c.output))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    rdb_cli::convert::write_summary(&mut std::io::stderr(), &summary, opts.target.name)
        .map_err(Failure::Io)
}

fn upload(args: &rdb_cli::azure::upload::UploadArgs) -> Result<(), Failure> {
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open(f).map_err(|e| io_context(e, f)))
        .collect::<Result<Vec<_>, _>>()?;
    let sources: Vec<rdb_cli::azure::upload::Source<'_>> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(path, input)| rdb_cli::azure::upload::Source {
            path,
            data: input.bytes(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::upload::run(args, &sources, &mut out, &mut std::io::stderr()).map(drop)
}

fn import(args: &rdb_cli::azure::import::ImportArgs) -> Result<(), Failure> {
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open(f).map_err(|e| io_context(e, f)))
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<(&Path, &[u8])> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(p, i)| (p.as_path(), i.bytes()))
        .collect();
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::import::run(args, &files, &mut out, &mut std::io::stderr())
}

fn diff(args: &DiffArgs) -> Result<(), Failure> {
    use rdb_cli::diff::{diff, DiffOptions};
    let a = Input::open(&args.a).map_err(|e| io_context(e, &args.a))?;
    let b = Input::open(&args.b).map_err(|e| io_context(e, &args.b))?;
    let now_ms = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    // Encodings and stored sizes differ between two copies of the same data (that is what
    // diff sees through), so a filter on them would select different keys on each side.
    let f = &args.filter;
    if !f.encodings.is_empty() || f.min_bytes.is_some() || f.max_bytes.is_some() {
        return Err(usage(
            "diff compares logical values: --encoding, --min-bytes and --max-bytes depend on \
             how each file stores a value and would keep different keys on each side; use \
             --type or --min-elements/--max-elements instead"
                .into(),
        ));
    }
    let mut db_map = std::collections::HashMap::new();
    for &(from, to) in &f.db_map {
        if let Some(other) = db_map.insert(from, to).filter(|&other| other != to) {
            return Err(usage(format!(
                "--db-map maps db {from} twice (to {other} and to {to})"
            )));
        }
    }
    let opts = DiffOptions {
        filter: filter(&args.filter, now_ms)?,
        db_map,
        ttl_tolerance_ms: args.ttl_tolerance,
        ignore_ttl: args.ignore_ttl,
        memory_limit: args.memory_limit.max(1 << 20),
        buckets: args.buckets,
        temp_dir: args.temp_dir.clone(),
        parser: args.read.builder(),
    };
    let bar = progress_bar((a.bytes().len() + b.bytes().len()) as u64);
    let mut tick = tick(&bar);
    let mut shown = 0usize;
    let mut stdout = std::io::stdout().lock();
    let mut line = Vec::new();
    let summary = match &args.jsonl {
        Some(path) => {
            let mut out = AtomicFile::create(path).map_err(|e| io_context(e, path))?;
            let summary = diff(
                a.bytes(),
                b.bytes(),
                &opts,
                &mut |d| {
                    line.clear();
                    d.write_json(&mut line);
                    line.push(b'\n');
                    out.write_all(&line).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })
                },
                &mut tick,
            )?;
            out.commit().map_err(|e| io_context(e, path))?;
            summary
        }
        None => diff(
            a.bytes(),
            b.bytes(),
            &opts,
            &mut |d| {
                shown += 1;
                if args.json || shown > 20 {
                    return Ok(());
                }
                line.clear();
                d.write_json(&mut line);
                line.push(b'\n');
                stdout.write_all(&line)
            },
            &mut tick,
        )?,
    };
    drop(tick);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(stdout, "{text}").map_err(Failure::Io)?;
    } else {
        if shown > 20 {
            writeln!(
                stdout,
                "... {} more (--jsonl FILE lists them all)",
                shown - 20
            )
            .map_err(Failure::Io)?;
        }
        summary.write_text(&mut stdout).map_err(Failure::Io)?;
    }
    if summary.equal_snapshots() {
        Ok(())
    } else {
        Err(Failure::Refused(String::new()))
    }
}

fn filter(a: &FilterArgs, now_ms: i64) -> Result<rdb_writer::filter::Filter, Failure> {
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

fn slot_map(a: &SplitArgs) -> Result<Option<rdb_writer::slot::SlotMap>, Failure> {
    use rdb_writer::slot::SlotMap;
    let map = match (a.shards, &a.slots, &a.cluster_nodes) {
        (Some(n), _, _) => SlotMap::even(n),
        (_, Some(spec), _) => SlotMap::parse(spec),
        (_, _, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| io_context(e, path))?;
            SlotMap::from_cluster_nodes(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        _ => return Ok(None),
    };
    map.map(Some).map_err(usage)
}

fn usage(msg: String) -> Failure {
    Failure::Usage(msg)
}

fn io_context(e: std::io::Error, path: &Path) -> Failure {
    // A SAS URL given where a FILE goes must not be echoed.
    let shown = rdb_cli::azure::sas::redact(&path.display().to_string());
    Failure::Io(std::io::Error::new(e.kind(), format!("{shown}: {e}")))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap quotes unexpected arguments, e.g. a SAS URL given without --sas-url.
        Err(e) if e.use_stderr() => {
            eprint!("{}", rdb_cli::azure::sas::redact(&e.render().to_string()));
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
        Err(e) => e.exit(),
    };
    if let Err(e) = rdb_cli::output::clean_up_when_interrupted() {
        eprintln!("rdbkit: warning: no interrupt handler ({e}): Ctrl-C may leave a .tmp file");
    }
    // As rayon counts them by default: RAYON_NUM_THREADS, else one per core.
    let threads = cli
        .threads
        .or_else(|| {
            let n = std::env::var("RAYON_NUM_THREADS")
                .ok()?
                .parse::<usize>()
                .ok()?;
            (n > 0).then_some(n)
        })
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut pool = rayon::ThreadPoolBuilder::new().num_threads(threads);
    // This thread runs the pipelines' serial stages and joins the batches: as a worker of
    // the pool it does so without waking another thread and sleeping for every batch.
    // Not with one thread, where it would be the only worker and a job handed over from
    // another thread would wait for it forever.
    if threads > 1 {
        pool = pool.use_current_thread();
    }
    if let Err(e) = pool.build_global() {
        eprintln!("rdbkit: error: --threads {threads}: {e}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`rdbkit export ... | head`) is not an error.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        // `check` has already said why.
        Err(Failure::Refused(m)) if m.is_empty() => ExitCode::from(1),
        Err(e) => {
            eprintln!("rdbkit: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Clap's own consistency checks over every subcommand and argument.
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
