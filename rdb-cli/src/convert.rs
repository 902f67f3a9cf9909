//! `rdbkit convert`: re-encode a snapshot for a target server, with every loss explicit.

use std::io::Write;
use std::path::Path;

use rdb_parser::ParserBuilder;
use rdb_writer::convert::{self, ConvertError, ConvertOptions, ConvertSummary, Loss, LossKind};

use crate::json;
use crate::output::AtomicFile;

/// The subcommand a loss is reported by: each has its own flags, and a hint names only
/// flags that subcommand takes. `check` says what `rdbkit convert` would need, so its fixes
/// are convert's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintFor {
    Convert,
    Merge,
    Export,
    Restore,
}

/// The flags of `for_` that deal with each kind of loss: the one place where the writer's
/// kinds meet flag names (errors, `check` fixes and reports all read it). A test checks
/// every flag named here against each subcommand's definition.
pub fn remedy(kind: LossKind, for_: HintFor) -> &'static str {
    // convert and merge share their loss flags; restore has filters but neither --modules,
    // --dbs nor --on-conflict; export has only the flags of its RESP formats.
    let full = matches!(for_, HintFor::Convert | HintFor::Merge);
    let restore = for_ == HintFor::Restore;
    match kind {
        LossKind::FieldTtls | LossKind::ExpiredFields => {
            "--field-ttls drop makes the fields persistent, --field-ttls drop-expired also \
             deletes fields already expired"
        }
        LossKind::Functions if full => {
            "--functions drop leaves them out (--functions-file F saves them as FUNCTION LOAD \
             commands)"
        }
        LossKind::Functions => "--functions drop leaves them out",
        LossKind::ModuleValue if full => {
            "--modules keep when the target loads the module, --modules drop leaves such keys \
             out (--exclude-module NAME only some)"
        }
        LossKind::ModuleValue if restore => {
            "--exclude-module NAME leaves such keys out (the target must have the module to \
             load them)"
        }
        LossKind::ModuleAux if full => {
            "--modules keep when the target loads the module, --modules drop leaves module data \
             out"
        }
        LossKind::ModuleValue | LossKind::ModuleAux => {
            "no flag of this command leaves module data out: rdbkit convert can, first"
        }
        LossKind::Databases if full => {
            "--dbs merge-into-0 moves every key to db 0, --dbs drop-others leaves other dbs out, \
             --db-map FROM:TO maps one db to another"
        }
        LossKind::ClusterDatabases if full => "--dbs merge-into-0 or --dbs drop-others",
        LossKind::Databases | LossKind::ClusterDatabases if restore => {
            "--db N takes one db only, --db-map FROM:TO maps one db to another"
        }
        LossKind::Databases | LossKind::ClusterDatabases => {
            "no flag of this command moves keys between dbs: rdbkit convert can, first"
        }
        LossKind::DuplicateKey if full => {
            "--on-conflict first|last keeps one copy (without a db merge, keys of different \
             dbs do not meet)"
        }
        LossKind::DuplicateKey if restore => {
            "--on-exists skip keeps the first copy, --on-exists replace the last"
        }
        LossKind::DuplicateKey => {
            "no flag of this command keeps one copy: rdbkit convert can, first"
        }
        LossKind::EmptyKey => "--allow-empty-keys reads them and leaves them out",
        LossKind::FieldExpiryRange if full || restore => {
            "no flag keeps them: such expiry times are outside any real date; leave the key \
             out with --exclude"
        }
        LossKind::FieldExpiryRange => {
            "no flag keeps them: such expiry times are outside any real date"
        }
        LossKind::Type if full || restore => {
            "no flag converts it; leave the key out with --exclude"
        }
        LossKind::Type => "no flag converts it",
        LossKind::StreamIdmp => {
            "--stream-idmp drop writes such streams with their entries and without the \
             producers' state"
        }
        LossKind::KeyMeta => "no flag keeps it: the target has no key metadata; it is reported",
    }
}

/// A conversion error as a failure of `for_`; a refusal names the flags that deal with it.
pub fn failure(e: ConvertError, for_: HintFor) -> crate::Failure {
    match e {
        ConvertError::Parse(p) => crate::Failure::Data(p),
        ConvertError::Io(io) => match refusal(&io) {
            Some(why) => crate::Failure::Refused(why.to_owned()),
            None => crate::Failure::Io(io),
        },
        refused @ ConvertError::Unrepresentable { kind, .. } => {
            crate::Failure::Refused(format!("{refused}; {}", remedy(kind, for_)))
        }
    }
}

/// A refusal of the input found by the [`Guard`] during the conversion, carried out of the
/// writer as an I/O error of this type.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(message: String) -> ConvertError {
    ConvertError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        Refused(message),
    ))
}

/// The message of a refusal of the input, when `io` carries one (see [`failure`]).
pub fn refusal(io: &std::io::Error) -> Option<&str> {
    io.get_ref()
        .and_then(|e| e.downcast_ref::<Refused>())
        .map(|r| r.0.as_str())
}

/// What a conversion refuses in its inputs, as [`preflight`] does: a value a loader
/// refuses (verify's deep check and check's loader rules), and duplicate keys unless
/// `conflict` keeps one copy. Written to files that appear only when complete, the checks
/// run inside the conversion's own walk, so that the file is read once; a refusal then
/// discards what was written. To standard output or a pipe, [`preflight`] runs first, so
/// that nothing is written at all.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Each input's name, for messages, in input order.
    pub names: Vec<String>,
    pub conflict: convert::ConflictPolicy,
    /// Whether a CRC mismatch counts (off with `--no-verify-checksum`).
    pub checksum: bool,
    /// Whether empty collections are accepted (`--allow-empty-keys`).
    pub empty_keys: bool,
    /// Whether the target refuses a compressed string declaring length 0 (Redis 6.0 and
    /// older: [`crate::check::refuses_empty_lzf`]), which verify only warns about.
    pub empty_lzf_refused: bool,
}

impl Guard {
    fn name(&self, input: usize) -> &str {
        self.names.get(input).map_or("input", String::as_str)
    }

    /// Whether a problem of verify's stops the conversion (`None`), and with which message.
    fn refuses(&self, input: usize, p: &crate::verify::Problem) -> Option<String> {
        use crate::verify::Check;
        if p.is_empty_lzf() && self.empty_lzf_refused {
            return Some(target_refuses(self.name(input), p));
        }
        if p.severity != crate::verify::Severity::Error {
            return None;
        }
        let name = self.name(input);
        match p.check {
            Check::Checksum if !self.checksum => None,
            // The parser says it better, with its own offset, when the pass reaches it.
            Check::EmptyCollection => None,
            Check::DuplicateKey if self.conflict != convert::ConflictPolicy::Error => None,
            Check::DuplicateKey => Some(format!(
                "{name}: {}; {}",
                located(p),
                remedy(LossKind::DuplicateKey, HintFor::Convert)
            )),
            _ => Some(damaged(name, &located(p))),
        }
    }

    /// The first refused problem of `problems`, by offset.
    fn first_refused(&self, input: usize, problems: &[crate::verify::Problem]) -> Option<String> {
        problems
            .iter()
            .filter_map(|p| self.refuses(input, p).map(|m| (p.offset, m)))
            .min_by_key(|(offset, _)| *offset)
            .map(|(_, m)| m)
    }

    /// Runs `convert` (one of the writer's `_with` passes) with the guard's checks in its
    /// walk; the keys stored twice are looked for at the end, before anything is kept.
    fn inspecting<T>(
        &self,
        inputs: &[&[u8]],
        convert: impl FnOnce(convert::Inspection<'_, crate::verify::Found>) -> Result<T, ConvertError>,
    ) -> Result<T, ConvertError> {
        use crate::verify::{Found, Inline};
        let check = |x: &convert::Inspected<'_, '_>| -> Result<Found, ConvertError> {
            let found = Inline::check(x.item, x.start, x.data);
            if let Some(message) = self.first_refused(x.input, found.problems()) {
                return Err(refused(message));
            }
            if let rdb_parser::Item::Key(e) = x.item {
                if let Some((_, message)) = crate::check::loader_problem(e) {
                    return Err(refused(damaged(
                        self.name(x.input),
                        &key_problem(e, &message),
                    )));
                }
            }
            Ok(found)
        };
        let mut walks: Vec<Inline> = inputs.iter().map(|d| Inline::new(d)).collect();
        let mut take = |x: &convert::Inspected<'_, '_>, found: Found| -> Result<(), ConvertError> {
            let Some(walk) = walks.get_mut(x.input) else {
                return Ok(());
            };
            let problems = walk.take(x.item, x.start, x.end, found, x.data);
            match self.first_refused(x.input, &problems) {
                Some(message) => Err(refused(message)),
                None => Ok(()),
            }
        };
        let done = convert(convert::Inspection {
            check: &check,
            take: &mut take,
        })?;
        if self.conflict == convert::ConflictPolicy::Error {
            for (input, (walk, data)) in walks.into_iter().zip(inputs).enumerate() {
                let duplicates = walk.duplicate_keys(data);
                if let Some(message) = self.first_refused(input, &duplicates) {
                    return Err(refused(message));
                }
            }
        }
        Ok(done)
    }

    /// [`preflight`] on each input, as the conversion's error.
    fn preflight_all(&self, inputs: &[&[u8]]) -> Result<(), ConvertError> {
        for (input, data) in inputs.iter().enumerate() {
            preflight(
                data,
                self.name(input),
                self.conflict,
                self.checksum,
                self.empty_keys,
                self.empty_lzf_refused,
            )
            .map_err(|f| match f {
                crate::Failure::Data(p) => ConvertError::Parse(p),
                crate::Failure::Io(io) => ConvertError::Io(io),
                other => refused(other.to_string()),
            })?;
        }
        Ok(())
    }
}

/// The refusal of a value the target's loader refuses although others load it.
fn target_refuses(name: &str, p: &crate::verify::Problem) -> String {
    format!(
        "{name}: {}; the target's loader refuses it, so nothing was written",
        located(p)
    )
}

/// The refusal of a damaged input.
fn damaged(name: &str, what: &str) -> String {
    format!(
        "{name}: {what}; nothing was written (a conversion would copy it under a fresh \
         checksum, which hides the damage from the target)"
    )
}

/// `key "k" (db 0) at byte N: message`.
fn key_problem(e: &rdb_parser::Entry<'_>, message: &str) -> String {
    let mut shown = String::new();
    let _ = rdb_parser::error::write_escaped(&mut shown, e.key.get(..64).unwrap_or(&e.key));
    format!(
        "key \"{shown}\" (db {}) at byte {}: {message}",
        e.db, e.offset
    )
}

/// Whether every file a command writes appears only when complete (a regular file or a
/// staged directory, not standard output or a pipe): then a refusal found late discards
/// the output, and the guard may run inside the conversion.
fn all_atomic(output: Option<&Path>, files: &SideFiles<'_>) -> bool {
    use crate::output::{check_destination, Destination};
    let file = |p: &Path| matches!(check_destination(p), Ok(Destination::File(_)));
    output.is_none_or(file) && files.report.is_none_or(file) && files.functions.is_none_or(file)
}

/// Problems of the deep walk listed before `preflight` stops counting them one by one.
const PREFLIGHT_PROBLEMS: usize = 1000;

/// Refuses an input that holds a value a loader refuses, before anything is written: a
/// conversion copies such a value under a freshly computed checksum, which would hide the
/// damage from the target. Duplicate keys are refused unless `conflict` keeps one copy.
/// `checksum`: whether a CRC mismatch counts (off with `--no-verify-checksum`; the values
/// are still checked one by one); `empty_keys`: whether empty collections are accepted
/// (with `--allow-empty-keys`; the conversion drops them).
pub fn preflight(
    data: &[u8],
    name: &str,
    conflict: convert::ConflictPolicy,
    checksum: bool,
    empty_keys: bool,
    empty_lzf_refused: bool,
) -> Result<(), crate::Failure> {
    let report = crate::verify::verify_with(data, PREFLIGHT_PROBLEMS, |_| {});
    let refuse = |what: String| crate::Failure::Refused(damaged(name, &what));
    use crate::verify::Check;
    for p in &report.problems {
        if p.is_empty_lzf() && empty_lzf_refused {
            return Err(crate::Failure::Refused(target_refuses(name, p)));
        }
        if p.severity != crate::verify::Severity::Error {
            continue;
        }
        match p.check {
            Check::Checksum if !checksum => {}
            Check::EmptyCollection if empty_keys => {}
            Check::DuplicateKey if conflict != convert::ConflictPolicy::Error => {}
            Check::DuplicateKey => {
                return Err(crate::Failure::Refused(format!(
                    "{name}: {}; {}",
                    located(p),
                    remedy(LossKind::DuplicateKey, HintFor::Convert)
                )))
            }
            // The parser says it better, with its own offset, when the pass reaches it.
            Check::EmptyCollection => {}
            _ => return Err(refuse(located(p))),
        }
    }
    if report.omitted() > 0 {
        return Err(refuse(format!(
            "more than {PREFLIGHT_PROBLEMS} problems (see rdbkit verify)"
        )));
    }
    let mut parser = ParserBuilder::new();
    parser.verify_checksum(false).allow_empty_keys(true);
    for item in parser.parse(data)?.flatten() {
        if let rdb_parser::Item::Key(e) = &item {
            if let Some((_, message)) = crate::check::loader_problem(e) {
                return Err(refuse(key_problem(e, &message)));
            }
        }
    }
    Ok(())
}

/// A problem with its place first: key, db and offset (verify's messages do not all say).
fn located(p: &crate::verify::Problem) -> String {
    let mut s = String::new();
    if let Some(k) = &p.key {
        s.push_str("key \"");
        let _ = rdb_parser::error::write_escaped(&mut s, k.get(..64).unwrap_or(k));
        s.push_str("\" ");
        if let Some(db) = p.db {
            s.push_str(&format!("(db {db}) "));
        }
    }
    s.push_str(&format!("at byte {}: {}", p.offset, p.message));
    s
}

/// Files written beside the output: the loss report and dropped function libraries.
#[derive(Debug, Default, Clone, Copy)]
pub struct SideFiles<'a> {
    /// JSON Lines, one per loss.
    pub report: Option<&'a Path>,
    /// Dropped function libraries as FUNCTION LOAD commands (RESP).
    pub functions: Option<&'a Path>,
}

/// The side files of one command, open until [`Side::commit`].
struct Side {
    report: Option<AtomicFile>,
    functions: Option<AtomicFile>,
    line: Vec<u8>,
}

impl Side {
    fn open(files: &SideFiles<'_>) -> std::io::Result<Side> {
        let create = |p: &Path| {
            AtomicFile::create(p)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        };
        Ok(Side {
            report: files.report.map(create).transpose()?,
            functions: files.functions.map(create).transpose()?,
            line: Vec::with_capacity(256),
        })
    }

    fn loss(&mut self, loss: &Loss<'_>) -> std::io::Result<()> {
        if let (Some(f), Some(code)) = (self.functions.as_mut(), loss.payload) {
            write_function_load(f, code)?;
        }
        if let Some(r) = self.report.as_mut() {
            self.line.clear();
            write_loss(&mut self.line, loss);
            r.write_all(&self.line)?;
        }
        Ok(())
    }

    fn commit(self) -> std::io::Result<()> {
        if let Some(r) = self.report {
            r.commit()?;
        }
        if let Some(f) = self.functions {
            f.commit()?;
        }
        Ok(())
    }
}

/// Converts `data` into `output` (written atomically), with the side files. On any error
/// no output, report or functions file is left behind.
/// `guard` says what in the input stops the conversion.
pub fn run(
    data: &[u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    output: &Path,
    files: &SideFiles<'_>,
    progress: &mut dyn FnMut(u64),
    guard: &Guard,
) -> Result<ConvertSummary, ConvertError> {
    let folded = all_atomic(Some(output), files);
    if !folded {
        guard.preflight_all(&[data])?;
    }
    let out = AtomicFile::create(output)?;
    let mut side = Side::open(files)?;
    let mut on_loss = |l: &Loss<'_>| side.loss(l);
    let (mut outs, summary) = if folded {
        guard.inspecting(&[data], |inspect| {
            convert::convert_split_with(
                data,
                parser,
                opts,
                vec![out],
                None,
                &mut on_loss,
                progress,
                inspect,
            )
        })?
    } else {
        convert::convert_split(data, parser, opts, vec![out], None, &mut on_loss, progress)?
    };
    if let Some(out) = outs.pop() {
        out.commit()?;
    }
    side.commit()?;
    Ok(summary)
}

/// Merges `inputs` into `output` (written atomically), with the side files.
#[allow(clippy::too_many_arguments)]
pub fn run_merge(
    inputs: &[&[u8]],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    conflict: convert::ConflictPolicy,
    output: &Path,
    files: &SideFiles<'_>,
    progress: &mut dyn FnMut(u64),
    guard: &Guard,
) -> Result<ConvertSummary, ConvertError> {
    let folded = all_atomic(Some(output), files);
    if !folded {
        guard.preflight_all(inputs)?;
    }
    let out = AtomicFile::create(output)?;
    let mut side = Side::open(files)?;
    let mut on_loss = |l: &Loss<'_>| side.loss(l);
    let (out, summary) = if folded {
        guard.inspecting(inputs, |inspect| {
            convert::merge_with(
                inputs,
                parser,
                opts,
                conflict,
                out,
                &mut on_loss,
                progress,
                inspect,
            )
        })?
    } else {
        convert::merge(inputs, parser, opts, conflict, out, &mut on_loss, progress)?
    };
    out.commit()?;
    side.commit()?;
    Ok(summary)
}

/// One report line: `{"db":0,"key":B,"action":"...","reason":"..."}`.
pub fn write_loss(line: &mut Vec<u8>, loss: &Loss<'_>) {
    line.extend_from_slice(b"{\"db\":");
    json::opt_int(line, loss.db);
    line.extend_from_slice(b",\"key\":");
    match loss.key {
        Some(k) => json::bytes(line, k),
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"action\":");
    json::string(line, loss.action);
    line.extend_from_slice(b",\"reason\":");
    json::string(line, &loss.reason);
    line.extend_from_slice(b"}\n");
}

/// A library as a RESP `FUNCTION LOAD REPLACE <code>` command, for `redis-cli --pipe`.
fn write_function_load(out: &mut dyn Write, code: &[u8]) -> std::io::Result<()> {
    write!(
        out,
        "*4\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n$7\r\nREPLACE\r\n${}\r\n",
        code.len()
    )?;
    out.write_all(code)?;
    out.write_all(b"\r\n")
}

/// The closing summary, for people.
/// The summary as JSON (`convert --json`, `merge --json`).
pub fn summary_json(s: &ConvertSummary, target: &str) -> serde_json::Value {
    serde_json::json!({
        "target": target,
        "keys_read": s.keys_read,
        "keys_written": s.keys_written,
        "passed_through": s.passed_through,
        "transcoded": s.transcoded,
        "keys_filtered": s.keys_filtered,
        "bytes_written": s.bytes_written,
        "losses": {
            "keys_dropped": s.keys_dropped,
            "keys_with_field_ttls_dropped": s.keys_with_field_ttls_dropped,
            "fields_dropped": s.fields_dropped,
            "functions_dropped": s.functions_dropped,
            "module_aux_dropped": s.module_aux_dropped,
            "streams_idmp_dropped": s.streams_idmp_dropped,
            "key_meta_dropped": s.key_meta_dropped,
        },
        "hints_dropped": s.hints_dropped,
        "outputs": s.outputs.iter().map(|o| serde_json::json!({"keys": o.keys, "bytes": o.bytes})).collect::<Vec<_>>(),
    })
}

pub fn write_summary(out: &mut dyn Write, s: &ConvertSummary, target: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "converted for {target}: {} of {} keys written ({} copied as stored, {} re-encoded), {} bytes",
        s.keys_written, s.keys_read, s.passed_through, s.transcoded, s.bytes_written
    )?;
    if s.keys_filtered > 0 {
        writeln!(out, "{} keys left out by the filters", s.keys_filtered)?;
    }
    if s.outputs.len() > 1 {
        for (i, o) in s.outputs.iter().enumerate() {
            writeln!(out, "  shard-{i}.rdb: {} keys, {} bytes", o.keys, o.bytes)?;
        }
    }
    let losses = [
        (s.keys_dropped, "keys dropped"),
        (
            s.keys_with_field_ttls_dropped,
            "hashes lost their field TTLs",
        ),
        (s.fields_dropped, "expired hash fields dropped"),
        (s.functions_dropped, "function libraries dropped"),
        (s.module_aux_dropped, "module aux records dropped"),
        (s.streams_idmp_dropped, "streams lost their IDMP state"),
        (s.key_meta_dropped, "key metadata records dropped"),
    ];
    let listed: Vec<String> = losses
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if listed.is_empty() {
        writeln!(out, "nothing lost")?;
    } else {
        writeln!(out, "losses: {}", listed.join(", "))?;
    }
    if s.hints_dropped > 0 {
        writeln!(
            out,
            "({} slot sizing hints left out; the target does not read them)",
            s.hints_dropped
        )?;
    }
    Ok(())
}

/// A writer that computes the SHA-256 of everything written through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Converts `data` into one snapshot per shard of `slots`, in the directory `dir`:
/// `shard-<i>.rdb` and `manifest.json` (each file's slot ranges, keys, bytes and SHA-256).
/// All files appear together, only when every shard was written.
#[allow(clippy::too_many_arguments)]
pub fn run_split(
    data: &[u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    slots: &rdb_writer::slot::SlotMap,
    dir: &Path,
    files: &SideFiles<'_>,
    progress: &mut dyn FnMut(u64),
    guard: &Guard,
) -> Result<ConvertSummary, ConvertError> {
    use sha2::Digest;
    // The shards and the manifest appear together when complete; the side files may not.
    let folded = all_atomic(None, files);
    if !folded {
        guard.preflight_all(&[data])?;
    }
    let staging = Staging::new(dir)?;
    let names: Vec<String> = (0..slots.len()).map(|i| format!("shard-{i}.rdb")).collect();
    let outs = names
        .iter()
        .map(|n| {
            AtomicFile::create(&staging.path.join(n)).map(|f| Hashing {
                inner: f,
                hasher: sha2::Sha256::new(),
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut side = Side::open(files)?;
    let mut on_loss = |l: &Loss<'_>| side.loss(l);
    let (outs, summary) = if folded {
        guard.inspecting(&[data], |inspect| {
            convert::convert_split_with(
                data,
                parser,
                opts,
                outs,
                Some(slots),
                &mut on_loss,
                progress,
                inspect,
            )
        })?
    } else {
        convert::convert_split(
            data,
            parser,
            opts,
            outs,
            Some(slots),
            &mut on_loss,
            progress,
        )?
    };
    let mut shards = Vec::new();
    let mut shard_files = Vec::new();
    for (((out, name), ranges), stats) in outs
        .into_iter()
        .zip(&names)
        .zip(&slots.shards)
        .zip(&summary.outputs)
    {
        let digest = out.hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        shards.push(serde_json::json!({
            "file": name,
            "slots": ranges.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
            "keys": stats.keys,
            "bytes": stats.bytes,
            "sha256": hex,
        }));
        shard_files.push(out.inner);
    }
    let manifest = serde_json::json!({
        "target": opts.target.name,
        "rdb_version": opts.target.version.number,
        "shards": shards,
    });
    let mut manifest_file = AtomicFile::create(&staging.path.join("manifest.json"))?;
    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
    manifest_file.write_all(text.as_bytes())?;
    manifest_file.write_all(b"\n")?;
    for f in shard_files {
        f.commit()?;
    }
    manifest_file.commit()?;
    staging.commit()?;
    side.commit()?;
    Ok(summary)
}

/// A directory built beside its destination and renamed into place whole, so the shard
/// files and their manifest appear together, and never mix with an earlier run's.
pub(crate) struct Staging {
    pub(crate) path: std::path::PathBuf,
    dest: std::path::PathBuf,
    done: bool,
}

impl Staging {
    pub(crate) fn new(dest: &Path) -> std::io::Result<Staging> {
        crate::output::check_directory(dest)?;
        if let Ok(mut entries) = std::fs::read_dir(dest) {
            if entries.next().is_some() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty: shards are written only into a new or \
                     empty directory, so that no file of an earlier split remains",
                ));
            }
        }
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let path = crate::output::temp_name(dest);
        crate::output::create_unfinished(&path, |p| std::fs::create_dir(p))?;
        Ok(Staging {
            path,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    pub(crate) fn commit(mut self) -> std::io::Result<()> {
        let dest = self.dest.clone();
        crate::output::commit_rename(&self.path, &self.dest, || {
            if dest.is_dir() {
                // Checked empty above; remove_dir fails if anything appeared since.
                std::fs::remove_dir(&dest)?;
            }
            Ok(())
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
            crate::output::finished(&self.path);
        }
    }
}
