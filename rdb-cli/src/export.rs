//! `rdbkit export --format jsonl`: one JSON object per line, in file order.
//! The schema is `docs/export-jsonl.md`.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use rdb_parser::{Element, Entry, Function, Item, ParserBuilder, Stream, Value};

use rdb_pipeline::Spanned;

use crate::json;
use crate::Failure;

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub keys: u64,
    pub lines: u64,
}

/// Writes the whole snapshot as JSON Lines to `out`. Key lines are formatted on all
/// cores and written in file order; the checksum is verified on another thread.
pub fn jsonl(
    data: &[u8],
    parser: &ParserBuilder,
    out: &mut dyn Write,
    progress: impl FnMut(u64),
) -> Result<ExportSummary, Failure> {
    rdb_pipeline::checked(data, parser, |p, eof| {
        jsonl_unchecked(data, p, eof, out, progress)
    })
}

fn jsonl_unchecked<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<ExportSummary, Failure> {
    let mut summary = ExportSummary::default();
    let mut line = Vec::with_capacity(4096);
    let mut header: Option<Header> = None;
    let mut header_done = false;
    let emit = |out: &mut dyn Write,
                line: &mut Vec<u8>,
                summary: &mut ExportSummary|
     -> Result<(), Failure> {
        line.push(b'\n');
        out.write_all(line).map_err(Failure::Io)?;
        line.clear();
        summary.lines += 1;
        Ok(())
    };
    // A key's line, formatted on whichever core picked it up.
    let work = |s: Spanned<'data>| -> Result<(Item<'data>, Option<Vec<u8>>), Failure> {
        match &s.item {
            // A huge value is formatted by the sink, written out piece by piece.
            Item::Key(entry) if entry.raw_value.len() > IN_PIECES_ABOVE => Ok((s.item, None)),
            Item::Key(entry) => {
                let mut l = Vec::with_capacity(64 + entry.raw_value.len() * 2);
                let mut line = Line::worker(&mut l);
                key_into(&mut line, entry).map_err(|e| e.in_key(entry.db, &entry.key))?;
                if line.overflow {
                    // Small in the file, huge formatted (LZF, a stream node's shared
                    // fields): the sink writes it in pieces instead.
                    return Ok((s.item, None));
                }
                l.push(b'\n');
                Ok((s.item, Some(l)))
            }
            _ => Ok((s.item, None)),
        }
    };
    let sink = |(item, formatted): (Item<'data>, Option<Vec<u8>>)| -> Result<(), Failure> {
        // A key line formatted by a worker goes straight out (the header is long written:
        // it ends at the first item that is not AUX, such as this key).
        if let (Item::Key(entry), Some(formatted)) = (&item, &formatted) {
            if header_done {
                out.write_all(formatted).map_err(Failure::Io)?;
                summary.lines += 1;
                summary.keys += 1;
                progress(entry.offset);
                return Ok(());
            }
        }
        // AUX fields before anything else fold into the header line; a name that is not
        // UTF-8 gets its own `aux` line, where it stays binary-safe.
        if let (Item::Aux(aux), Some(h)) = (&item, header.as_mut()) {
            let utf8 = std::str::from_utf8(&aux.key).is_ok();
            if !header_done && utf8 && h.names.insert(aux.key.to_vec()) {
                h.aux.push((aux.key.to_vec(), aux.value.to_vec()));
                return Ok(());
            }
        }
        if let Item::Header(version) = &item {
            header = Some(Header {
                magic: version.magic.as_str(),
                number: version.number,
                aux: Vec::new(),
                names: HashSet::new(),
            });
            return Ok(());
        }
        if !header_done {
            header_done = true;
            if let Some(h) = &header {
                h.write(&mut line);
                emit(&mut *out, &mut line, &mut summary)?;
            }
        }
        match item {
            Item::Eof(eof) => {
                eof_seen.set(eof);
                return Ok(());
            }
            Item::Header(_) | Item::SelectDb(_) | Item::ResizeDb { .. } => return Ok(()),
            Item::Aux(aux) => {
                line.extend_from_slice(b"{\"kind\":\"aux\",\"key\":");
                json::bytes(&mut line, &aux.key);
                line.extend_from_slice(b",\"value\":");
                json::bytes(&mut line, &aux.value);
                line.push(b'}');
            }
            Item::ModuleAux(m) => {
                line.extend_from_slice(b"{\"kind\":\"module_aux\",\"module\":");
                json::string(&mut line, &m.id.name());
                line.extend_from_slice(b",\"encver\":");
                json::int(&mut line, m.id.encver());
                line.extend_from_slice(b",\"when\":");
                json::string(
                    &mut line,
                    if m.when == 1 {
                        "before_keys"
                    } else {
                        "after_keys"
                    },
                );
                line.extend_from_slice(b",\"raw\":");
                json::bytes(&mut line, m.raw);
                line.push(b'}');
            }
            Item::Function(f) => write_function(&mut line, &f),
            Item::SlotInfo {
                slot,
                keys,
                expires,
            } => {
                line.extend_from_slice(b"{\"kind\":\"slot_info\",\"slot\":");
                json::int(&mut line, slot);
                line.extend_from_slice(b",\"keys\":");
                json::int(&mut line, keys);
                line.extend_from_slice(b",\"expires\":");
                json::int(&mut line, expires);
                line.push(b'}');
            }
            Item::SlotImport(s) => {
                line.extend_from_slice(b"{\"kind\":\"slot_import\",\"name\":");
                json::bytes(&mut line, &s.name);
                line.extend_from_slice(b",\"ranges\":[");
                for (i, (a, b)) in s.ranges.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.push(b'[');
                    json::int(&mut line, *a);
                    line.push(b',');
                    json::int(&mut line, *b);
                    line.push(b']');
                }
                line.extend_from_slice(b"]}");
            }
            Item::KeyMeta(m) => {
                // Redis 8.6 module key metadata for the next key: opaque, like module data.
                line.extend_from_slice(b"{\"kind\":\"key_meta\",\"classes\":[");
                for (i, c) in m.classes.iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    line.extend_from_slice(b"{\"spec\":");
                    json::int(&mut line, c.spec);
                    line.extend_from_slice(b",\"raw\":");
                    json::bytes(&mut line, c.raw);
                    line.push(b'}');
                }
                line.extend_from_slice(b"]}");
            }
            Item::Key(entry) => {
                match formatted {
                    Some(formatted) => {
                        // Already ends in its newline.
                        line.extend_from_slice(formatted.strip_suffix(b"\n").unwrap_or(&formatted));
                    }
                    None => {
                        let mut pieces = Line {
                            buf: &mut line,
                            out: Some(&mut *out),
                            error: None,
                            overflow: false,
                            max: usize::MAX,
                        };
                        key_into(&mut pieces, &entry)
                            .map_err(|e| e.in_key(entry.db, &entry.key))?;
                        if let Some(e) = pieces.error {
                            return Err(Failure::Io(e));
                        }
                    }
                }
                summary.keys += 1;
                progress(entry.offset);
            }
        }
        emit(&mut *out, &mut line, &mut summary)
    };
    rdb_pipeline::ordered(parser.parse(data)?, work, sink)?;
    out.flush().map_err(Failure::Io)?;
    Ok(summary)
}

struct Header {
    magic: &'static str,
    number: u32,
    aux: Vec<(Vec<u8>, Vec<u8>)>,
    names: HashSet<Vec<u8>>,
}

impl Header {
    fn write(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(b"{\"kind\":\"header\",\"magic\":");
        json::string(line, self.magic);
        line.extend_from_slice(b",\"rdb_version\":");
        json::int(line, self.number);
        line.extend_from_slice(b",\"aux\":{");
        for (i, (k, v)) in self.aux.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            json::string(line, &String::from_utf8_lossy(k));
            line.push(b':');
            json::bytes(line, v);
        }
        line.extend_from_slice(b"}}");
    }
}

fn write_function(line: &mut Vec<u8>, f: &Function<'_>) {
    line.extend_from_slice(b"{\"kind\":\"function\"");
    match f {
        Function::Library { code } => {
            line.extend_from_slice(b",\"code\":");
            json::bytes(line, code);
        }
        Function::PreGa {
            name,
            engine,
            description,
            code,
        } => {
            line.extend_from_slice(b",\"name\":");
            json::bytes(line, name);
            line.extend_from_slice(b",\"engine\":");
            json::bytes(line, engine);
            line.extend_from_slice(b",\"description\":");
            match description {
                Some(d) => json::bytes(line, d),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b",\"code\":");
            json::bytes(line, code);
        }
    }
    line.push(b'}');
}

fn element(line: &mut Vec<u8>, e: &Element<'_>) {
    match e {
        Element::Bytes(b) => json::bytes(line, b),
        Element::Int(v) => {
            line.push(b'"');
            json::int(line, *v);
            line.push(b'"');
        }
    }
}

/// Values whose stored form is larger than this are formatted on the writing thread and
/// written out in pieces: formatted whole, a 1 GB list held about 3 GB in memory.
const IN_PIECES_ABOVE: usize = 8 << 20;
/// The size of those pieces.
const PIECE_BYTES: usize = 1 << 20;
/// The most a worker formats of one line before giving the key to the writing thread:
/// the stored size does not bound the formatted one.
const BUFFERED_MAX: usize = 8 << 20;

/// A line being formatted: a buffer and, for a huge value, where to write it out as it
/// grows (an I/O error is kept for the end of the line, and the buffer still drained).
struct Line<'b, 'o> {
    buf: &'b mut Vec<u8>,
    out: Option<&'o mut dyn Write>,
    error: Option<std::io::Error>,
    /// A line without `out` grew past `max`: what it holds is incomplete.
    overflow: bool,
    max: usize,
}

impl std::ops::Deref for Line<'_, '_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        self.buf
    }
}

impl std::ops::DerefMut for Line<'_, '_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        self.buf
    }
}

impl<'b> Line<'b, '_> {
    fn buffered(buf: &'b mut Vec<u8>) -> Self {
        Line {
            buf,
            out: None,
            error: None,
            overflow: false,
            max: usize::MAX,
        }
    }

    /// A worker's line: given up past [`BUFFERED_MAX`] (see `overflow`).
    fn worker(buf: &'b mut Vec<u8>) -> Self {
        Line {
            max: BUFFERED_MAX,
            ..Line::buffered(buf)
        }
    }

    /// Writes the buffer out once it holds a piece (only when formatting in pieces);
    /// true when a worker's line gave up (the caller may stop early).
    #[inline]
    fn spill(&mut self) -> bool {
        if self.buf.len() >= PIECE_BYTES {
            self.drain();
            return self.capped(0);
        }
        self.overflow
    }

    /// Gives up on a buffered line that would pass `max` (see `overflow`).
    fn capped(&mut self, more: usize) -> bool {
        if self.out.is_none() && self.buf.len().saturating_add(more) > self.max {
            self.overflow = true;
            self.buf.clear();
        }
        self.overflow
    }

    #[cold]
    fn drain(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if self.error.is_none() {
                if let Err(e) = out.write_all(self.buf) {
                    self.error = Some(e);
                }
            }
            self.buf.clear();
        }
    }

    /// [`json::bytes`], in pieces when the line is written out as it grows.
    fn bytes(&mut self, b: &[u8]) {
        if self.capped(b.len()) {
            return;
        }
        match self.out.as_mut() {
            Some(out) if b.len() > PIECE_BYTES => {
                let error = &mut self.error;
                json::bytes_in_pieces(&mut *self.buf, b, PIECE_BYTES, |piece| {
                    if error.is_none() {
                        if let Err(e) = out.write_all(piece) {
                            *error = Some(e);
                        }
                    }
                    piece.clear();
                });
            }
            _ => json::bytes(&mut *self.buf, b),
        }
    }
}

/// Appends one `key` line (without the newline).
pub fn write_key(line: &mut Vec<u8>, entry: &Entry<'_>) -> Result<(), rdb_parser::Error> {
    key_into(&mut Line::buffered(line), entry)
}

fn key_into(line: &mut Line<'_, '_>, entry: &Entry<'_>) -> Result<(), rdb_parser::Error> {
    line.extend_from_slice(b"{\"kind\":\"key\",\"db\":");
    json::int(line, entry.db);
    line.extend_from_slice(b",\"key\":");
    line.bytes(&entry.key);
    line.extend_from_slice(b",\"type\":\"");
    line.extend_from_slice(entry.value.type_name().as_bytes());
    line.extend_from_slice(b"\",\"encoding\":\"");
    line.extend_from_slice(entry.value.encoding_name().as_bytes());
    line.extend_from_slice(b"\",\"expire_ms\":");
    json::opt_int(line, entry.expire_ms);
    line.extend_from_slice(b",\"idle_s\":");
    json::opt_int(line, entry.idle_s);
    line.extend_from_slice(b",\"freq\":");
    json::opt_int(line, entry.freq);
    line.extend_from_slice(b",\"value\":");
    value_into(line, &entry.value)?;
    line.push(b'}');
    Ok(())
}

/// Appends a value in the export's shape.
pub fn write_value(line: &mut Vec<u8>, value: &Value<'_>) -> Result<(), rdb_parser::Error> {
    value_into(&mut Line::buffered(line), value)
}

fn value_into(line: &mut Line<'_, '_>, value: &Value<'_>) -> Result<(), rdb_parser::Error> {
    match value {
        Value::String(s) => line.bytes(&s.to_bytes()?),
        Value::List(l) => elements(line, l.iter())?,
        Value::Set(s) => elements(line, s.iter())?,
        Value::ZSet(z) => {
            line.push(b'[');
            for (i, pair) in z.iter().enumerate() {
                let (member, score) = pair?;
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'[');
                element(line, &member);
                line.push(b',');
                json::score(line, score);
                line.push(b']');
                if line.spill() {
                    break;
                }
            }
            line.push(b']');
        }
        Value::Hash(h) => {
            line.push(b'[');
            for (i, field) in h.iter().enumerate() {
                let field = field?;
                if i > 0 {
                    line.push(b',');
                }
                line.push(b'[');
                element(line, &field.field);
                line.push(b',');
                element(line, &field.value);
                if let Some(t) = field.expire_ms {
                    line.push(b',');
                    json::int(line, t);
                }
                line.push(b']');
                if line.spill() {
                    break;
                }
            }
            line.push(b']');
        }
        Value::Stream(s) => write_stream(line, s)?,
        Value::Module(m) => {
            line.extend_from_slice(b"{\"module\":");
            json::string(line, &m.id.name());
            line.extend_from_slice(b",\"encver\":");
            json::int(line, m.id.encver());
            line.extend_from_slice(b",\"raw\":");
            json::bytes(line, m.raw);
            line.push(b'}');
        }
    }
    Ok(())
}

fn elements<'a>(
    line: &mut Line<'_, '_>,
    iter: impl Iterator<Item = Result<Element<'a>, rdb_parser::Error>>,
) -> Result<(), rdb_parser::Error> {
    line.push(b'[');
    for (i, e) in iter.enumerate() {
        if i > 0 {
            line.push(b',');
        }
        element(line, &e?);
        if line.spill() {
            break;
        }
    }
    line.push(b']');
    Ok(())
}

fn id(line: &mut Vec<u8>, id: rdb_parser::StreamId) {
    line.push(b'"');
    json::int(line, id.ms);
    line.push(b'-');
    json::int(line, id.seq);
    line.push(b'"');
}

fn opt_id(line: &mut Vec<u8>, v: Option<rdb_parser::StreamId>) {
    match v {
        Some(v) => id(line, v),
        None => line.extend_from_slice(b"null"),
    }
}

/// Redis 8.6 idempotent-producer state: the settings and counters `XINFO STREAM` shows
/// (the two `_tracked` counts derived from the stored producers), then the producers.
fn write_idmp(line: &mut Vec<u8>, m: &rdb_parser::Idmp<'_>) {
    line.extend_from_slice(b",\"idmp\":{\"duration\":");
    json::int(line, m.duration_s);
    line.extend_from_slice(b",\"max_size\":");
    json::int(line, m.max_entries);
    line.extend_from_slice(b",\"pids_tracked\":");
    json::int(line, m.producer_count());
    line.extend_from_slice(b",\"iids_tracked\":");
    json::int(line, m.iid_count());
    line.extend_from_slice(b",\"iids_added\":");
    json::int(line, m.iids_added);
    line.extend_from_slice(b",\"iids_duplicates\":");
    json::int(line, m.iids_duplicates);
    line.extend_from_slice(b",\"producers\":[");
    for (i, p) in m.producers().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"pid\":");
        json::bytes(line, &p.pid);
        line.extend_from_slice(b",\"entries\":[");
        for (j, e) in p.entries().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"iid\":");
            json::bytes(line, &e.iid);
            line.extend_from_slice(b",\"id\":");
            id(line, e.id);
            line.push(b'}');
        }
        line.extend_from_slice(b"]}");
    }
    line.extend_from_slice(b"]}");
}

fn write_stream(line: &mut Line<'_, '_>, s: &Stream<'_>) -> Result<(), rdb_parser::Error> {
    line.extend_from_slice(b"{\"length\":");
    json::int(line, s.length);
    line.extend_from_slice(b",\"last_id\":");
    id(line, s.last_id);
    line.extend_from_slice(b",\"first_id\":");
    opt_id(line, s.first_id);
    line.extend_from_slice(b",\"max_deleted_id\":");
    opt_id(line, s.max_deleted_id);
    line.extend_from_slice(b",\"entries_added\":");
    json::opt_int(line, s.entries_added);
    if let Some(idmp) = &s.idmp {
        write_idmp(line, idmp);
    }
    line.extend_from_slice(b",\"entries\":[");
    let mut entries = s.entries();
    let mut first = true;
    while let Some(entry) = entries.next_entry() {
        let entry = entry?;
        if !std::mem::take(&mut first) {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"id\":");
        id(line, entry.id);
        line.extend_from_slice(b",\"fields\":[");
        for (j, (f, v)) in entry.fields.iter().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.push(b'[');
            element(line, f);
            line.push(b',');
            element(line, v);
            line.push(b']');
        }
        line.extend_from_slice(b"]}");
        if line.spill() {
            break;
        }
    }
    line.extend_from_slice(b"],\"groups\":[");
    for (i, g) in s.groups().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"name\":");
        json::bytes(line, &g.name);
        line.extend_from_slice(b",\"last_id\":");
        id(line, g.last_id);
        line.extend_from_slice(b",\"entries_read\":");
        json::opt_int(line, g.entries_read.filter(|&n| n != u64::MAX));
        line.extend_from_slice(b",\"pending\":[");
        let owner: HashMap<rdb_parser::StreamId, std::borrow::Cow<'_, [u8]>> = g
            .consumers()
            .flat_map(|c| c.pending().map(move |id| (id, c.name.clone())))
            .collect();
        for (j, p) in g.pending().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"id\":");
            id(line, p.id);
            line.extend_from_slice(b",\"consumer\":");
            match owner.get(&p.id) {
                Some(name) => json::bytes(line, name),
                None => line.extend_from_slice(b"null"),
            }
            line.extend_from_slice(b",\"delivery_time_ms\":");
            json::int(line, p.delivery_time_ms);
            line.extend_from_slice(b",\"delivery_count\":");
            json::int(line, p.delivery_count);
            line.push(b'}');
            if line.spill() {
                break;
            }
        }
        line.extend_from_slice(b"],\"consumers\":[");
        for (j, c) in g.consumers().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            line.extend_from_slice(b"{\"name\":");
            json::bytes(line, &c.name);
            line.extend_from_slice(b",\"seen_time_ms\":");
            json::int(line, c.seen_time_ms);
            line.extend_from_slice(b",\"active_time_ms\":");
            json::opt_int(line, c.active_time_ms);
            line.extend_from_slice(b",\"pending\":[");
            for (k, p) in c.pending().enumerate() {
                if k > 0 {
                    line.push(b',');
                }
                id(line, p);
            }
            line.extend_from_slice(b"]}");
            if line.spill() {
                break;
            }
        }
        line.extend_from_slice(b"]}");
    }
    line.extend_from_slice(b"]}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// RESP command streams: `--format resp` and `--format restore`

/// Which commands `--format resp|restore` writes.
#[derive(Debug, Clone)]
pub struct CommandsOptions {
    /// `RESTORE` with DUMP payloads for `convert.target` (else plain commands).
    pub restore: bool,
    /// RESTORE ... REPLACE, or `DEL key` before the plain commands.
    pub replace: bool,
    /// The payload version and loss policies (RESTORE), and which commands the target has.
    pub convert: rdb_writer::convert::ConvertOptions,
}

/// What a command export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommandsSummary {
    pub keys: u64,
    pub commands: u64,
    pub bytes: u64,
    /// Keys the target cannot hold that a flag allowed to leave out.
    pub dropped: u64,
    /// Hash fields whose TTL the target has no command for (plain commands).
    pub field_ttls_dropped: u64,
    pub functions: u64,
    /// Function libraries left out (`--functions drop`, a target without functions).
    pub functions_dropped: u64,
}

/// Writes the snapshot as RESP commands for `redis-cli --pipe`: `SELECT` where the
/// database changes, then each key's `RESTORE` or plain commands, in file order (built
/// on all cores).
pub fn commands(
    data: &[u8],
    parser: &ParserBuilder,
    o: &CommandsOptions,
    out: &mut dyn Write,
    progress: impl FnMut(u64),
) -> Result<CommandsSummary, Failure> {
    rdb_pipeline::checked(data, parser, |p, eof| {
        commands_unchecked(data, p, eof, o, out, progress)
    })
}

/// One key's commands, formatted on any core.
struct KeyCommands<'e> {
    bytes: Vec<u8>,
    /// A RESTORE payload, written between `bytes` and `tail` without another copy.
    payload: Option<rdb_writer::convert::DumpBody<'e>>,
    tail: Vec<u8>,
    commands: u64,
    dropped: bool,
    field_ttls_dropped: u64,
}

fn key_commands<'e>(
    entry: &Entry<'e>,
    source: rdb_parser::format::Version,
    o: &CommandsOptions,
    native: &crate::resp::NativeOptions,
) -> Result<KeyCommands<'e>, Failure> {
    use rdb_writer::convert::{dump_body, ConvertError};
    let mut k = KeyCommands {
        bytes: Vec::new(),
        payload: None,
        tail: Vec::new(),
        commands: 0,
        dropped: false,
        field_ttls_dropped: 0,
    };
    if o.restore {
        match dump_body(entry, source, &o.convert) {
            Ok(Some(payload)) => {
                crate::resp::restore_head(&mut k.bytes, entry, payload.len(), o.replace);
                crate::resp::restore_tail(&mut k.tail, entry, o.replace);
                k.payload = Some(payload);
                k.commands = 1;
            }
            Ok(None) => k.dropped = true,
            Err(ConvertError::Parse(p)) => return Err(Failure::Data(p)),
            Err(ConvertError::Io(io)) => return Err(Failure::Io(io)),
            Err(other) => {
                return Err(crate::convert::failure(
                    other,
                    crate::convert::HintFor::Export,
                ))
            }
        }
        return Ok(k);
    }
    let mut emit = |cmd: Vec<u8>| {
        k.bytes.extend_from_slice(&cmd);
        k.commands += 1;
    };
    k.field_ttls_dropped = plain_commands(entry, native, &mut emit)?;
    Ok(k)
}

/// Hands `entry`'s plain commands to `emit` one by one; returns the hash-field TTLs the
/// target has no command for.
fn plain_commands(
    entry: &Entry<'_>,
    native: &crate::resp::NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<u64, Failure> {
    let refused = |why: String, hint: &str| {
        let mut shown = String::new();
        let _ = rdb_parser::error::write_escaped(&mut shown, &entry.key);
        Failure::Refused(format!(
            "key \"{shown}\" (db {}) at byte {}: {why}{hint}",
            entry.db, entry.offset
        ))
    };
    match crate::resp::native_commands(entry, native, emit) {
        Ok(losses) => Ok(losses.field_ttls),
        Err(crate::resp::NativeError::Parse(p)) => {
            Err(Failure::Data(p.in_key(entry.db, &entry.key)))
        }
        Err(crate::resp::NativeError::Refused(why)) => Err(refused(why, "")),
        Err(crate::resp::NativeError::Unsupported(why)) => {
            Err(refused(why, "; --format restore carries it"))
        }
    }
}

fn commands_unchecked<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    o: &CommandsOptions,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<CommandsSummary, Failure> {
    let source = parser.parse(data)?.version();
    let native = crate::resp::NativeOptions {
        delete_first: o.replace,
        field_ttl_policy: o.convert.field_ttls,
        now_ms: o.convert.now_ms,
        ..crate::resp::NativeOptions::for_target(&o.convert.target)
    };
    let mut summary = CommandsSummary::default();
    let mut db: Option<u64> = None;
    let work = |s: Spanned<'data>| -> Result<(Item<'data>, Option<KeyCommands<'data>>), Failure> {
        match &s.item {
            // A huge value's plain commands are built by the sink and written one by one.
            Item::Key(entry) if !o.restore && entry.raw_value.len() > IN_PIECES_ABOVE => {
                Ok((s.item, None))
            }
            Item::Key(entry) => {
                let k = key_commands(entry, source, o, &native)?;
                Ok((s.item, Some(k)))
            }
            _ => Ok((s.item, None)),
        }
    };
    let mut write = |bytes: &[u8], summary: &mut CommandsSummary| -> Result<(), Failure> {
        summary.bytes += bytes.len() as u64;
        out.write_all(bytes).map_err(Failure::Io)
    };
    let sink = |(item, k): (Item<'data>, Option<KeyCommands<'data>>)| -> Result<(), Failure> {
        match (item, k) {
            (Item::Key(entry), Some(k)) => {
                progress(entry.offset);
                if k.dropped {
                    summary.dropped += 1;
                    return Ok(());
                }
                if db != Some(entry.db) {
                    db = Some(entry.db);
                    write(&crate::resp::select(entry.db), &mut summary)?;
                    summary.commands += 1;
                }
                summary.keys += 1;
                summary.commands += k.commands;
                summary.field_ttls_dropped += k.field_ttls_dropped;
                write(&k.bytes, &mut summary)?;
                if let Some(p) = &k.payload {
                    write(&[p.type_id], &mut summary)?;
                    write(&p.value, &mut summary)?;
                    write(&p.trailer, &mut summary)?;
                }
                write(&k.tail, &mut summary)
            }
            (Item::Key(entry), None) => {
                progress(entry.offset);
                if db != Some(entry.db) {
                    db = Some(entry.db);
                    write(&crate::resp::select(entry.db), &mut summary)?;
                    summary.commands += 1;
                }
                summary.keys += 1;
                let mut failed = None;
                let mut emit = |cmd: Vec<u8>| {
                    if failed.is_none() {
                        summary.commands += 1;
                        failed = write(&cmd, &mut summary).err();
                    }
                };
                let field_ttls_dropped = plain_commands(&entry, &native, &mut emit)?;
                if let Some(e) = failed {
                    return Err(e);
                }
                summary.field_ttls_dropped += field_ttls_dropped;
                Ok(())
            }
            (Item::Function(Function::Library { code }), _) => {
                if !o.convert.target.functions() {
                    if o.convert.functions == rdb_writer::convert::FunctionPolicy::Drop {
                        summary.functions_dropped += 1;
                        return Ok(());
                    }
                    return Err(Failure::Refused(format!(
                        "the snapshot holds function libraries and {} has no functions; \
                         --functions drop leaves them out",
                        o.convert.target.name
                    )));
                }
                let mut c = crate::resp::Cmd::new("FUNCTION");
                c.arg(b"LOAD");
                if o.replace {
                    c.arg(b"REPLACE");
                }
                c.arg(&code);
                summary.functions += 1;
                summary.commands += 1;
                write(&c.finish(), &mut summary)
            }
            (Item::Function(Function::PreGa { name, .. }), _) => {
                let mut shown = String::new();
                let _ = rdb_parser::error::write_escaped(&mut shown, &name);
                Err(Failure::Refused(format!(
                    "function \"{shown}\" is in the Redis 7.0 release-candidate form, which \
                     no released server loads"
                )))
            }
            (Item::Eof(eof), _) => {
                eof_seen.set(eof);
                Ok(())
            }
            _ => Ok(()),
        }
    };
    rdb_pipeline::ordered(parser.parse(data)?, work, sink)?;
    out.flush().map_err(Failure::Io)?;
    Ok(summary)
}
